"""orchestrator: Dagster-style ops and jobs, run in-process, in subprocesses or on Celery
workers, with tag concurrency limits that hold across runs (enforced in Redis).

Everything a job file needs is importable from here, under Dagster's names.
"""

from typing import Any  # also Dagster's "any value" config type

from orchestrator.concurrency.config import TagConcurrencyLimit
from orchestrator.coordinator import launch_run
from orchestrator.definitions.config import (
    Array,
    Bool,
    BoolSource,
    Config,
    ConfigMapping,
    Enum,
    EnumValue,
    Field,
    Float,
    Int,
    IntSource,
    Noneable,
    Permissive,
    RunConfig,
    Selector,
    Shape,
    String,
    StringSource,
    config_mapping,
    configured,
)
from orchestrator.definitions.definitions import (
    Definitions,
    RepositoryDefinition,
    definitions,
    repository,
)
from orchestrator.definitions.graph import (
    DependencyDefinition,
    GraphDefinition,
    MultiDependencyDefinition,
    NodeInvocation,
    graph,
)
from orchestrator.definitions.hooks import HookContext, HookDefinition, failure_hook, success_hook
from orchestrator.definitions.io import GraphIn, GraphOut, In, Nothing, Out, Output
from orchestrator.definitions.job import JobDefinition, job
from orchestrator.definitions.loggers import (
    InitLoggerContext,
    LoggerDefinition,
    colored_console_logger,
    logger,
)
from orchestrator.definitions.metadata import (
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    ExpectationResult,
    MetadataValue,
)
from orchestrator.definitions.op import OpDefinition, op
from orchestrator.definitions.partitions import (
    DailyPartitionsDefinition,
    PartitionedConfig,
    PartitionsDefinition,
    StaticPartitionsDefinition,
    daily_partitioned_config,
    static_partitioned_config,
)
from orchestrator.definitions.paths import file_relative_path
from orchestrator.definitions.reconstruct import (
    JobPointer,
    ReconstructableJob,
    build_reconstructable_job,
    reconstructable,
)
from orchestrator.definitions.resources import (
    ConfigurableResource,
    EnvVar,
    InitResourceContext,
    ResourceDefinition,
    resource,
)
from orchestrator.definitions.retry import Backoff, Jitter, RetryPolicy
from orchestrator.definitions.types import DagsterType, TypeCheck, check_dagster_type
from orchestrator.errors import (
    ConfigError,
    DagsterError,
    DagsterExecutionStepExecutionError,
    DagsterInvalidConfigError,
    DagsterInvalidDefinitionError,
    DagsterInvalidInvocationError,
    DagsterInvalidSubsetError,
    DagsterInvariantViolationError,
    DagsterTypeCheckDidNotPass,
    DagsterUnknownResourceError,
    Failure,
    InvalidInvocationError,
    InvariantViolationError,
    MissingInputError,
    OrchestratorError,
    ReconstructionError,
    ResourceNotFoundError,
    RetryRequested,
    RunFailedError,
    SelectionError,
    StepError,
    TypeCheckError,
    UserCodeError,
)
from orchestrator.execution.api import execute_job, validate_run_config
from orchestrator.execution.context import OpExecutionContext, get_dagster_logger
from orchestrator.execution.events import Event, EventType
from orchestrator.execution.reexecution import ReexecutionOptions
from orchestrator.execution.result import ExecuteInProcessResult, ExecuteJobResult
from orchestrator.execution.testing import (
    build_hook_context,
    build_init_resource_context,
    build_op_context,
    build_resources,
)
from orchestrator.executors.base import ExecutorDefinition
from orchestrator.executors.definitions import (
    celery_executor,
    in_process_executor,
    multi_or_in_process_executor,
    multiprocess_executor,
)
from orchestrator.storage.base import Instance, RunRecord, RunsFilter, RunStatus
from orchestrator.storage.io_managers import (
    InputContext,
    IOManager,
    IOManagerDefinition,
    OutputContext,
    fs_io_manager,
    io_manager,
    mem_io_manager,
)

