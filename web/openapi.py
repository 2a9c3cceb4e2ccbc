"""The OpenAPI 3.1 document, generated from the route table (routes.py) and the attrs
classes the handlers answer with (views.py): a route or a field added in code is in the
document, with no second description to keep in step."""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs

from ..version import __version__
from .endpoint import Endpoint
from .problems import MEDIA_TYPE as PROBLEM
from .views import Problem

API_VERSION = "1"


def schema_of(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema (2020-12, as OpenAPI 3.1 uses) for a Python type; attrs classes go
    to components and are referenced."""
    if isinstance(kind, str):
        raise TypeError(f"unresolved annotation {kind!r}")
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        members = [schema_of(arg, components) for arg in typing.get_args(kind)]
        return {"anyOf": members}
    if kind is type(None):
        return {"type": "null"}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if kind is str:
        return {"type": "string"}
    if kind is object:
        return {}
    if origin is tuple:
        item, *_ = typing.get_args(kind)
        return {"type": "array", "items": schema_of(item, components)}
    if origin is dict:
        _, value = typing.get_args(kind)
        return {"type": "object", "additionalProperties": schema_of(value, components)}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return {"type": "string", "enum": [member.value for member in kind]}
    if attrs.has(kind):
        name = kind.__name__
        if name not in components:
            components[name] = {}  # placeholder: a class may refer to itself
            hints = typing.get_type_hints(kind)
            properties, required = {}, []
            for field in attrs.fields(kind):
                schema = schema_of(hints[field.name], components)
                description = field.metadata.get("description")
                if description:
                    schema = {**schema, "description": description}
                properties[field.name] = schema
                required.append(field.name)  # defaults are always written out
            components[name] = {"type": "object", "properties": properties, "required": required}
            if kind.__doc__ and not kind.__doc__.startswith(f"{name}("):
                components[name]["description"] = kind.__doc__.strip()
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no schema for {kind!r}")


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    components: dict[str, Any] = {}
    problem = {PROBLEM: {"schema": schema_of(Problem, components)}}
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        responses: dict[str, Any] = {}
        ok = {"description": endpoint.answers}
        if endpoint.response is not None:
            ok["content"] = {endpoint.media_type: {"schema": schema_of(endpoint.response, components)}}
        elif endpoint.media_type != "application/json":
            ok["content"] = {endpoint.media_type: {"schema": {"type": "string"}}}
        responses[str(endpoint.status)] = ok
        for status, why in endpoint.errors:
            responses[str(status)] = {"description": why, "content": problem}
        operation: dict[str, Any] = {
            "operationId": endpoint.name,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "responses": responses,
        }
        parameters = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path" or p.required,
                "description": p.description,
                "schema": schema_of(p.kind, components),
            }
            for p in endpoint.parameters
        ]
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "triopacs admin API",
            "version": f"{API_VERSION} (triopacs {__version__})",
            "description": "Operating a triopacs node: probes, status, associations, tasks, locks, studies, statistics.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
