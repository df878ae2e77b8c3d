"""Contract: every operation's response body validates against the official OpenAPI 2.74 schema.

The official schemas are loose (no ``required``, no ``additionalProperties``), so they are
tightened here: an object may carry only the properties the schema declares. Two
relaxations follow observed behaviour (API-NOTES 3.2): unset references and unset dates
are ``null`` (the 3.0 document never says ``nullable``), and the error envelope's optional
parts are ``null`` (API-NOTES 6.3).
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import requests
from jsonschema import Draft202012Validator

from sync_pipeline_tests.sandbox_tripletex.conftest import TripletexApi

NULLABLE = {
    "endDate",
    "startDate",
    "dateOfBirth",
    "message",
    "developerMessage",
    "validationMessages",
    "field",
    "path",
    "rootId",
}

# Every operation the sandbox serves: (method, path as in the OpenAPI document, status).
OPERATIONS = [
    ("put", "/token/session/:create", 200),
    ("post", "/token/session/:create", 201),
    ("get", "/token/session/>whoAmI", 200),
    ("get", "/project", 200),
    ("post", "/project", 201),
    ("get", "/project/{id}", 200),
    ("put", "/project/{id}", 200),
    ("delete", "/project/{id}", 204),
    ("post", "/project/list", 201),
    ("put", "/project/list", 200),
    ("get", "/project/settings", 200),
    ("put", "/project/settings", 200),
    ("post", "/project/participant", 201),
    ("post", "/project/participant/list", 201),
    ("delete", "/project/participant/list", 204),
    ("get", "/customer", 200),
    ("post", "/customer", 201),
    ("get", "/customer/{id}", 200),
    ("put", "/customer/{id}", 200),
    ("delete", "/customer/{id}", 204),
    ("post", "/customer/list", 201),
    ("put", "/customer/list", 200),
    ("get", "/employee", 200),
    ("post", "/employee", 201),
    ("get", "/employee/{id}", 200),
    ("put", "/employee/{id}", 200),
    ("post", "/employee/list", 201),
    ("get", "/department", 200),
]


def _tighten(schema: dict) -> None:
    props = schema.get("properties")
    if props:
        schema.setdefault("additionalProperties", False)
        for name, prop in list(props.items()):
            if "$ref" in prop:
                props[name] = {"anyOf": [prop, {"type": "null"}]}
            elif name in NULLABLE and "type" in prop:
                prop["type"] = [prop["type"], "null"]
            _tighten(prop)
    if isinstance(schema.get("items"), dict):
        _tighten(schema["items"])


@pytest.fixture(scope="module")
def schema_root(openapi) -> dict:
    schemas = copy.deepcopy(openapi["components"]["schemas"])
    for schema in schemas.values():
        _tighten(schema)
    return {"components": {"schemas": schemas}}


def validate(schema_root: dict, ref: str, body) -> None:
    validator = Draft202012Validator({**schema_root, "$ref": ref})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def response_ref(openapi: dict, method: str, path: str, status: int) -> str | None:
    response = openapi["paths"][path][method]["responses"][str(status)]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return schema["$ref"] if schema else None


@pytest.fixture(scope="module")
def exchanges(tx_sandbox) -> dict[tuple[str, str], requests.Response]:
    """Call every operation once on a fresh company; responses keyed by (method, path)."""
    api = TripletexApi(tx_sandbox, tx_sandbox.new_company(seed="empty"))
    out: dict[tuple[str, str], requests.Response] = {}
    expires = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    creds = {"consumerToken": "c", "employeeToken": api.employee_token, "expirationDate": expires}
    out["put", "/token/session/:create"] = requests.put(
        f"{api.base}/token/session/:create", params=creds, timeout=30
    )
    out["post", "/token/session/:create"] = requests.post(
        f"{api.base}/token/session/:create", json=creds, timeout=30
    )
    out["get", "/token/session/>whoAmI"] = api.get(
        "/token/session/>whoAmI", fields="*,company(*),employee(*)"
    )
    customer = api.post(
        "/customer",
        {"name": "Fjord Rør AS", "email": "post@fjordror.no", "postalAddress": {"city": "Bergen"}},
    )
    out["post", "/customer"] = customer
    cid = customer.json()["value"]["id"]
    out["get", "/customer"] = api.get("/customer", fields="*,postalAddress(*),changes")
    out["get", "/customer/{id}"] = api.get(f"/customer/{cid}")
    out["put", "/customer/{id}"] = api.put(f"/customer/{cid}", {"phoneNumber": "+47 55 00 00 00"})
    out["post", "/customer/list"] = api.post("/customer/list", [{"name": "A AS"}, {"name": "B AS"}])
    listed = out["post", "/customer/list"].json()["values"]
    out["put", "/customer/list"] = api.put(
        "/customer/list",
        [{"id": c["id"], "version": c["version"], "isInactive": True} for c in listed],
    )
    employee = api.post(
        "/employee",
        {
            "firstName": "Per",
            "lastName": "Hansen",
            "userType": "STANDARD",
            "email": "per.hansen@example.no",
            "department": {"id": 1},
        },
    )
    out["post", "/employee"] = employee
    eid = employee.json()["value"]["id"]
    out["get", "/employee"] = api.get("/employee", fields="*,department(*),changes")
    out["get", "/employee/{id}"] = api.get(f"/employee/{eid}")
    out["put", "/employee/{id}"] = api.put(f"/employee/{eid}", {"phoneNumberMobile": "+47 400"})
    out["post", "/employee/list"] = api.post(
        "/employee/list",
        [
            {
                "firstName": "Ida",
                "lastName": "Berg",
                "userType": "NO_ACCESS",
                "department": {"id": 1},
            }
        ],
    )
    out["get", "/department"] = api.get("/department")
    project = api.post(
        "/project",
        {
            "name": "Nytt bad",
            "startDate": "2026-02-01",
            "projectManager": {"id": 1},
            "customer": {"id": cid},
        },
    )
    out["post", "/project"] = project
    pid = project.json()["value"]["id"]
    out["get", "/project"] = api.get(
        "/project", fields="*,customer(*),participants(*),projectManager(*),changes"
    )
    out["get", "/project/{id}"] = api.get(f"/project/{pid}")
    out["put", "/project/{id}"] = api.put(f"/project/{pid}", {"isClosed": True})
    out["post", "/project/list"] = api.post(
        "/project/list",
        [{"name": "Tak", "startDate": "2026-03-01", "projectManager": {"id": 1}}],
    )
    batch = out["post", "/project/list"].json()["values"]
    out["put", "/project/list"] = api.put(
        "/project/list", [{"id": p["id"], "version": p["version"], "name": "Tak 2"} for p in batch]
    )
    out["get", "/project/settings"] = api.get("/project/settings")
    out["put", "/project/settings"] = api.put(
        "/project/settings", {"autoGenerateProjectNumber": False}
    )
    participant = api.post(
        "/project/participant", {"project": {"id": pid}, "employee": {"id": eid}}
    )
    out["post", "/project/participant"] = participant
    second = api.post(
        "/employee",
        {"firstName": "Eva", "lastName": "Lie", "userType": "NO_ACCESS", "department": {"id": 1}},
    )
    out["post", "/project/participant/list"] = api.post(
        "/project/participant/list",
        [{"project": {"id": pid}, "employee": {"id": second.json()["value"]["id"]}}],
    )
    ids = [participant.json()["value"]["id"]]
    out["delete", "/project/participant/list"] = api.delete(
        "/project/participant/list", ids=",".join(map(str, ids))
    )
    out["delete", "/project/{id}"] = api.delete(f"/project/{batch[0]['id']}")
    spare = api.customer(name="Slettes AS")
    out["delete", "/customer/{id}"] = api.delete(f"/customer/{spare['id']}")
    return out


@pytest.mark.parametrize(
    ("method", "path", "status"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in OPERATIONS]
)
def test_response_matches_official_schema(exchanges, openapi, schema_root, method, path, status):
    resp = exchanges[method, path]
    assert resp.status_code == status, resp.text
    assert resp.headers.get("x-tlx-request-id")
    ref = response_ref(openapi, method, path, status)
    if ref is None:
        assert resp.content == b""
        return
    validate(schema_root, ref, resp.json())


def test_error_bodies_match_api_error_schema(api, schema_root):
    bodies = [
        api.post("/project", {"name": "x", "status": "OPEN"}),  # 422
        api.get("/project/999999"),  # 404
        api.get("/project", fields="fixedPrice"),  # 400
        requests.get(f"{api.base}/project", auth=("0", "nope"), timeout=30),  # 401
    ]
    for resp in bodies:
        body = resp.json()
        validate(schema_root, "#/components/schemas/ApiError", body)
        assert body["requestId"] == resp.headers["x-tlx-request-id"]


def test_default_fields_are_exactly_the_schema_fields_without_changes(api, openapi):
    """Default ``fields`` = every top-level field (API-NOTES 3.4), ``changes`` only on request."""
    schemas = openapi["components"]["schemas"]
    project = api.project()
    customer = api.customer()
    for name, value in (
        ("Project", api.get(f"/project/{project['id']}").json()["value"]),
        ("Customer", api.get(f"/customer/{customer['id']}").json()["value"]),
        ("Employee", api.get("/employee/1").json()["value"]),
        ("Department", api.get("/department/1").json()["value"]),
    ):
        assert set(value) == set(schemas[name]["properties"]) - {"changes"}, name


def test_tightened_schema_rejects_undeclared_and_mistyped_properties(schema_root):
    """Guards the contract tests themselves: the tightened schemas are not vacuous."""
    ref = "#/components/schemas/ResponseWrapperProject"
    with pytest.raises(AssertionError):
        validate(schema_root, ref, {"value": {"id": 1, "status": "OPEN"}})
    with pytest.raises(AssertionError):
        validate(schema_root, ref, {"value": {"id": 1, "isClosed": "no"}})
