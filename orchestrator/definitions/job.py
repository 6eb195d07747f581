"""``@job`` and ``JobDefinition``: a graph bound to resources, config, executor and the rest."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from orchestrator.definitions import engine
from orchestrator.definitions.config import ConfigMapping, RunConfig, run_config_to_dict
from orchestrator.definitions.executor import ExecutorDefinition, multi_or_in_process_executor
from orchestrator.definitions.graph import GraphDefinition, graph
from orchestrator.definitions.hooks import HookDefinition
from orchestrator.definitions.loggers import LoggerDefinition, default_loggers
from orchestrator.definitions.nodes import OpNode, flatten_graph, map_dynamic
from orchestrator.definitions.op import normalize_tags
from orchestrator.definitions.partitions import PartitionedConfig, PartitionsDefinition
from orchestrator.definitions.resources import ResourceDefinition, as_resource_definitions
from orchestrator.definitions.retry import RetryPolicy
from orchestrator.errors import DefinitionError


class JobDefinition:
    """A graph of ops bound to everything needed to run it.

    Build one with ``@job`` or ``GraphDefinition.to_job``; the keyword arguments are the same.

    Args:
        graph_def: the graph to run.
        name: the job's name (default: the graph's).
        description: shown in docs and the CLI.
        resource_defs: resources by key; ``io_manager`` defaults to the filesystem IO manager.
        config: default run config (dict or ``RunConfig``, replaced by run config given at
            launch), a ``ConfigMapping`` or a ``PartitionedConfig``.
        tags: tags of the job; also added to its runs unless ``run_tags`` is set.
        run_tags: tags added to every run of the job.
        metadata: free-form information.
        logger_defs: loggers by name (default: ``console``).
        executor_def: how steps run (default: ``multi_or_in_process_executor``).
        hooks: hooks applied to every op.
        op_retry_policy: retry policy of ops that have none of their own.
        partitions_def: partitions the job can run for.
        input_values: values for the top-level inputs of the graph.
    """

    def __init__(
        self,
        graph_def: GraphDefinition,
        name: str | None = None,
        description: str | None = None,
        resource_defs: Mapping[str, Any] | None = None,
        config: Any = None,
        tags: Mapping[str, Any] | None = None,
        run_tags: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        logger_defs: Mapping[str, LoggerDefinition] | None = None,
        executor_def: ExecutorDefinition | None = None,
        hooks: Any = None,
        op_retry_policy: RetryPolicy | None = None,
        partitions_def: PartitionsDefinition | None = None,
        input_values: Mapping[str, Any] | None = None,
        op_selection: Sequence[str] | None = None,
    ):
        self.graph_def = graph_def
        self.name = name or graph_def.name
        self.description = description or graph_def.description
        self._given_resource_defs = dict(resource_defs or {})
        self._resource_defs = as_resource_definitions(resource_defs)
        self.tags = normalize_tags(tags)
        self._run_tags = normalize_tags(run_tags) if run_tags is not None else None
        self.metadata = dict(metadata or {})
        self._logger_defs = dict(logger_defs) if logger_defs else None
        self._executor_def = executor_def
        self.hook_defs: frozenset[HookDefinition] = frozenset(hooks or ())
        self.op_retry_policy = op_retry_policy
        self.input_values = dict(input_values or {})
        self.op_selection = list(op_selection) if op_selection else None
        self._config_arg = config
        # Where the job object can be found again (module, attribute): set by @job / to_job so
        # that reconstructable(job) works without the user naming a factory.
        self._reconstruct_pointer: Any = None
        self._defined_in: tuple[str, str] | None = None
        self._subset_of: JobDefinition | None = None

        self._config_mapping: ConfigMapping | None = None
        self._partitioned_config: PartitionedConfig | None = None
        self._default_config: dict[str, Any] = {}
        if isinstance(config, ConfigMapping):
            self._config_mapping = config
        elif isinstance(config, PartitionedConfig):
            if partitions_def is not None and partitions_def is not config.partitions_def:
                raise DefinitionError(
                    f"job {self.name!r}: give partitions_def or a PartitionedConfig, not both"
                )
            self._partitioned_config = config
        elif isinstance(config, Mapping | RunConfig):
            self._default_config = run_config_to_dict(config)
        elif config is not None:
            raise DefinitionError(
                f"job {self.name!r}: config must be a dict, RunConfig, ConfigMapping or "
                f"PartitionedConfig, got {type(config).__name__}"
            )
        if partitions_def is not None and self._partitioned_config is None:
            if config is not None:
                raise DefinitionError(
                    f"job {self.name!r}: with partitions_def, config must be a PartitionedConfig"
                )
            self._partitioned_config = PartitionedConfig(partitions_def, lambda _key: {})
        _ = self.all_op_nodes  # how dynamic outputs are mapped is checked where the job is made

    # -- structure ----------------------------------------------------------------------------

    @cached_property
    def all_op_nodes(self) -> dict[str, OpNode]:
        """Every leaf op of the job's graph by handle, in topological order."""
        nodes, _ = flatten_graph(self.graph_def, hooks=self.hook_defs)
        nodes = map_dynamic(nodes)
        out: dict[str, OpNode] = {}
        for node in nodes:
            if node.retry_policy is None and self.op_retry_policy is not None:
                node = dataclasses.replace(node, retry_policy=self.op_retry_policy)
            out[node.handle] = node
        return out

    @cached_property
    def selected_handles(self) -> frozenset[str]:
        """Handles of the ops this job runs (all of them unless it is a subset)."""
        from orchestrator.definitions.graph import top_level_upstream
        from orchestrator.selection import select_ops

        nodes = self.all_op_nodes
        if not self.op_selection:
            return frozenset(nodes)
        # a mapped step (`op[key]`) selects its op; which keys run is selected_mapping_keys
        queries = [q.split("[", 1)[0] if q.endswith("]") else q for q in self.op_selection]
        return select_ops(list(nodes), top_level_upstream(self.graph_def), queries)

    @property
    def selected_mapping_keys(self) -> dict[str, frozenset[str]]:
        """For each mapped op selected by step key (``process[b]``), the step keys selected."""
        out: dict[str, set[str]] = {}
        for query in self.op_selection or ():
            if query.endswith("]") and "[" in query:
                out.setdefault(query.split("[", 1)[0], set()).add(query)
        return {handle: frozenset(keys) for handle, keys in out.items()}

    @property
    def op_nodes(self) -> dict[str, OpNode]:
        """The selected leaf ops by handle, in topological order."""
        selected = self.selected_handles
        return {h: n for h, n in self.all_op_nodes.items() if h in selected}

    # -- Dagster's JobDefinition properties ---------------------------------------------------

    @property
    def executor_def(self) -> ExecutorDefinition:
        """The job's executor (``multi_or_in_process_executor`` unless one was specified)."""
        return self._executor_def or multi_or_in_process_executor

    @property
    def has_specified_executor(self) -> bool:
        return self._executor_def is not None

    @property
    def has_specified_loggers(self) -> bool:
        return self._logger_defs is not None

    @property
    def loggers(self) -> dict[str, LoggerDefinition]:
        return dict(self._logger_defs) if self._logger_defs is not None else dict(default_loggers)

    @property
    def resource_defs(self) -> dict[str, ResourceDefinition]:
        """The job's resources, with the default filesystem ``io_manager`` if none was given."""
        defs = dict(self._resource_defs)
        if "io_manager" not in defs:
            from orchestrator.definitions.io_managers import fs_io_manager

            defs["io_manager"] = fs_io_manager
        return defs

    @property
    def has_specified_io_manager(self) -> bool:
        return "io_manager" in self._resource_defs

    @property
    def config_mapping(self) -> ConfigMapping | None:
        return self._config_mapping

    @property
    def partitioned_config(self) -> PartitionedConfig | None:
        return self._partitioned_config

    @property
    def partitions_def(self) -> PartitionsDefinition | None:
        return self._partitioned_config.partitions_def if self._partitioned_config else None

    @property
    def default_run_config(self) -> dict[str, Any]:
        """The job's hardcoded default run config (empty when none was given)."""
        return dict(self._default_config)

    @property
    def run_tags(self) -> dict[str, str]:
        """Tags every run of this job gets."""
        return dict(self._run_tags) if self._run_tags is not None else dict(self.tags)

    # -- derived jobs -------------------------------------------------------------------------

    def _copy(self, **changes: Any) -> JobDefinition:
        args: dict[str, Any] = {
            "graph_def": self.graph_def,
            "name": self.name,
            "description": self.description,
            "resource_defs": self._given_resource_defs,
            "config": self._config_arg,
            "tags": self.tags,
            "run_tags": self._run_tags,
            "metadata": self.metadata,
            "logger_defs": self._logger_defs,
            "executor_def": self._executor_def,
            "hooks": self.hook_defs,
            "op_retry_policy": self.op_retry_policy,
            "partitions_def": None,
            "input_values": self.input_values,
            "op_selection": self.op_selection,
        }
        args.update(changes)
        job = JobDefinition(**args)
        job._defined_in = self._defined_in
        if set(changes) <= {"op_selection"}:
            # A subset is still found through its base job; any other change makes a new job
            # that reconstructable() must find as a module attribute of its own.
            job._subset_of = self._subset_of or self
            job._reconstruct_pointer = self._reconstruct_pointer
        return job

    def get_subset(self, op_selection: Sequence[str] | None = None) -> JobDefinition:
        """A job running only the selected ops (SPEC §3 query syntax).

        Raises:
            SelectionError: a query names an unknown op or is malformed.
        """
        subset = self._copy(op_selection=list(op_selection) if op_selection else None)
        _ = subset.selected_handles  # validate now: errors surface where the subset is made
        return subset

    def with_hooks(self, hook_defs: Any) -> JobDefinition:
        """A copy of this job with ``hook_defs`` applied to every op."""
        return self._copy(hooks=self.hook_defs | frozenset(hook_defs))

    def with_top_level_resources(self, resource_defs: Mapping[str, Any]) -> JobDefinition:
        """A copy of this job where ``resource_defs`` fill in resources the job does not set."""
        return self._copy(resource_defs={**resource_defs, **self._given_resource_defs})

    def with_executor_def(self, executor_def: ExecutorDefinition) -> JobDefinition:
        return self._copy(executor_def=executor_def)

    def with_logger_defs(self, logger_defs: Mapping[str, LoggerDefinition]) -> JobDefinition:
        return self._copy(logger_defs=logger_defs)

    # -- execution ----------------------------------------------------------------------------

    def execute_in_process(
        self,
        run_config: Any = None,
        instance: Any = None,
        partition_key: str | None = None,
        raise_on_error: bool = True,
        op_selection: Sequence[str] | None = None,
        input_values: Mapping[str, Any] | None = None,
        resources: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Any:
        """Run the job in this process with the in-process executor, outputs kept in memory.

        Args:
            run_config: run config (dict or ``RunConfig``); replaces the job's default config.
            instance: where the run and its events are stored (default: an ephemeral one).
            partition_key: the partition to run (partitioned jobs).
            raise_on_error: re-raise the first op exception (or a RunFailedError).
            op_selection: run only these ops (SPEC §3 query syntax).
            input_values: values for top-level graph inputs, or ``"op.input"`` keys for inputs
                of selected ops whose upstream op is not selected.
            resources: resources to use instead of (or in addition to) the job's.
            tags: extra run tags.
            run_id: use this run id instead of a fresh one.

        Returns:
            ExecuteInProcessResult

        Raises:
            ConfigError, SelectionError, MissingInputError, ResourceNotFoundError: bad input.
        """
        return engine.engine().execute_in_process(
            self,
            run_config=run_config,
            instance=instance,
            partition_key=partition_key,
            raise_on_error=raise_on_error,
            op_selection=op_selection,
            input_values=input_values,
            resources=resources,
            tags=tags,
            run_id=run_id,
        )

    def __repr__(self) -> str:
        return f"<JobDefinition {self.name!r} ops={list(self.op_nodes)}>"


def job(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    resource_defs: Mapping[str, Any] | None = None,
    config: Any = None,
    tags: Mapping[str, Any] | None = None,
    run_tags: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    logger_defs: Mapping[str, LoggerDefinition] | None = None,
    executor_def: ExecutorDefinition | None = None,
    hooks: Any = None,
    op_retry_policy: RetryPolicy | None = None,
    partitions_def: PartitionsDefinition | None = None,
    input_values: Mapping[str, Any] | None = None,
) -> Any:
    """Decorator building a :class:`JobDefinition` from a function that calls ops and graphs.

    The function takes no arguments; its body wires the DAG. See :class:`JobDefinition` for the
    keyword arguments.
    """

    def wrap(f: Callable[..., Any]) -> JobDefinition:
        graph_def = graph(f, name=name or f.__name__, description=description)
        result = JobDefinition(
            graph_def=graph_def,
            name=name or f.__name__,
            description=description,
            resource_defs=resource_defs,
            config=config,
            tags=tags,
            run_tags=run_tags,
            metadata=metadata,
            logger_defs=logger_defs,
            executor_def=executor_def,
            hooks=hooks,
            op_retry_policy=op_retry_policy,
            partitions_def=partitions_def,
            input_values=input_values,
        )
        # The module whose code applied @job: where the job is a module attribute, even when
        # the function came from elsewhere (``chain = job(name="chain")(shared_body)``).
        result._defined_in = (caller, f.__name__)
        return result

    caller = sys._getframe(1).f_globals.get("__name__", "")
    return wrap(fn) if fn is not None else wrap
