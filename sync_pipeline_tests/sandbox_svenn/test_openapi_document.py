"""The published OpenAPI document agrees with svenn-api.md, read from the spec itself.

The spec lives beside the repository (``../shared/spec/svenn-api.md``); the test
walks its resource tables and checks every field's type, nullability, enum,
length rule and requiredness in the document, then the endpoints and statuses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import make_client

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "svenn-api.md"
SERVER_FIELDS = {
    "id": ("integer", False),
    "version": ("integer", False),
    "created_at": ("date-time", False),
    "updated_at": ("date-time", False),
    "deleted_at": ("date-time", True),
}


@pytest.fixture(scope="module")
def spec_tables() -> dict[str, list[tuple[str, str, str]]]:
    """resource → [(field, type text, rules text)] from the spec's "Resources" tables."""
    if not SPEC.exists():
        pytest.skip(f"svenn-api.md not found at {SPEC} (the spec lives beside the repository)")
    tables: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in SPEC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)`", line.strip())
        if heading:
            current = tables.setdefault(heading.group(1), [])
            continue
        if line.startswith("##"):
            current = None
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is not None and len(cells) == 3 and cells[0] not in ("field", "---"):
            current.append((cells[0], cells[1], cells[2]))
    assert set(tables) == {"projects", "customers", "employees"}, tables
    return tables


@pytest.fixture(scope="module")
def doc() -> dict:
    with make_client() as client:
        return client.get("/api/v1/openapi.json").json()


def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def kind_of(doc: dict, schema: dict) -> tuple[str, bool, dict]:
    """(type or format, nullable, the non-null schema)."""
    options = schema.get("anyOf", [schema])
    nullable = {"type": "null"} in options
    (main,) = [resolve(doc, o) for o in options if o != {"type": "null"}]
    if main.get("type") == "array":
        return "array of " + main["items"]["type"], nullable, main
    if "enum" in main:
        return "enum", nullable, main
    if main.get("format") in ("date", "date-time"):
        return main["format"], nullable, main
    return main["type"], nullable, main


def expected_kind(type_text: str) -> tuple[str, bool, list[str] | None]:
    nullable = type_text.endswith(" or null")
    base = type_text.removesuffix(" or null")
    enum = re.findall(r"`(\w+)`", base)
    if enum:
        return "enum", nullable, enum
    return {"array of integers": "array of integer"}.get(base, base), nullable, None


MODEL = {"projects": "Project", "customers": "Customer", "employees": "Employee"}


def test_records_in_the_document_have_exactly_the_spec_fields_and_types(doc, spec_tables):
    for resource, rows in spec_tables.items():
        record = doc["components"]["schemas"][MODEL[resource]]
        assert set(record["properties"]) == {row[0] for row in rows} | set(SERVER_FIELDS)
        assert set(record["required"]) == set(record["properties"])  # always all present
        for name, type_text, _ in rows:
            kind, nullable, schema = kind_of(doc, record["properties"][name])
            want_kind, want_nullable, enum = expected_kind(type_text)
            assert (kind, nullable) == (want_kind, want_nullable), (resource, name)
            if enum:
                assert schema["enum"] == enum
        for name, (want_kind, want_nullable) in SERVER_FIELDS.items():
            kind, nullable, _ = kind_of(doc, record["properties"][name])
            assert (kind, nullable) == (want_kind, want_nullable), (resource, name)


def test_request_bodies_follow_the_spec_rules(doc, spec_tables):
    for resource, rows in spec_tables.items():
        create = doc["components"]["schemas"][MODEL[resource] + "Create"]
        patch = doc["components"]["schemas"][MODEL[resource] + "Patch"]
        assert create["additionalProperties"] is False and patch["additionalProperties"] is False
        assert "required" not in patch
        assert set(create["properties"]) == set(patch["properties"]) == {r[0] for r in rows}
        required = {name for name, _, rules in rows if rules.startswith("required")}
        assert set(create.get("required", [])) == required
        for name, type_text, rules in rows:
            kind, nullable, schema = kind_of(doc, create["properties"][name])
            assert (kind, nullable) == expected_kind(type_text)[:2], (resource, name)
            assert kind_of(doc, patch["properties"][name])[:2] == (kind, nullable)
            length = re.search(r"(\d+)–(\d+)", rules)
            if length:
                assert (schema["minLength"], schema["maxLength"]) == tuple(
                    map(int, length.groups())
                )
            default = re.search(r"default `?(\w+)`?", rules)
            if default:
                assert str(create["properties"][name]["default"]).lower() == default.group(1)
            if "e-mail" in rules:
                assert schema["format"] == "email"


def operation(doc, method, path):
    return doc["paths"]["/api/v1" + path][method]


def test_every_resource_has_the_spec_operations_and_statuses(doc, spec_tables):
    for resource in spec_tables:
        number = resource != "projects"
        expect = {
            ("get", f"/{resource}"): {"200", "400"},
            ("post", f"/{resource}"): {"201", "400", "422", *(["409"] if number else [])},
            ("get", f"/{resource}/{{id}}"): {"200", "404"},
            ("patch", f"/{resource}/{{id}}"): {
                "200",
                "404",
                "412",
                "422",
                *(["409"] if number else []),
            },
            ("delete", f"/{resource}/{{id}}"): {"204", "404"},
        }
        for (method, path), statuses in expect.items():
            op = operation(doc, method, path)
            assert statuses | {"401", "429", "5XX"} <= set(op["responses"]), (method, path)
            assert op["security"] == [{"bearerAuth": []}]
        params = {p["name"]: p for p in operation(doc, "get", f"/{resource}")["parameters"]}
        assert params["limit"]["schema"] == {
            **params["limit"]["schema"],
            "type": "integer",
            "minimum": 1,
            "maximum": 500,
            "default": 100,
        }
        assert params["updated_since"]["schema"]["format"] == "date-time"
        assert params["include_deleted"]["schema"]["type"] == "boolean"
        assert params["cursor"]["schema"]["type"] == "string"
        post = {p["name"] for p in operation(doc, "post", f"/{resource}")["parameters"]}
        patch = {p["name"] for p in operation(doc, "patch", f"/{resource}/{{id}}")["parameters"]}
        assert "Idempotency-Key" in post and "If-Match" in patch


def test_errors_rate_limit_headers_error_log_and_company_are_documented(doc):
    error = resolve(doc, doc["components"]["schemas"]["ErrorBody"]["properties"]["error"])
    assert {"code", "message", "fields"} == set(error["properties"])
    assert set(error["required"]) == {"code", "message"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                headers = set(response.get("headers", {}))
                assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= headers
                if status == "429":
                    assert "Retry-After" in headers, (method, path)
    put = operation(doc, "put", "/integrations/tripletex/errors")
    assert "204" in put["responses"]
    entry = doc["components"]["schemas"]["IntegrationError"]
    assert set(entry["properties"]) == {
        "code",
        "severity",
        "message",
        "entity",
        "record_id",
        "record_label",
        "first_seen_at",
        "last_seen_at",
    }
    company = doc["components"]["schemas"]["CompanyInfo"]
    assert set(company["properties"]) == {"id", "name", "organization_number"}
    assert "get" in doc["paths"]["/api/v1/integrations/tripletex/errors"]
    assert "200" in operation(doc, "get", "/company")["responses"]


def test_bulk_writes_are_documented_per_resource(doc, spec_tables):
    request = doc["components"]["schemas"]["BulkRequest"]
    assert request["required"] == ["operations"] and request["additionalProperties"] is False
    operations = request["properties"]["operations"]
    assert (operations["minItems"], operations["maxItems"]) == (1, 100)
    kinds = {}
    for option in operations["items"]["oneOf"]:
        schema = resolve(doc, option)
        kinds[schema["properties"]["op"]["const"]] = schema
    assert {kind: set(schema["required"]) for kind, schema in kinds.items()} == {
        "create": {"op", "data"},
        "update": {"op", "id", "data"},
        "delete": {"op", "id"},
    }
    assert "idempotency_key" in kinds["create"]["properties"]
    assert all("if_match" in kinds[kind]["properties"] for kind in ("update", "delete"))
    for resource in spec_tables:
        op = operation(doc, "post", f"/{resource}/bulk")
        assert {"200", "400", "401", "429", "5XX"} <= set(op["responses"])
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/BulkRequest"}
        results = resolve(doc, op["responses"]["200"]["content"]["application/json"]["schema"])
        result = resolve(doc, results["properties"]["results"]["items"])
        assert set(result["required"]) == {"status", "record", "error"}
        assert set(result["properties"]["status"]["enum"]) == {200, 201, 204, 404, 409, 412, 422}
        record = [o for o in result["properties"]["record"]["anyOf"] if o != {"type": "null"}]
        assert resolve(doc, record[0]) == doc["components"]["schemas"][MODEL[resource]]
