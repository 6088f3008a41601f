"""The OpenAPI 3.1 document of the REST API, served at ``GET /openapi.json``.

Built from the route table (:mod:`bridge.api.operations`) and the request, query and resource
types, with their JSON Schema from msgspec: the parameters with their real constraints, the
request bodies (with the rules across fields), every status an operation answers with its
error body, and links from each create operation to the operations taking the id it created.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..http_errors import reason
from ..storable_text import JSON_VALUE, JSON_VALUE_SCHEMA
from .envelope import Envelope, NetworkError
from .operations import NoBody, Operation, Refusal, Service
from .problems import PROBLEM_JSON, Problem
from .queries import SECURITY_PARAMETERS
from .requests import RULES
from .symphony import SymphonyError

OPENAPI_PATH = "/openapi.json"
_REF = "#/components/schemas/{name}"
_PATH_PARAMETER = re.compile(r"\{([^}]+)\}")
_ROUTE_REGEX = re.compile(r"\{([^}:]+):[^}]*\}")
_ID = {"type": "string", "format": "uuid"}

API_SECURITY: list[dict[str, list[str]]] = [
    {"queryToken": []},
    {"bearer": []},
    {"headerToken": []},
    {"cookieToken": []},
    {"basic": []},
]
_REASONS = {
    400: "the request is malformed: the message names the parameter or field",
    401: "no valid token",
    403: "not allowed for this user",
    404: "no such resource, or no such user (asUserId)",
    409: "conflicts with the resource's state",
    500: "unexpected error (nothing is revealed; the operator's log has it)",
    503: "not available on this bridge now (e.g. no credential encryption key, or too many "
    "whole lists being written: try again shortly)",
}


_UNPARSABLE = "; text/plain when the HTTP request itself cannot be parsed (a line over 8 KiB)"


def doc_path(path: str) -> str:
    """A route's path as documented: ``{name:regex}`` (a route's own constraint) as ``{name}``."""
    return _ROUTE_REGEX.sub(r"{\1}", path)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def _name(kind: Any) -> str:
    return str(getattr(kind, "__name__", kind))


def _parameters(op: Operation[Any, Any]) -> list[dict[str, Any]]:
    types = dict(op.path_types)
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": msgspec.json.schema(types[name]) if name in types else _ID,
        }
        for name in _PATH_PARAMETER.findall(doc_path(op.path))
    ]
    _, components = msgspec.json.schema_components([op.query], ref_template=_REF)
    query = components[_name(op.query)]
    required = set(query.get("required", ()))
    for name, prop in query["properties"].items():
        if name in SECURITY_PARAMETERS:
            continue
        prop = dict(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if "description" in prop:
            param["description"] = prop.pop("description")
        if prop.get("type") == "array":
            param |= {"style": "form", "explode": True}
        param["schema"] = prop
        params.append(param)
    return params


def _schema_of(kind: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A type's schema (a reference for a named type), its components added to ``schemas``."""
    (schema,), more = msgspec.json.schema_components([kind], ref_template=_REF)
    schemas.update(more)
    return schema


