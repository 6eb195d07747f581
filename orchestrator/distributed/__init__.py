"""Shared state of distributed runs in Redis: step attempts, run ownership, worker registry."""
