"""What a client may send as text, as JSON Schema: the request guard refuses U+0000 (which
PostgreSQL cannot store) in every string and member name of a REST body, and the request types
declare it with these, so the OpenAPI document says what the guard enforces.

Kept apart from the REST layer: the credential shapes (a domain package) declare it too.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

#: Text a client sends: no NUL (Postgres stores none). A lone surrogate is no UTF-8: the
#: JSON decoder refuses it.
TEXT_PATTERN = "^[^\\x00]*$"

#: The document's component for a JSON value of any shape (``$ref``: it nests).
JSON_VALUE = "JsonValue"
JSON_VALUE_REF = f"#/components/schemas/{JSON_VALUE}"
_TEXT = {"pattern": TEXT_PATTERN}
_MEMBERS = {"propertyNames": _TEXT, "additionalProperties": {"$ref": JSON_VALUE_REF}}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "any JSON value whose strings and member names hold no U+0000",
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", **_TEXT},
        {"type": "array", "items": {"$ref": JSON_VALUE_REF}},
        {"type": "object", **_MEMBERS},
    ],
}

#: A string without NUL.
Text = Annotated[str, Meta(pattern=TEXT_PATTERN)]
#: Any JSON value (its strings and member names without NUL).
JsonValue = Annotated[Any, Meta(extra_json_schema={"$ref": JSON_VALUE_REF})]
#: A JSON object of any members (their names and strings without NUL).
JsonObject = Annotated[dict[str, Any], Meta(extra_json_schema=_MEMBERS)]