def _error(service: Service, op: Operation[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if op.error_body is not None:
        media, kind = op.error_body
        return {media: {"schema": _schema_of(kind, schemas)}}
    if service.problems:
        return {PROBLEM_JSON: {"schema": _ref("Problem")}}
    name = "SymphonyError" if service.symphony else "NetworkError"
    return {"application/json": {"schema": _ref(name)}}


def _success(op: Operation[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    answer = op.answer
    if answer.data_name is None:
        return _schema_of(answer.resource, schemas)
    item = _ref(_name(answer.resource))
    data = {"type": "array", "items": item} if answer.many else item
    return {
        "allOf": [
            _ref("Envelope"),
            {
                "type": "object",
                "properties": {answer.data_name: data},
                "required": [answer.data_name],
            },
        ]
    }


def _links(
    op: Operation[Any, Any], by_id: dict[str, tuple[str, Operation[Any, Any]]]
) -> dict[str, Any]:
    links = {}
    first = "/0" if op.answer.many else ""  # a list links its first row
    for target_id in op.links:
        _, target = by_id[target_id]
        (param,) = _PATH_PARAMETER.findall(doc_path(target.path))
        links[target_id[0].upper() + target_id[1:]] = {
            "operationId": target_id,
            "parameters": {param: f"$response.body#/{op.answer.data_name}{first}/id"},
        }
    return links


def _example(refusal: Refusal, service: Service) -> dict[str, Any]:
    """The error body of ``refusal``'s example in the service's error shape."""
    error = refusal.example
    status, message = error.status, error.message
    value: dict[str, Any] = {"code": status, "message": message}
    if not service.symphony:
        detail = str(error.extra.get("detail") or reason(status))
        date = "2026-01-01T00:00:00.000000Z"
        value = msgspec.to_builtins(NetworkError("ERR", status, message, status, date, detail))
    return {"summary": refusal.reason, "value": value}


def _operation(
    service: Service,
    op: Operation[Any, Any],
    by_id: dict[str, tuple[str, Operation[Any, Any]]],
    schemas: dict[str, Any],
) -> dict[str, Any]:
    error = _error(service, op, schemas)
    responses: dict[str, Any] = {}
    for status in (op.answer.status, *op.answer.also):
        responses[str(status)] = {"description": "OK"}
        if op.answer.resource is not None:
            ok = {"application/json": {"schema": _success(op, schemas)}}
            responses[str(status)]["content"] = ok
        if op.links:
            responses[str(status)]["links"] = _links(op, by_id)
    refusals = [e for e in op.errors if isinstance(e, Refusal)]
    codes = {400, 500, *(e.status if isinstance(e, Refusal) else e for e in op.errors)}
    if not (service.public or op.public):
        codes |= {401, 403, 404}
    if _PATH_PARAMETER.search(op.path):
        codes.add(404)
    for code in sorted(codes):
        named = [r for r in refusals if r.status == code]
        content: dict[str, Any] = {media: dict(body) for media, body in error.items()}
        if named:
            for body in content.values():
                body["examples"] = {r.name: _example(r, service) for r in named}
        responses[str(code)] = {
            "description": "; ".join([_REASONS[code], *(f"{r.name}: {r.reason}" for r in named)]),
            "content": content,
        }
    # The HTTP server refuses a request it cannot parse (a request line over 8 KiB, a control
    # character in a header) before the API sees it, with a plain-text 400.
    responses["400"]["content"]["text/plain"] = {"schema": {"type": "string"}}
    responses["400"]["description"] += _UNPARSABLE
    operation: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": list(op.tags) or [service.prefix.strip("/").split("/")[0].removesuffix("-api")],
        "parameters": _parameters(op),
        "responses": responses,
    }
    if op.body is not NoBody:
        body = _schema_of(op.body, schemas)
        rules = RULES.get(op.body)
        schema = {"allOf": [body, *rules]} if rules else body
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif op.raw_body is not None:
        media, kind = op.raw_body
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": _schema_of(kind, schemas)}},
        }
    if service.public or op.public:
        operation["security"] = []
    elif service.symphony:
        operation["security"] = [*API_SECURITY, {"sessionToken": []}]
    return operation


def build_openapi(services: list[Service], token_name: str, version: str) -> dict[str, Any]:
    """The document of ``services``; ``token_name`` names the token header and cookie."""
    by_id = {
        op.operation_id: (service.prefix, op) for service in services for op in service.operations
    }
    types: list[Any] = [Envelope, NetworkError, SymphonyError, Problem]
    for service in services:
        for op in service.operations:
            if op.body is not NoBody:
                types.append(op.body)
            if op.answer.data_name is not None:
                types.append(op.answer.resource)
    _, schemas = msgspec.json.schema_components(types, ref_template=_REF)
    schemas[JSON_VALUE] = JSON_VALUE_SCHEMA  # what JsonValue and JsonObject refer to
    paths: dict[str, dict[str, Any]] = {}
    for service in services:
        for op in service.operations:
            path = (service.prefix + doc_path(op.path)).rstrip("/") or "/"
            paths.setdefault(path, {})[op.method] = _operation(service, op, by_id, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bridge REST API",
            "version": version,
            "description": (
                "Messaging, networking and notifications of the network, shaped like the "
                "reference; Symphony connection calls; each account's credentials "
                "(Synqly-shaped) and the ways in they give (API keys, Basic, OAuth client "
                "credentials). Every parameter and body field is declared: anything else is "
                "refused with 400 naming it. Deliberate differences from the reference: the "
                "envelope has source (always db) and sessionId but no ssoTime or cacheKey; "
                "/currentuser has no email or tenantId and /permissions no tenantCodename; "
                "connection requests have the extra status cancelled; a 1:1 conversation's "
                "DELETE deletes it for both."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "access_token"},
                "headerToken": {"type": "apiKey", "in": "header", "name": token_name},
                "cookieToken": {"type": "apiKey", "in": "cookie", "name": token_name},
                "sessionToken": {"type": "apiKey", "in": "header", "name": "sessionToken"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": API_SECURITY,
    }
