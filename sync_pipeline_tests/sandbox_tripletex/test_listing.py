"""List behaviour: filters, paging quirk, fields, sorting, change log, conditional GET, limits."""

from __future__ import annotations

import re

import pytest
import requests

from sync_pipeline.sandbox.process import SandboxProcess
from sync_pipeline_tests.sandbox_tripletex.conftest import TripletexApi


def ids(resp) -> list[int]:
    assert resp.status_code == 200, resp.text
    return [v["id"] for v in resp.json()["values"]]


def test_paging_and_the_full_result_size_quirk(api):
    """fullResultSize = min(total, from + count + 1): a has-more signal (API-NOTES 3.1)."""
    for i in range(5):
        api.customer(name=f"K{i}")
    page = api.get("/customer", count=1).json()
    assert (page["fullResultSize"], page["from"], page["count"]) == (2, 0, 1)
    page = api.get("/customer", count=3).json()
    assert page["fullResultSize"] == 4 and len(page["values"]) == 3
    page = api.get("/customer", count=5000).json()
    assert page["fullResultSize"] == 5 and page["count"] == 5
    last = api.get("/customer", **{"from": 3, "count": 2}).json()
    assert (last["fullResultSize"], last["count"]) == (5, 2)
    assert [v["name"] for v in last["values"]] == ["K3", "K4"]
    assert api.get("/customer", **{"from": 5}).json()["values"] == []


def test_C7_customers_hide_inactive_unless_asked_for(api):
    """isInactive defaults to false on GET /customer (API-NOTES 5.3)."""
    active = api.customer(name="Aktiv")
    inactive = api.customer(name="Sovende", isInactive=True)
    assert ids(api.get("/customer")) == [active["id"]]
    assert ids(api.get("/customer", isInactive="true")) == [inactive["id"]]


def test_customer_account_number_list_filter(api):
    a = api.customer(customerNumber=30001)
    api.customer(customerNumber=30002)
    c = api.customer(customerNumber=30003)
    assert ids(api.get("/customer", customerAccountNumber="30001,30003")) == [a["id"], c["id"]]


def test_project_number_and_is_closed_filters(api):
    open_ = api.project(number="P-1")
    closed = api.project(number="P-2", isClosed=True)
    assert ids(api.get("/project", number="P-2")) == [closed["id"]]
    assert ids(api.get("/project", isClosed="false")) == [open_["id"]]
    assert ids(api.get("/project", id=f"{closed['id']}")) == [closed["id"]]


def test_employee_filters_and_assignable_project_managers(api):
    worker = api.employee(employeeNumber="77", email="Ansatt.Sju@Example.no")
    outsider = api.employee(userType="NO_ACCESS", email=None)
    assert ids(api.get("/employee", employeeNumber="77")) == [worker["id"]]
    assert ids(api.get("/employee", email="ansatt.sju@example.no")) == [worker["id"]]
    assignable = ids(api.get("/employee", assignableProjectManagers="true"))
    assert worker["id"] in assignable and 1 in assignable and outsider["id"] not in assignable


def test_P5_auto_generated_project_numbers_follow_settings(api):
    """autoGenerateProjectNumber: true → next number for a null number; false → "" (P5)."""
    first = api.project()
    second = api.project(number=None)
    assert (first["number"], second["number"]) == ("1", "2")
    assert first["displayName"] == "1 Bad Storgata 1"
    settings = api.put("/project/settings", {"autoGenerateProjectNumber": False}).json()["value"]
    assert settings["autoGenerateProjectNumber"] is False
    assert api.get("/project/settings").json()["value"]["autoGenerateProjectNumber"] is False
    assert api.project()["number"] == ""


def test_representation_refs_unset_values_and_display_names(api):
    customer = api.customer(name="Banana AS")
    assert customer["displayName"] == f"Banana AS ({customer['customerNumber']})"
    assert customer["customerNumber"] == 10001 and customer["version"] == 1
    assert customer["organizationNumber"] == "" and customer["accountManager"] is None
    project = api.project(customer={"id": customer["id"]})
    host = api.base.split("://", 1)[1].rsplit("/v2", 1)[0]
    assert project["customer"] == {
        "id": customer["id"],
        "url": f"{host}/v2/customer/{customer['id']}",
    }
    assert (
        project["mainProject"] is None and project["description"] == "" and project["version"] == 0
    )
    employee = api.get("/employee/1").json()["value"]
    assert employee["displayName"] == f"{employee['firstName']} {employee['lastName']}"


def test_fields_selection_nested_and_star(api):
    customer = api.customer(name="Nested AS")
    api.project(customer={"id": customer["id"]})
    value = api.get("/project", fields="id,name,customer(name,postalAddress(city))").json()[
        "values"
    ][0]
    assert set(value) == {"id", "name", "customer"}
    assert value["customer"] == {"name": "Nested AS", "postalAddress": {"city": ""}}
    star = api.get("/project", fields="*").json()["values"][0]
    assert "changes" not in star and set(star["customer"]) == {"id", "url"}


