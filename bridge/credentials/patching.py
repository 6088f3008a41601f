"""JSON Patch (RFC 6902) over a credential, with the ``jsonpatch`` library.

The document patched is the credential as PUT takes it, its config whole (secrets included, so
``replace /config/secret`` works). Operations that would read a secret (``test`` on it, ``copy``
or ``move`` from it, or on the config or document as a whole) are refused, so a patch cannot be
used to guess one. Operations are applied one by one to a copy, so a failure names its
operation and leaves the credential as it was; error messages never quote the document.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import jsonpatch
import jsonpointer
import msgspec

from ..errors import BadRequest
from .models import Credential, PatchOperation, join_config


def _iso(value: Any) -> Any:
    return None if value is None else value.isoformat()


def patch_document(credential: Credential, opened: dict[str, str]) -> dict[str, Any]:
    """The credential as a JSON document, secrets in its config."""
    return {
        "id": str(credential.id),
        "account_id": str(credential.owner_id),
        "owner_type": "account",
        "fullname": credential.fullname,
        "name": credential.name,
        "managed": credential.managed,
        "config": join_config(credential.type, credential.public, opened),
        "expires": _iso(credential.expires),
        "created_at": _iso(credential.created_at),
        "updated_at": _iso(credential.updated_at),
    }


def _reads_secret(pointer: str, secret_fields: Collection[str]) -> bool:
    if pointer in ("", "/config"):
        return True
    parts = pointer.split("/")
    return len(parts) >= 3 and parts[1] == "config" and parts[2] in secret_fields


def apply_patch(
    document: dict[str, Any], operations: list[dict[str, Any]], *, secret_fields: Collection[str]
) -> dict[str, Any]:
    """The patched copy of ``document``; 400 naming the first operation that fails."""
    result = copy.deepcopy(document)
    for i, operation in enumerate(operations):
        op, path = operation["op"], operation["path"]
        where = f"operation {i} ({op} {path})"
        if op == "test" and _reads_secret(path, secret_fields):
            raise BadRequest(f"{where}: secret fields cannot be tested")
        if op in ("copy", "move") and _reads_secret(operation.get("from", ""), secret_fields):
            raise BadRequest(f"{where}: secret fields cannot be copied or moved")
        try:
            result = jsonpatch.JsonPatch([operation]).apply(result, in_place=False)
        except jsonpatch.JsonPatchTestFailed:
            raise BadRequest(f"{where}: test failed; nothing was changed") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException):
            raise BadRequest(
                f"{where}: the path does not exist or cannot take this operation; "
                "nothing was changed"
            ) from None
        if not isinstance(result, dict):
            raise BadRequest(f"{where}: the credential must stay an object")
    return result


def operations_of(patch: list[PatchOperation]) -> list[dict[str, Any]]:
    """The operations as ``jsonpatch`` takes them, each checked for the members its op needs."""
    operations: list[dict[str, Any]] = []
    for i, item in enumerate(patch):
        operation: dict[str, Any] = {"op": item.op, "path": item.path}
        if item.op in ("add", "replace", "test"):
            if item.value is msgspec.UNSET:
                raise BadRequest(f"operation {i} ({item.op} {item.path}): value is required")
            operation["value"] = item.value
        if item.op in ("copy", "move"):
            if item.from_ is None:
                raise BadRequest(f"operation {i} ({item.op} {item.path}): from is required")
            operation["from"] = item.from_
        operations.append(operation)
    if not operations:
        raise BadRequest("the patch holds no operation")
    return operations
