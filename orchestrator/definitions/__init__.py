"""Definitions: ops, graphs, jobs, config, resources, hooks, partitions, pointers."""
