"""A job's run config as JSON Schema, and a scaffold of the config a launch still needs.

The schema is built from the same definitions the validator reads (op, resource and graph
config schemas, a job's config mapping); the server stays the judge of validity (the
Launchpad validates there as you type), so a schema part that pydantic cannot express is left
open (``{}``) rather than guessed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from orchestrator.definitions.config import ConfigSchema, ConfiguredSchema
from orchestrator.definitions.graph import GraphDefinition
from orchestrator.definitions.job import JobDefinition

_PLACEHOLDERS: Mapping[str, Any] = {
    "string": "",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "array": [],
    "null": None,
}


def schema_json(schema: ConfigSchema | ConfiguredSchema | None) -> dict[str, Any]:
    """The JSON Schema of one config schema; ``{}`` (anything) when there is none or pydantic
    cannot express it."""
    if isinstance(schema, ConfiguredSchema):
        return schema_json(schema.outer) if schema.outer is not None else {"type": "null"}
    if schema is None:
        return {}
    try:
        if schema.model is not None:
            out = schema.model.model_json_schema()
        elif schema.adapter is not None:
            out = schema.adapter.json_schema()
        else:
            return {}
    except Exception:  # a type pydantic has no JSON Schema for: leave it open
        return {}
    out.pop("title", None)
    return _inline_refs(out)


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace ``$ref`` to ``$defs`` by the definitions (config schemas are trees)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 32:
                target = copy.deepcopy(defs.get(ref.removeprefix("#/$defs/"), {}))
                target.pop("title", None)
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return walk({**target, **rest}, depth + 1)
            return {k: walk(v, depth) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, depth) for v in node]
        return node

    return dict(walk(schema, 0))


def _requires(schema: ConfigSchema | ConfiguredSchema | None) -> bool:
    return schema is not None and schema.requires_value


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    out["additionalProperties"] = False
    if required:
        out["required"] = required
    return out


def _graph_ops(graph: GraphDefinition, prefix: str, selected: frozenset[str]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, node in graph.nodes.items():
        handle = f"{prefix}{name}"
        definition = node.definition
        if isinstance(definition, GraphDefinition):
            mapping = definition.config_mapping
            if mapping is not None:
                inner = schema_json(mapping.config_schema)
                properties[name] = _object({"config": inner}, [])
                if _requires(mapping.config_schema):
                    properties[name]["required"] = ["config"]
                    required.append(name)
                continue
            sub = _graph_ops(definition, f"{handle}.", selected)
            if not sub["properties"]:
                continue
            properties[name] = _object({"ops": sub}, ["ops"] if sub.get("required") else [])
            if sub.get("required"):
                required.append(name)
            continue
        if handle not in selected:
            continue
        schema = definition.config_schema
        if schema is None:
            continue
        properties[name] = _object({"config": schema_json(schema)}, [])
        if _requires(schema):
            properties[name]["required"] = ["config"]
            required.append(name)
    return _object(properties, required)


def run_config_schema(job: JobDefinition) -> dict[str, Any]:
    """The JSON Schema of ``job``'s run config (its selected ops, its resources)."""
    if job.config_mapping is not None:
        return schema_json(job.config_mapping.config_schema)
    properties: dict[str, Any] = {}
    required: list[str] = []
    ops = _graph_ops(job.graph_def, "", job.selected_handles)
    if ops["properties"]:
        properties["ops"] = ops
        if ops.get("required"):
            required.append("ops")
    resource_props: dict[str, Any] = {}
    resource_required: list[str] = []
    for key, resource in sorted(job.resource_defs.items()):
        schema = getattr(resource, "config_schema", None)
        if schema is None:
            continue
        resource_props[key] = _object({"config": schema_json(schema)}, [])
        if _requires(schema) and getattr(resource, "default_config", None) is None:
            resource_props[key]["required"] = ["config"]
            resource_required.append(key)
    if resource_props:
        properties["resources"] = _object(resource_props, resource_required)
        if resource_required:
            required.append("resources")
    properties["execution"] = {"type": "object"}
    properties["loggers"] = {"type": "object"}
    schema = _object(properties, required)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _placeholder(schema: Mapping[str, Any]) -> Any:
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for choice in schema.get("anyOf") or schema.get("oneOf") or ():
        if isinstance(choice, Mapping) and choice.get("type") != "null":
            return _placeholder(choice)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return scaffold({}, schema)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return copy.deepcopy(_PLACEHOLDERS.get(str(kind), ""))


def scaffold(config: Any, schema: Mapping[str, Any]) -> Any:
    """``config`` with every required field it lacks filled in: the field's default when the
    schema has one, else a placeholder of its type (``""``, ``0``, ``false``, ``[]``, ``{}``).
    Given values are kept as they are."""
    if not isinstance(config, Mapping):
        return config if config is not None else _placeholder(schema)
    out = dict(config)
    properties = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in out:
            out[name] = _placeholder(properties.get(name) or {})
    for name, value in list(out.items()):
        sub = properties.get(name)
        if isinstance(sub, Mapping) and isinstance(value, Mapping):
            out[name] = scaffold(value, sub)
    return out