def test_sorting_descending_and_by_sub_field(api):
    b = api.customer(name="Bravo")
    a = api.customer(name="Alfa")
    pa = api.project(name="Z", customer={"id": a["id"]})
    pb = api.project(name="Y", customer={"id": b["id"]})
    assert ids(api.get("/customer", sorting="name")) == [a["id"], b["id"]]
    assert ids(api.get("/customer", sorting="-name")) == [b["id"], a["id"]]
    assert ids(api.get("/project", sorting="customer.name")) == [pa["id"], pb["id"]]
    assert ids(api.get("/project", sorting="-customer.name")) == [pb["id"], pa["id"]]


def test_changes_log_create_and_update_with_oslo_offset(api):
    project = api.project()
    api.put(f"/project/{project['id']}", {"name": "Endret"})
    value = api.get(f"/project/{project['id']}", fields="*,changes").json()["value"]
    assert [c["changeType"] for c in value["changes"]] == ["CREATE", "UPDATE"]
    assert all(c["employeeId"] == 1 for c in value["changes"])
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0[12]:00", c["timestamp"])
        for c in value["changes"]
    )
    assert value["version"] == project["version"] + 1


def test_version_only_moves_when_something_changes(api):
    customer = api.customer()
    same = api.put(f"/customer/{customer['id']}", {"name": customer["name"]}).json()["value"]
    assert same["version"] == customer["version"]
    changed = api.put(f"/customer/{customer['id']}", {"name": "Nytt navn"}).json()["value"]
    assert changed["version"] == customer["version"] + 1


def test_read_only_fields_are_accepted_but_never_stored(api):
    customer = api.customer(isCustomer=False, displayName="Feil (1)")
    assert customer["isCustomer"] is True and customer["displayName"].endswith(")")
    project = api.project(numberOfSubProjects=99)
    assert project["numberOfSubProjects"] == 0


def test_if_none_match_gives_digest_and_304_until_something_changes(api):
    project = api.project()
    plain = api.get("/project").json()
    assert plain["versionDigest"] == "'If-None-Match' header not specified"
    first = api.http.get(f"{api.base}/project", headers={"If-None-Match": "x"}, timeout=30)
    digest = first.json()["versionDigest"]
    assert digest and digest != plain["versionDigest"]
    again = api.http.get(f"{api.base}/project", headers={"If-None-Match": digest}, timeout=30)
    assert again.status_code == 304 and again.content == b""
    api.post(
        "/project/participant",
        {"project": {"id": project["id"]}, "employee": {"id": api.employee()["id"]}},
    )
    changed = api.http.get(f"{api.base}/project", headers={"If-None-Match": digest}, timeout=30)
    assert changed.status_code == 200 and changed.json()["versionDigest"] != digest


def test_P12_participants_add_and_remove(api):
    project = api.project()
    worker = api.employee()
    part = api.post(
        "/project/participant", {"project": {"id": project["id"]}, "employee": {"id": worker["id"]}}
    )
    assert part.status_code == 201
    listed = api.get(f"/project/{project['id']}", fields="participants(employee(id),adminAccess)")
    employees = [p["employee"]["id"] for p in listed.json()["value"]["participants"]]
    assert employees == [1, worker["id"]]  # the manager was added on create (INFERRED)
    assert (
        api.delete("/project/participant/list", ids=str(part.json()["value"]["id"])).status_code
        == 204
    )
    listed = api.get(f"/project/{project['id']}", fields="participants(employee(id))")
    assert [p["employee"]["id"] for p in listed.json()["value"]["participants"]] == [1]


def test_who_am_i_names_the_token_owner(api):
    value = api.get("/token/session/>whoAmI").json()["value"]
    assert value["employeeId"] == 1 and value["employee"]["id"] == 1
    assert value["company"]["id"] == value["companyId"]


def test_empty_seed_has_one_department_and_the_owner_only(api):
    assert len(api.get("/department").json()["values"]) == 1
    owner = api.get("/employee").json()["values"]
    assert [(e["id"], e["userType"]) for e in owner] == [(1, "EXTENDED")]
    assert api.get("/project").json()["values"] == api.get("/customer").json()["values"] == []


@pytest.fixture(scope="module")
def limited_sandbox():
    with SandboxProcess.start(
        "tripletex", "--seed", "empty", "--max-result-set", "3", "--rate-limit", "12/60"
    ) as sandbox:
        yield sandbox


def test_result_set_limit_only_when_configured(limited_sandbox, api):
    client = TripletexApi(limited_sandbox, limited_sandbox.new_company(seed="empty"))
    client.post("/customer/list", [{"name": f"K{i}"} for i in range(4)])
    resp = client.get("/customer", count=1)
    assert resp.status_code == 422 and resp.json()["code"] == 23000
    assert resp.json()["message"] == "Result set too large. Limit of 3 reached."
    for i in range(4):
        api.customer(name=f"K{i}")
    assert api.get("/customer", count=1).status_code == 200  # default: no limit


