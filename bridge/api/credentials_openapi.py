"""The OpenAPI operations of the credentials routes, the token endpoint and the JWKS, with
schemas generated from the msgspec shapes the routes parse and render (so they cannot drift)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..credentials.listing import DEFAULT_LIMIT, FILTER_OPS, MAX_LIMIT, ORDER_FIELDS
from ..credentials.models import (
    CredentialConfig,
    CredentialCreate,
    CredentialList,
    CredentialResult,
    CredentialUpdate,
    PatchOperation,
)
from .credentials import PREFIX
from .problems import PROBLEM_JSON, Problem

_REF = "#/components/schemas/{name}"


def _schemas() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    types: tuple[Any, ...] = (
        CredentialCreate,
        CredentialUpdate,
        list[PatchOperation],
        CredentialResult,
        CredentialList,
        Problem,
        CredentialConfig,
    )
    refs, components = msgspec.json.schema_components(types, ref_template=_REF)
    return list(refs), components


def _json(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _param(name: str, where: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "schema": schema}
    if description:
        param["description"] = description
    if where == "path":
        param["required"] = True
    return param


_OWNER = _param("ownerId", "path", {"type": "string", "format": "uuid"}, "the account")
_CREDENTIAL = _param("credentialId", "path", {"type": "string", "format": "uuid"})


def _operation(
    operation_id: str,
    summary: str,
    params: list[dict[str, Any]],
    ok: tuple[int, dict[str, Any] | None],
    body: dict[str, Any] | None = None,
    body_media: str = "application/json",
) -> dict[str, Any]:
    status, schema = ok
    problem = _json({"$ref": _REF.format(name="Problem")}, PROBLEM_JSON)
    responses: dict[str, Any] = {
        str(status): {"description": "OK", **(_json(schema) if schema else {})}
    }
    for code in ("400", "401", "403", "404", "409", "500", "503"):
        responses[code] = {"description": "problem details (RFC 9457)", **problem}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["credentials"],
        "parameters": params,
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {"required": True, **_json(body, body_media)}
    return operation


def credential_openapi() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The paths and the component schemas to add to the API's document."""
    refs, components = _schemas()
    create, update, patch, result, listing, _, _ = refs
    list_params = [
        _OWNER,
        _param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        ),
        _param("start_after", "query", {"type": "string"}, "the name the page starts after"),
        _param(
            "order",
            "query",
            {"type": "array", "items": {"type": "string"}},
            f"{', '.join(ORDER_FIELDS)}, each optionally [asc] or [desc]; repeatable",
        ),
        _param(
            "filter",
            "query",
            {"type": "array", "items": {"type": "string"}},
            f"field[op]value, op one of {', '.join(FILTER_OPS)}; repeatable (ANDed)",
        ),
    ]
    one = f"{PREFIX}/{{ownerId}}/{{credentialId}}"
    paths: dict[str, dict[str, Any]] = {
        f"{PREFIX}/{{ownerId}}": {
            "get": _operation("listCredentials", "List credentials", list_params, (200, listing)),
            "post": _operation(
                "createCredential", "Create Credential", [_OWNER], (201, result), create
            ),
        },
        one: {
            "get": _operation(
                "getCredential", "Get Credential", [_OWNER, _CREDENTIAL], (200, result)
            ),
            "put": _operation(
                "updateCredential",
                "Update Credential",
                [_OWNER, _CREDENTIAL],
                (200, result),
                update,
            ),
            "patch": _operation(
                "patchCredential",
                "Patch Credential (RFC 6902)",
                [_OWNER, _CREDENTIAL],
                (200, result),
                patch,
                "application/json-patch+json",
            ),
            "delete": _operation(
                "deleteCredential", "Delete Credential", [_OWNER, _CREDENTIAL], (204, None)
            ),
        },
        f"{PREFIX}/lookup/{{credentialId}}": {
            "get": _operation("lookupCredential", "Lookup Credential", [_CREDENTIAL], (200, result))
        },
        "/auth-api/token": {
            "post": {
                "operationId": "token",
                "summary": "OAuth 2.0 client-credentials grant (RFC 6749 §4.4)",
                "tags": ["auth"],
                "security": [{"clientBasic": []}, {}],
                "parameters": [],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"type": "string", "enum": ["client_credentials"]},
                                "client_id": {"type": "string"},
                                "client_secret": {"type": "string"},
                            },
                        },
                        "application/x-www-form-urlencoded",
                    ),
                },
                "responses": {
                    "200": {
                        "description": "a token",
                        **_json(
                            {
                                "type": "object",
                                "properties": {
                                    "access_token": {"type": "string"},
                                    "token_type": {"type": "string"},
                                    "expires_in": {"type": "integer"},
                                },
                            }
                        ),
                    },
                    **{
                        code: {
                            "description": "RFC 6749 §5.2 error",
                            **_json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "error": {"type": "string"},
                                        "error_description": {"type": "string"},
                                    },
                                }
                            ),
                        }
                        for code in ("400", "401", "503")
                    },
                },
            }
        },
        "/.well-known/jwks.json": {
            "get": {
                "operationId": "jwks",
                "summary": "The bridge's token-signing keys (JWKS)",
                "tags": ["auth"],
                "security": [],
                "parameters": [],
                "responses": {"200": {"description": "JWKS", **_json({"type": "object"})}},
            }
        },
    }
    return paths, components
