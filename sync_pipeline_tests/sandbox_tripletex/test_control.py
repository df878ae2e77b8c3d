"""The ``/_sandbox`` faults and stats of the Tripletex sandbox, as issue 2 specifies them.

Later tests (retries, crash recovery, G6 "zero writes") steer and measure the sync through
these endpoints, so their semantics are pinned here on the Tripletex side too.
"""

from __future__ import annotations

import time

import pytest
import requests


@pytest.fixture
def faults(tx_sandbox):
    yield tx_sandbox
    tx_sandbox.clear_faults()


def test_fault_fails_the_next_count_matching_requests_then_recovers(faults, api):
    customer = api.customer(name="Feil AS")
    # The regex is searched in the full path, with /v2; only PUT is targeted.
    faults.add_fault(r"^/v2/customer/\d+$", method="PUT", status=503, count=2)
    for _ in range(2):
        resp = api.put(f"/customer/{customer['id']}", {"name": "Ny AS"})
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == 503 and body["requestId"] == resp.headers["x-tlx-request-id"]
        assert "X-Rate-Limit-Limit" in resp.headers
    assert api.get(f"/customer/{customer['id']}").json()["value"]["name"] == "Feil AS"
    assert api.put(f"/customer/{customer['id']}", {"name": "Ny AS"}).status_code == 200


def test_fault_without_status_delays_and_then_proceeds(faults, api):
    faults.add_fault(r"/v2/customer$", method="POST", delay_ms=400)
    started = time.monotonic()
    resp = api.post("/customer", {"name": "Treg AS"})
    assert resp.status_code == 201
    assert time.monotonic() - started >= 0.4
    assert [c["name"] for c in api.get("/customer").json()["values"]] == ["Treg AS"]


def test_delete_faults_clears_pending_faults(faults, api):
    faults.add_fault(r"/v2/department", status=500, count=5)
    assert api.get("/department").status_code == 500
    faults.clear_faults()
    assert api.get("/department").status_code == 200


def test_a_bad_fault_is_refused_with_400(tx_sandbox):
    for body in (
        {"status": 503},
        {"path": "(", "status": 503},
        {"path": "x", "count": 0},
        {"path": "x", "hide_ids": "1"},
        {"path": "x", "drop_fields": [1]},
    ):
        assert tx_sandbox.control("POST", "faults", json=body).status_code == 400


def test_G7_a_rewriting_fault_makes_a_listing_lie_while_get_by_id_tells_the_truth(faults, api):
    hidden, nulled, kept = (api.customer(name=f"Kunde {i}") for i in range(3))

    def listing(digest: str) -> requests.Response:
        return api.http.get(
            api.base + "/customer",
            params={"fields": "id", "sorting": "id"},
            headers={"If-None-Match": digest},
            timeout=60,
        )

    digest = listing("probe").json()["versionDigest"]
    assert listing(digest).status_code == 304
    faults.add_fault(
        r"^/v2/customer$",
        method="GET",
        count=1,
        hide_ids=[hidden["id"]],
        null_ids=[nulled["id"]],
        drop_fields=["fullResultSize"],
    )
    lying = listing(digest)
    assert lying.status_code == 200  # never a 304 that would hide nothing
    body = lying.json()
    assert "fullResultSize" not in body
    assert body["values"] == [{"id": None}, {"id": kept["id"]}]
    assert api.get(f"/customer/{hidden['id']}").status_code == 200
    after = api.get("/customer", fields="id", sorting="id").json()  # the fault is used up
    assert [v["id"] for v in after["values"]] == [c["id"] for c in (hidden, nulled, kept)]


def test_stats_count_record_writes_only_per_company_and_in_total(tx_sandbox, api):
    other = type(api)(tx_sandbox, tx_sandbox.new_company(seed="empty"))
    before = tx_sandbox.stats()["writes"]
    api.new_session()  # token endpoints are not writes
    api.put("/project/settings", {"autoGenerateProjectNumber": False})  # nor are settings
    customer = api.customer()
    api.put(f"/customer/{customer['id']}", {"name": "Endret AS"})
    api.post("/customer", {"name": "X", "email": "ugyldig"})  # a refused write still counts
    api.delete(f"/customer/{customer['id']}")
    other.customer()
    mine = tx_sandbox.stats(api.employee_token)
    assert mine["writes"] == 4
    assert mine["requests"]["PUT /v2/customer/{id}"] == 1
    assert mine["requests"]["DELETE /v2/customer/{id}"] == 1
    assert mine["requests"]["PUT /v2/project/settings"] == 1
    assert tx_sandbox.stats(other.employee_token)["writes"] == 1
    assert tx_sandbox.stats()["writes"] - before == 5


# -- late commits (G5): the write lands, its answer does not ------------------------------------


def test_G5_after_commit_fault_commits_the_batch_then_answers_with_the_status(faults, api):
    faults.add_fault(r"^/v2/employee/list$", method="POST", status=500, after_commit=True)
    body = [
        {"firstName": "Sen", "lastName": "Commit", "userType": "NO_ACCESS", "department": {"id": 1}}
    ]
    resp = api.post("/employee/list", body)
    assert resp.status_code == 500 and resp.json()["status"] == 500
    stored = api.get("/employee", lastName="Commit").json()["values"]
    assert [e["firstName"] for e in stored] == ["Sen"]
    assert api.post("/employee/list", body).status_code == 201  # the fault was used up


def test_G5_after_commit_delay_beyond_the_read_timeout_still_commits(faults, api):
    faults.add_fault(r"^/v2/customer$", method="POST", delay_ms=3000, after_commit=True)
    with pytest.raises(requests.ReadTimeout):
        api.http.post(f"{api.base}/customer", json={"name": "Treg Commit AS"}, timeout=(5, 0.5))
    # committed before the delay: visible at once, although the client saw no answer
    assert [c["name"] for c in api.get("/customer").json()["values"]] == ["Treg Commit AS"]


def test_G5_a_slow_commit_lands_after_the_client_gave_up(faults, api):
    faults.add_fault(r"^/v2/customer$", method="POST", commit_delay_ms=800, after_commit=True)
    with pytest.raises(requests.ReadTimeout):
        api.http.post(f"{api.base}/customer", json={"name": "Sein AS"}, timeout=(5, 0.2))
    assert api.get("/customer").json()["values"] == []  # not yet
    deadline = time.monotonic() + 10
    while not api.get("/customer").json()["values"] and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the sandbox's state, not waiting for time to pass
    assert [c["name"] for c in api.get("/customer").json()["values"]] == ["Sein AS"]


def test_commit_delay_needs_after_commit(tx_sandbox):
    bad = {"path": "x", "commit_delay_ms": 10}
    assert tx_sandbox.control("POST", "faults", json=bad).status_code == 400
    bad = {"path": "x", "after_commit": "yes"}
    assert tx_sandbox.control("POST", "faults", json=bad).status_code == 400


def test_G5_a_duplicate_employee_number_is_accepted_as_assumed(api):
    """INFERRED (no source shows a refusal): only the sync can keep employees single."""
    body = {
        "firstName": "To",
        "lastName": "Ganger",
        "userType": "NO_ACCESS",
        "employeeNumber": "77",
    }
    body["department"] = {"id": 1}
    assert api.post("/employee", body).status_code == 201
    assert api.post("/employee", body).status_code == 201
    assert len(api.get("/employee", employeeNumber="77").json()["values"]) == 2
