"""The OpenAPI 3 schema served at ``GET /api/schema`` and produced by ``manage.py spectacular``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS

DOCUMENTED_PATHS = {"/api/token", "/api/token/refresh", "/.well-known/jwks.json", "/api/me"}
TOKEN_KEYS = {"token_type", "expires_in", "access_token", "refresh_token"}


def fetch_schema(client: Client, how: str) -> dict[str, Any]:
    if how == "format=json":
        response = client.get("/api/schema", {"format": "json"})
        assert response.status_code == 200
        return json.loads(response.content)
    if how == "accept-json":
        response = client.get("/api/schema", headers={"Accept": "application/vnd.oai.openapi+json"})
        assert response.status_code == 200
        return json.loads(response.content)
    response = client.get("/api/schema")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi;")
    return yaml.safe_load(response.content)


@pytest.fixture
def schema(client: Client) -> dict[str, Any]:
    return fetch_schema(client, "format=json")


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if reference is None:
        return schema
    prefix = "#/components/schemas/"
    assert reference.startswith(prefix)
    return document["components"]["schemas"][reference.removeprefix(prefix)]


def json_body_schema(document: dict[str, Any], holder: dict[str, Any]) -> dict[str, Any]:
    return resolve(document, holder["content"]["application/json"]["schema"])


def assert_object_of_strings(schema: dict[str, Any], names: set[str]) -> None:
    assert schema["type"] == "object"
    assert set(schema["properties"]) == names
    assert set(schema["required"]) == names
    for name in names:
        assert schema["properties"][name]["type"] == "string"


def assert_token_body(document: dict[str, Any], schema: dict[str, Any]) -> None:
    assert schema["type"] == "object"
    assert set(schema["properties"]) == TOKEN_KEYS
    assert set(schema["required"]) == TOKEN_KEYS
    assert schema["properties"]["expires_in"]["type"] == "integer"
    assert resolve(document, schema["properties"]["token_type"])["enum"] == ["bearer"]
    assert schema["properties"]["access_token"]["type"] == "string"
    assert schema["properties"]["refresh_token"]["type"] == "string"


@pytest.mark.parametrize("how", ["format=json", "accept-json", "yaml"])
def test_schema_is_an_openapi_3_document_listing_the_endpoints(client: Client, how: str) -> None:
    document = fetch_schema(client, how)

    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= DOCUMENTED_PATHS
    assert not {f"{path}/" for path in DOCUMENTED_PATHS} & set(document["paths"])


def test_password_token_operation_documents_credentials_tokens_and_errors(
    schema: dict[str, Any],
) -> None:
    item = schema["paths"]["/api/token"]
    assert set(item) == {"post"}
    operation = item["post"]

    assert operation["requestBody"]["required"] is True
    assert_object_of_strings(
        json_body_schema(schema, operation["requestBody"]), {"username", "password"}
    )
    assert_token_body(schema, json_body_schema(schema, operation["responses"]["200"]))
    for status in ("400", "401", "429", "503"):
        assert_object_of_strings(
            json_body_schema(schema, operation["responses"][status]), {"error", "message"}
        )


def test_refresh_operation_documents_the_refresh_token_and_errors(schema: dict[str, Any]) -> None:
    item = schema["paths"]["/api/token/refresh"]
    assert set(item) == {"post"}
    operation = item["post"]

    assert_object_of_strings(json_body_schema(schema, operation["requestBody"]), {"refresh_token"})
    assert_token_body(schema, json_body_schema(schema, operation["responses"]["200"]))
    for status in ("400", "401"):
        assert_object_of_strings(
            json_body_schema(schema, operation["responses"][status]), {"error", "message"}
        )


def test_jwks_operation_documents_a_key_set(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/.well-known/jwks.json"]["get"]

    body = json_body_schema(schema, operation["responses"]["200"])
    assert body["properties"]["keys"]["type"] == "array"


def test_me_operation_requires_a_bearer_access_token(schema: dict[str, Any]) -> None:
    operation = schema["paths"]["/api/me"]["get"]

    (requirement,) = operation["security"]
    (scheme_name,) = requirement
    assert schema["components"]["securitySchemes"][scheme_name] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    body = json_body_schema(schema, operation["responses"]["200"])
    assert {"id", "username", "email", "scope", "session"} <= set(body["properties"])


def test_spectacular_command_validates_without_warnings_or_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    GENERATOR_STATS.reset()
    output = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(output))

    stderr = capsys.readouterr().err
    assert "Warning" not in stderr
    assert "Error" not in stderr
    document = yaml.safe_load(output.read_text())
    assert set(document["paths"]) >= DOCUMENTED_PATHS


@pytest.mark.parametrize("path", ["/api/token/logout", "/auth/logout"])
def test_logout_operations_take_a_bearer_token_and_answer_204(
    schema: dict[str, Any], path: str
) -> None:
    operation = schema["paths"][path]["post"]

    assert operation["security"] == [{"bearerAuth": []}]
    assert "content" not in operation["responses"]["204"]
    assert_object_of_strings(
        json_body_schema(schema, operation["responses"]["401"]), {"error", "message"}
    )
