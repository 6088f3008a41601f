"""The OpenAPI document: generated from the route table and the types, valid OpenAPI 3.1."""

from __future__ import annotations

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
    assert "NotConnected" not in operation(document, "getConversation")["responses"]["403"][
        "description"
    ]


async def test_the_common_routes_are_on_each_service(document: dict[str, Any]) -> None:
    for prefix in ("/messaging-api", "/networking-api", "/notification-api"):
        for path in ("/currentuser", "/permissions", "/permissions/{permissionName}"):
            assert "get" in document["paths"][prefix + path], prefix + path
    (param,) = operation(document, "messagingPermission")["parameters"][:1]
    assert param["name"] == "permissionName" and "pattern" in param["schema"]
    params = {p["name"] for p in operation(document, "listMessages")["parameters"]}
    assert {"unreadBy", "deletedFor"} <= params
    assert "sessionId" in document["components"]["schemas"]["Envelope"]["properties"]