# Dagster-compatible aliases.
DagsterEvent = Event
DagsterEventType = EventType
DagsterRun = RunRecord
DagsterRunStatus = RunStatus
DagsterInstance = Instance
AssetExecutionContext = OpExecutionContext

__version__ = "0.1.0"

__all__ = [
    "Any",
    "Array",
    "AssetExecutionContext",
    "AssetKey",
    "AssetMaterialization",
    "AssetObservation",
    "Backoff",
    "Bool",
    "BoolSource",
    "Config",
    "ConfigError",
    "ConfigMapping",
    "ConfigurableResource",
    "DagsterError",
    "DagsterEvent",
    "DagsterEventType",
    "DagsterExecutionStepExecutionError",
    "DagsterInstance",
    "DagsterInvalidConfigError",
    "DagsterInvalidDefinitionError",
    "DagsterInvalidInvocationError",
    "DagsterInvalidSubsetError",
    "DagsterInvariantViolationError",
    "DagsterRun",
    "DagsterRunStatus",
    "DagsterType",
    "DagsterTypeCheckDidNotPass",
    "DagsterUnknownResourceError",
    "DailyPartitionsDefinition",
    "Definitions",
    "DependencyDefinition",
    "Enum",
    "EnumValue",
    "EnvVar",
    "Event",
    "EventType",
    "ExecuteInProcessResult",
    "ExecuteJobResult",
    "ExecutorDefinition",
    "ExpectationResult",
    "Failure",
    "Field",
    "Float",
    "GraphDefinition",
    "GraphIn",
    "GraphOut",
    "HookContext",
    "HookDefinition",
    "IOManager",
    "IOManagerDefinition",
    "In",
    "InitLoggerContext",
    "InitResourceContext",
    "InputContext",
    "Instance",
    "Int",
    "IntSource",
    "InvalidInvocationError",
    "InvariantViolationError",
    "Jitter",
    "JobDefinition",
    "JobPointer",
    "LoggerDefinition",
    "MetadataValue",
    "MissingInputError",
    "MultiDependencyDefinition",
    "NodeInvocation",
    "Noneable",
    "Nothing",
    "OpDefinition",
    "OpExecutionContext",
    "OrchestratorError",
    "Out",
    "Output",
    "OutputContext",
    "PartitionedConfig",
    "PartitionsDefinition",
    "Permissive",
    "ReconstructableJob",
    "ReconstructionError",
    "ReexecutionOptions",
    "RepositoryDefinition",
    "ResourceDefinition",
    "ResourceNotFoundError",
    "RetryPolicy",
    "RetryRequested",
    "RunConfig",
    "RunFailedError",
    "RunRecord",
    "RunStatus",
    "RunsFilter",
    "SelectionError",
    "Selector",
    "Shape",
    "StaticPartitionsDefinition",
    "StepError",
    "String",
    "StringSource",
    "TagConcurrencyLimit",
    "TypeCheck",
    "TypeCheckError",
    "UserCodeError",
    "build_hook_context",
    "build_init_resource_context",
    "build_op_context",
    "build_reconstructable_job",
    "build_resources",
    "celery_executor",
    "check_dagster_type",
    "colored_console_logger",
    "config_mapping",
    "configured",
    "daily_partitioned_config",
    "definitions",
    "execute_job",
    "failure_hook",
    "file_relative_path",
    "fs_io_manager",
    "get_dagster_logger",
    "graph",
    "in_process_executor",
    "io_manager",
    "job",
    "launch_run",
    "logger",
    "mem_io_manager",
    "multi_or_in_process_executor",
    "multiprocess_executor",
    "op",
    "reconstructable",
    "repository",
    "resource",
    "static_partitioned_config",
    "success_hook",
    "validate_run_config",
]