def test_rate_limit_headers_and_429_without_reset(limited_sandbox):
    client = TripletexApi(limited_sandbox, limited_sandbox.new_company(seed="empty"))
    seen = []
    for _ in range(14):
        resp = client.get("/department")
        seen.append(resp)
        if resp.status_code == 429:
            break
    ok = seen[0]
    assert ok.headers["X-Rate-Limit-Limit"] == "12"
    assert int(ok.headers["X-Rate-Limit-Remaining"]) < 12 and "X-Rate-Limit-Reset" in ok.headers
    refused = seen[-1]
    assert refused.status_code == 429 and "X-Rate-Limit-Reset" not in refused.headers
    assert refused.json()["status"] == 429 and refused.headers.get("x-tlx-request-id")
    other = TripletexApi(limited_sandbox, limited_sandbox.new_company(seed="empty"))
    assert other.get("/department").status_code == 200  # budgets are per company token


def test_rate_limit_headers_on_every_response_also_with_the_limit_off(tripletex_sandbox):
    api = TripletexApi(tripletex_sandbox, tripletex_sandbox.new_company(seed="empty"))
    for resp in (api.get("/department"), api.get("/project/999999")):
        assert int(resp.headers["X-Rate-Limit-Remaining"]) > 0
        assert "X-Rate-Limit-Limit" in resp.headers and "X-Rate-Limit-Reset" in resp.headers


def test_requests_are_counted_per_path_template(tx_sandbox, api):
    project = api.project()
    api.get(f"/project/{project['id']}")
    stats = tx_sandbox.stats(api.employee_token)
    assert stats["requests"]["GET /v2/project/{id}"] == 1
    assert stats["requests"]["POST /v2/project"] == 1
    assert stats["writes"] == 1
    assert requests.get(f"{tx_sandbox.root_url}/_sandbox/health", timeout=10).ok


def test_post_session_create_accepts_query_parameters_with_201(api):
    """OBSERVED (NANGO6298): POST with the three values as query parameters gives 201."""
    import datetime as dt

    resp = requests.post(
        f"{api.base}/token/session/:create",
        params={
            "consumerToken": "c",
            "employeeToken": api.employee_token,
            "expirationDate": (dt.date.today() + dt.timedelta(days=5)).isoformat(),
        },
        timeout=30,
    )
    assert resp.status_code == 201
    token = resp.json()["value"]["token"]
    assert requests.get(f"{api.base}/department", auth=("0", token), timeout=30).status_code == 200


def test_changed_since_on_customers(api):
    old = api.customer(name="Gammel")
    stamp = api.get(f"/customer/{old['id']}", fields="changes").json()["value"]["changes"][-1]
    later = "2999-01-01T00:00:00Z"
    assert ids(api.get("/customer", changedSince=stamp["timestamp"])) == [old["id"]]
    assert ids(api.get("/customer", changedSince=later)) == []
    assert api.get("/customer", changedSince="i går").status_code == 422


def test_include_recently_closed_with_is_closed_false(api):
    open_ = api.project(name="Åpen")
    closed = api.project(name="Lukket")
    api.put(f"/project/{closed['id']}", {"isClosed": True})
    assert ids(api.get("/project", isClosed="false")) == [open_["id"]]
    recent = api.get("/project", isClosed="false", includeRecentlyClosed="true")
    assert ids(recent) == [open_["id"], closed["id"]]


def test_participant_admin_access_can_be_changed(api):
    project = api.project()
    part_id = api.get(f"/project/{project['id']}").json()["value"]["participants"][0]["id"]
    resp = api.put(f"/project/participant/{part_id}", {"adminAccess": False})
    assert resp.status_code == 200 and resp.json()["value"]["adminAccess"] is False
    assert api.get(f"/project/participant/{part_id}").json()["value"]["adminAccess"] is False


def test_customer_addresses_are_updated_inline(api):
    customer = api.customer(
        postalAddress={"addressLine1": "Gate 1", "postalCode": "5003", "city": "Bergen"}
    )
    address_id = customer["postalAddress"]["id"]
    api.put(f"/customer/{customer['id']}", {"postalAddress": {"city": "Voss"}})
    value = api.get(f"/customer/{customer['id']}", fields="postalAddress(*)").json()["value"]
    assert value["postalAddress"]["id"] == address_id
    assert (value["postalAddress"]["addressLine1"], value["postalAddress"]["city"]) == (
        "Gate 1",
        "Voss",
    )


def test_P13_is_offer_defaults_to_false_and_filters_the_listing(api):
    """isOffer: "If is Project Offer set to true, if is Project set to false. The default
    value is false." — and GET /project's ``isOffer`` filter is an equals (list-filters)."""
    project = api.project(number="P1")
    offer = api.project(number="O1", isOffer=True)
    got = api.get(f"/project/{project['id']}", fields="isOffer").json()["value"]
    assert got == {"isOffer": False}
    assert ids(api.get("/project", isOffer="false")) == [project["id"]]
    assert ids(api.get("/project", isOffer="true")) == [offer["id"]]
    assert ids(api.get("/project")) == [project["id"], offer["id"]]
    converted = api.put(f"/project/{offer['id']}", {"isOffer": False})
    assert converted.status_code == 200 and converted.json()["value"]["isOffer"] is False
    assert ids(api.get("/project", isOffer="true")) == []
