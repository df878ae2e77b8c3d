"""Every ``/list`` write is all-or-nothing: one bad item and no item is applied (issue 2).

The sync batches its writes; a sandbox that applied the good half of a refused batch would
hide the partial-write bugs a real Tripletex would expose.
"""

from __future__ import annotations

import pytest


def _employee(**overrides) -> dict:
    body = {"firstName": "Ola", "lastName": "Li", "userType": "STANDARD", "department": {"id": 1}}
    return {**body, **overrides}


def _project(**overrides) -> dict:
    return {"name": "Tak", "startDate": "2026-03-01", "projectManager": {"id": 1}, **overrides}


# (endpoint, good item, bad item, expected field of the 422) — the bad item collides with the
# good one (uniqueness within the batch) or breaks a rule of its own.
POST_BATCHES = [
    ("/customer/list", {"name": "A", "customerNumber": 501}, {"name": "B", "customerNumber": 501},
     "customerNumber"),
    ("/customer/list", {"name": "A"}, {"name": "B", "email": "ugyldig"}, "email"),
    ("/employee/list", _employee(email="ola@example.no"), _employee(email="OLA@example.no"),
     "email"),
    ("/employee/list", _employee(email="ola@example.no"), _employee(email="kari@example.no", lastName=None),
     "lastName"),
    ("/project/list", _project(number="9"), _project(number="9"), "number"),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "good", "bad", "field"), POST_BATCHES)
def test_post_list_with_one_bad_item_creates_nothing(api, endpoint, good, bad, field):
    listing = endpoint.removesuffix("/list")
    before = api.get(listing, fields="id").json()["values"]
    resp = api.post(endpoint, [good, bad])
    assert resp.status_code == 422 and resp.json()["code"] == 18000, resp.text
    assert [(m["field"], m["path"]) for m in resp.json()["validationMessages"]] == [
        (field, f"[1].{field}")
    ]
    assert api.get(listing, fields="id").json()["values"] == before


def test_participant_list_with_one_unknown_employee_adds_nobody(api):
    project = api.create("project", _project())
    worker = api.employee()
    before = api.get(f"/project/{project['id']}").json()["value"]
    resp = api.post(
        "/project/participant/list",
        [
            {"project": {"id": project["id"]}, "employee": {"id": worker["id"]}},
            {"project": {"id": project["id"]}, "employee": {"id": 424242}},
        ],
    )
    assert resp.status_code == 422, resp.text
    after = api.get(f"/project/{project['id']}").json()["value"]
    assert after["participants"] == before["participants"]
    assert after["version"] == before["version"]


def test_put_project_list_with_one_stale_version_changes_nothing(api):
    one, two = api.create("project", _project()), api.create("project", _project())
    resp = api.put(
        "/project/list",
        [
            {"id": one["id"], "version": one["version"], "name": "Ny"},
            {"id": two["id"], "version": two["version"] + 5, "name": "Ny"},
        ],
    )
    assert resp.status_code == 409 and resp.json()["code"] == 8000
    assert api.get(f"/project/{one['id']}").json()["value"]["name"] == "Tak"
