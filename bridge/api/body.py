"""Reading JSON request bodies: every problem is a 400 naming the field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..errors import BadRequest
from ..ids import parse_uuid

MAX_IDS = 500


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (an empty body counts as ``{}``)."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def text(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    return value


def required_text(body: dict[str, Any], name: str) -> str:
    value = text(body, name, required=True)
    assert value is not None
    return value


def boolean(body: dict[str, Any], name: str, *, required: bool = False) -> bool | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def an_id(body: dict[str, Any], name: str, *, required: bool = False) -> uuid.UUID | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    return parse_uuid(value, name)


def required_id(body: dict[str, Any], name: str) -> uuid.UUID:
    value = an_id(body, name, required=True)
    assert value is not None
    return value


def ids(body: dict[str, Any], name: str, *, required: bool = False) -> list[uuid.UUID] | None:
    """A list of ids; a single id is taken as a list of one."""
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_IDS:
        raise BadRequest(f"{name}: at most {MAX_IDS} ids")
    return list(dict.fromkeys(parse_uuid(item, name) for item in items))


def instant(body: dict[str, Any], name: str) -> datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be an ISO 8601 date-time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def mapping(body: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be an object")
    return value
