"""The integration error log (Tripletex → Feillogg), ``/company`` and request statistics."""

from __future__ import annotations

ENTRY = {
    "code": "PROJECT_MISSING_START_DATE",
    "severity": "error",
    "message": "Prosjektet mangler startdato.",
    "entity": "projects",
    "record_id": 12,
    "record_label": "1001 Bad og flis",
    "first_seen_at": "2026-11-27T12:00:00Z",
    "last_seen_at": "2026-11-27T13:00:00.5+01:00",
}


def test_error_log_put_replaces_the_list_and_get_returns_it(svenn):
    assert svenn.get("/integrations/tripletex/errors").json() == {"errors": []}
    second = {**ENTRY, "code": "EMPLOYEE_MISSING_SURNAME", "record_id": None}
    resp = svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": [ENTRY, second]})
    assert resp.status_code == 204 and resp.content == b""
    assert svenn.get("/integrations/tripletex/errors").json() == {"errors": [ENTRY, second]}
    svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": [second]})
    assert svenn.get("/integrations/tripletex/errors").json() == {"errors": [second]}


def test_error_log_entry_fields_may_be_left_out_and_read_back_as_null(svenn):
    minimal = {
        k: ENTRY[k] for k in ("code", "severity", "message", "first_seen_at", "last_seen_at")
    }
    svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": [minimal]})
    (entry,) = svenn.get("/integrations/tripletex/errors").json()["errors"]
    assert entry == {**minimal, "entity": None, "record_id": None, "record_label": None}


def test_error_log_body_shape_is_validated(svenn):
    bad = [
        ({"errors": "none"}, "errors"),
        ({}, "errors"),
        ({"errors": [], "extra": 1}, "extra"),
        ({"errors": [{**ENTRY, "first_seen_at": "i går"}]}, "errors[0].first_seen_at"),
        ({"errors": [{**ENTRY, "colour": "red"}]}, "errors[0].colour"),
        ({"errors": [{k: v for k, v in ENTRY.items() if k != "code"}]}, "errors[0].code"),
        ({"errors": [ENTRY, 5]}, "errors[1]"),
    ]
    svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": [ENTRY]})
    for body, field in bad:
        resp = svenn.request("PUT", "/integrations/tripletex/errors", json=body)
        assert resp.status_code == 422, body
        assert field in resp.json()["error"]["fields"], body
    resp = svenn.request("PUT", "/integrations/tripletex/errors", content=b"{oops")
    assert resp.status_code == 400
    assert svenn.get("/integrations/tripletex/errors").json() == {"errors": [ENTRY]}


def test_error_logs_are_per_company(svenn):
    svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": [ENTRY]})
    assert svenn.other_company().get("/integrations/tripletex/errors").json() == {"errors": []}


def test_company_names_the_keys_company(svenn):
    other = svenn.other_company(name="Rørlegger Hansen AS", organization_number="923609016")
    assert other.get("/company").json() == {
        "id": 2,
        "name": "Rørlegger Hansen AS",
        "organization_number": "923609016",
    }
    assert svenn.get("/company").json()["id"] == 1


def test_stats_count_record_writes_by_route_template(svenn):
    svenn.create("customers", {"name": "A"})
    svenn.patch("/customers/1", {"name": "B"})
    svenn.get("/customers/1")
    svenn.delete("/customers/1")
    svenn.request("PUT", "/integrations/tripletex/errors", json={"errors": []})
    stats = svenn.client.get("/_sandbox/stats", params={"api_key": svenn.key}).json()
    assert stats["writes"] == 3
    assert stats["requests"]["GET /api/v1/customers/{id}"] == 1
    assert stats["requests"]["PATCH /api/v1/customers/{id}"] == 1
    assert stats["requests"]["PUT /api/v1/integrations/tripletex/errors"] == 1


def test_control_endpoints_register_and_reset_companies(svenn):
    resp = svenn.client.post("/_sandbox/companies", json={"api_key": "ny", "seed": "empty"})
    assert resp.status_code == 201
    headers = {"Authorization": "Bearer ny"}
    assert svenn.client.get("/api/v1/projects", headers=headers).status_code == 200
    svenn.client.post("/_sandbox/reset")
    assert svenn.client.get("/api/v1/projects", headers=headers).status_code == 401
    assert svenn.get("/projects").status_code == 200  # the start-up company stays


def test_openapi_document_hides_the_control_endpoints(svenn):
    doc = svenn.client.get("/api/v1/openapi.json").json()
    assert all(path.startswith("/api/v1/") for path in doc["paths"])
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The company's API key.",
    }
