"""The OpenAPI document: generated from the route table and the types, valid OpenAPI 3.1."""

from __future__ import annotations

import re
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_urldispatcher import PrefixedSubAppResource
from openapi_spec_validator import validate

from bridge.api import ApiServices
from bridge.api.app import api_apps
from bridge.api.visible import VISIBLE, visible_class
from bridge.db.database import Database
from tests.api.conftest import Api, api_config


def routes_of(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for resource in app.router.resources():
        assert isinstance(resource, PrefixedSubAppResource)
        for route in resource._app.router.routes():
            assert route.resource is not None
            found.add((route.method.lower(), route.resource.canonical.rstrip("/")))
    return found


@pytest.fixture
async def document(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


def operation(document: dict[str, Any], operation_id: str) -> dict[str, Any]:
    for operations in document["paths"].values():
        for op in operations.values():
            if op["operationId"] == operation_id:
                return op  # type: ignore[no-any-return]
    raise KeyError(operation_id)


async def test_the_document_is_valid_openapi_and_matches_the_routes(
    document: dict[str, Any], db: Database, services: ApiServices
) -> None:
    validate(document)  # raises on any violation of OpenAPI 3.1
    assert document["openapi"] == "3.1.0"
    app = web.Application()
    for prefix, sub_app in api_apps(api_config(), db, services):
        app.add_subapp(prefix, sub_app)
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    assert routes_of(app) == documented
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert declared == {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert "400" in op["responses"] and "500" in op["responses"], (method, path)
    assert (
        document["components"]["securitySchemes"]["headerToken"]["name"] == "linkedin-access-token"
    )


async def test_parameters_carry_their_real_constraints(document: dict[str, Any]) -> None:
    params = {p["name"]: p for p in operation(document, "listMessages")["parameters"]}
    assert params["pageNumber"]["schema"]["maximum"] == 1_000_000
    assert params["pageRowCount"]["schema"]["maximum"] == 1000
    assert params["cursor"]["schema"]["pattern"].startswith("^m")
    assert params["sentAt"]["schema"]["type"] == "array" and params["sentAt"]["explode"]
    assert "access_token" not in params  # a security scheme, not a listed parameter
    assert "requestId" in params and "asUserId" in params
    conversations = {p["name"]: p for p in operation(document, "listConversations")["parameters"]}
    assert conversations["participantIds_op"]["schema"]["enum"] == ["contains", "overlap"]


async def test_bodies_and_resources_as_handled(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "_owner" in schemas["Connection"]["properties"]
    create = schemas["CreateMessage"]
    assert create["required"] == ["conversationId"]  # media-only messages need no content
    assert create["additionalProperties"] is False
    body = operation(document, "createMessage")["requestBody"]["content"]["application/json"]
    assert {"anyOf": [{"required": ["content"]}, {"required": ["media"]}]} in body["schema"][
        "allOf"
    ]
    assert schemas["CreateConversation"]["properties"]["participantIds"]["minItems"] == 2
    patch = operation(document, "updateConversation")["requestBody"]["content"]
    assert {"minProperties": 1} in patch["application/json"]["schema"]["allOf"]
    assert schemas["DeviceSpec"]["properties"]["platform"]["pattern"]
    assert schemas["MarkSeen"]["properties"]["notificationIds"]["minItems"] == 1


async def test_every_status_and_the_error_bodies(document: dict[str, Any]) -> None:
    get = operation(document, "getConversation")["responses"]
    assert set(get) == {"200", "400", "401", "403", "404", "500"}
    assert get["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/NetworkError")
    assert set(operation(document, "createConnectionRequest")["responses"]) >= {"200", "201", "409"}
    pod = operation(document, "symphonyCreateConnection")["responses"]
    assert pod["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/SymphonyError")
    assert operation(document, "publicKey")["security"] == []


async def test_links_from_each_create_to_what_takes_its_id(document: dict[str, Any]) -> None:
    links = operation(document, "createConversation")["responses"]["201"]["links"]
    assert links["GetConversation"] == {
        "operationId": "getConversation",
        "parameters": {"conversationId": "$response.body#/conversation/id"},
    }
    assert set(links) == {"GetConversation", "UpdateConversation", "DeleteConversation"}
    for create, targets in [
        ("createMessage", {"getMessage", "updateMessage", "deleteMessage"}),
        ("createConnection", {"getConnection", "deleteConnection"}),
        ("createConnectionRequest", {"getConnectionRequest", "updateConnectionRequest",
                                     "deleteConnectionRequest"}),
        ("registerDevice", {"unregisterDevice"}),
    ]:  # fmt: skip
        responses = operation(document, create)["responses"]
        found = {link["operationId"] for link in responses[min(responses)]["links"].values()}
        assert found == targets, create


def test_the_visible_characters_match_this_pythons_unicode_tables() -> None:
    """The class of characters a required text must hold one of is what text cleaning keeps
    (printable) less white space, by the Unicode tables of the Python running the bridge."""
    assert VISIBLE == visible_class()


async def test_the_connection_gate_is_documented_where_it_refuses(document: dict[str, Any]) -> None:
    for operation_id in ("createConversation", "updateConversation"):
        refused = operation(document, operation_id)["responses"]["403"]
        assert "NotConnected" in refused["description"]
        example = refused["content"]["application/json"]["examples"]["NotConnected"]["value"]
        assert example["status"] == 403 and "connection request" in example["message"]
    assert (
        "NotConnected"
        not in operation(document, "getConversation")["responses"]["403"]["description"]
    )


async def test_the_common_routes_are_on_each_service(document: dict[str, Any]) -> None:
    for prefix in ("/messaging-api", "/networking-api", "/notification-api"):
        for path in ("/currentuser", "/permissions", "/permissions/{permissionName}"):
            assert "get" in document["paths"][prefix + path], prefix + path
    (param,) = operation(document, "messagingPermission")["parameters"][:1]
    assert param["name"] == "permissionName" and "pattern" in param["schema"]
    params = {p["name"] for p in operation(document, "listMessages")["parameters"]}
    assert {"unreadBy", "deletedFor"} <= params
    assert "sessionId" in document["components"]["schemas"]["Envelope"]["properties"]


#: Character categories that hold U+0000 (\\D, \\S, \\W).
_NUL_CATEGORIES = {sre.CATEGORY_NOT_DIGIT, sre.CATEGORY_NOT_SPACE, sre.CATEGORY_NOT_WORD}


def _class_holds_nul(items: list[tuple[Any, Any]]) -> bool:
    negated = bool(items) and items[0][0] is sre.NEGATE
    holds = any(
        (kind is sre.LITERAL and value == 0)
        or (kind is sre.RANGE and value[0] == 0)
        or (kind is sre.CATEGORY and value in _NUL_CATEGORIES)
        for kind, value in items
    )
    return holds != negated


def _admits_nul(parsed: Any) -> bool:
    for op, av in parsed:
        if op is sre.ANY or (op is sre.NOT_LITERAL and av != 0) or (op is sre.LITERAL and av == 0):
            return True
        if op is sre.IN and _class_holds_nul(av):
            return True
        if op is sre.SUBPATTERN and _admits_nul(av[3]):
            return True
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and _admits_nul(av[2]):
            return True
        if op is sre.BRANCH and any(_admits_nul(branch) for branch in av[1]):
            return True
    return False


def admits_nul(pattern: str) -> bool:
    """Whether a string holding U+0000 can match ``pattern`` (JSON Schema's search semantics:
    unanchored, anything may stand before or after)."""
    parsed = list(sre_parse.parse(pattern))
    anchored = parsed[:1] == [(sre.AT, sre.AT_BEGINNING)] and parsed[-1:] == [(sre.AT, sre.AT_END)]
    return not anchored or _admits_nul(parsed)


def test_the_nul_probe_tells_patterns_apart() -> None:
    assert not admits_nul("^[^\\x00]*$") and not admits_nul("^[a-z0-9_-]{1,128}$")
    assert not admits_nul("^(?:null|\\$today|[0-9]{4})$")
    for admitting in ("^[a-z]+", "[a-z]+$", "^.*$", "^[^a]*$", "^\\W+$", "^(a|[\\x00-z])$"):
        assert admits_nul(admitting), admitting


def unconstrained_text(schema: Any, schemas: dict[str, Any], seen: frozenset[str]) -> list[str]:
    """Where ``schema`` takes text that may hold U+0000: a string with no pattern excluding it
    (nor an enum, a const or a format), or an object's member names."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return [] if name in seen else unconstrained_text(schemas[name], schemas, seen | {name})
    found = [
        where
        for key in ("anyOf", "oneOf", "allOf")
        for sub in schema.get(key, [])
        for where in unconstrained_text(sub, schemas, seen)
    ]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "string" in kinds and not {"enum", "const", "format"} & set(schema):
        if "pattern" not in schema or admits_nul(schema["pattern"]):
            found.append(f"string {schema}")
    for name, member in schema.get("properties", {}).items():
        found += [f"{name}: {where}" for where in unconstrained_text(member, schemas, seen)]
    extra = schema.get("additionalProperties")
    if "object" in kinds and extra is not False:
        names = schema.get("propertyNames", {}).get("pattern")
        if names is None or admits_nul(names):
            found.append("member names")
        found += unconstrained_text(extra, schemas, seen)
    found += unconstrained_text(schema.get("items"), schemas, seen)
    return found


async def test_every_text_a_request_takes_declares_it_holds_no_nul(
    document: dict[str, Any],
) -> None:
    """The request guard refuses U+0000 in every string and member name of a JSON body (and
    query strings are decoded by their types): the document says so, field by field, so that
    what it declares valid is accepted. The OAuth form is read as sent (an unknown client id
    is a 401 whatever it holds)."""
    schemas = document["components"]["schemas"]
    found: list[str] = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            for param in op["parameters"]:
                for where in unconstrained_text(param["schema"], schemas, frozenset()):
                    found.append(f"{method} {path} {param['name']}: {where}")
            content = op.get("requestBody", {}).get("content", {})
            for where in unconstrained_text(
                content.get("application/json", {}).get("schema"), schemas, frozenset()
            ):
                found.append(f"{method} {path} body: {where}")
    assert found == []
    assert not admits_nul(schemas["BasicCredential"]["properties"]["username"]["pattern"])
    assert re.search(schemas["JsonValue"]["anyOf"][1]["pattern"], "a\x00") is None
