"""``POST /api/v1/<resource>/bulk`` (svenn-api.md, "Bulk writes") and Svenn's rate limit.

1–100 operations applied in order and independently, one result each; creates share
the single-record form's Idempotency-Key memory (G5: a re-sent write never duplicates),
updates and deletes honour ``if_match``; a malformed envelope is a 400 that applies
nothing. A bulk is one request for the rate limit and N writes in the statistics.
"""

from __future__ import annotations

import pytest

from sync_pipeline.sandbox.core import RateLimitSpec

from .conftest import Svenn, make_client


def bulk(svenn: Svenn, resource: str, *operations: dict, **kw):
    return svenn.post(f"/{resource}/bulk", {"operations": list(operations)}, **kw)


def results_of(resp) -> list[dict]:
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def create(data: dict, key: str | None = None) -> dict:
    op = {"op": "create", "data": data}
    if key is not None:
        op["idempotency_key"] = key
    return op


def update(record_id: int, data: dict, if_match: int | None = None) -> dict:
    return {"op": "update", "id": record_id, "if_match": if_match, "data": data}


def delete(record_id: int, if_match: int | None = None) -> dict:
    return {"op": "delete", "id": record_id, "if_match": if_match}


def stats(svenn: Svenn) -> dict:
    return svenn.client.get("/_sandbox/stats", params={"api_key": svenn.key}).json()


# -- order and shape ------------------------------------------------------------------------------
def test_operations_are_applied_in_order_with_one_result_each(svenn):
    kept = svenn.create("customers", {"name": "Gammel", "customer_number": "10"})
    gone = svenn.create("customers", {"name": "Borte"})

    results = results_of(
        bulk(
            svenn,
            "customers",
            create({"name": "Ny 1", "customer_number": "11"}, key="k1"),
            update(kept["id"], {"name": "Endret"}, if_match=1),
            delete(gone["id"]),
            create({"name": "Ny 2"}),
        )
    )

    assert [r["status"] for r in results] == [201, 200, 204, 201]
    assert all(r["error"] is None for r in results)
    first, changed, tombstone, second = (r["record"] for r in results)
    assert (first["name"], first["customer_number"], first["version"]) == ("Ny 1", "11", 1)
    assert (changed["id"], changed["name"], changed["version"]) == (kept["id"], "Endret", 2)
    assert tombstone["id"] == gone["id"] and tombstone["deleted_at"] is not None
    assert tombstone["version"] == 2
    assert second["id"] > first["id"]  # created in order
    assert svenn.get(f"/customers/{kept['id']}").json() == changed
    assert svenn.get(f"/customers/{gone['id']}").status_code == 404
    live = {c["name"] for c in svenn.list_all("customers")}
    assert live == {"Endret", "Ny 1", "Ny 2"}


def test_each_result_is_the_record_as_that_operation_left_it(svenn):
    customer = svenn.create("customers", {"name": "A"})

    results = results_of(
        bulk(
            svenn,
            "customers",
            update(customer["id"], {"name": "B"}),
            update(customer["id"], {"name": "C"}),
            delete(customer["id"], if_match=3),
        )
    )

    assert [(r["status"], r["record"]["name"], r["record"]["version"]) for r in results] == [
        (200, "B", 2),
        (200, "C", 3),
        (204, "C", 4),
    ]
    assert results[1]["record"]["deleted_at"] is None


# -- independence -------------------------------------------------------------------------------
def test_a_failing_operation_neither_stops_nor_undoes_the_others(svenn):
    taken = svenn.create("employees", {"first_name": "Kari", "employee_number": "7"})

    results = results_of(
        bulk(
            svenn,
            "employees",
            create({"first_name": "Ola"}, key="ok-1"),
            create({"first_name": ""}, key="bad"),
            create({"first_name": "Per", "employee_number": "7"}, key="dup"),
            update(999, {"first_name": "Ingen"}),
            delete(998),
            update(taken["id"], {"phone": "99999999"}, if_match=1),
        )
    )

    assert [r["status"] for r in results] == [201, 422, 409, 404, 404, 200]
    invalid, duplicate, missing, missing_delete = (r["error"] for r in results[1:5])
    assert invalid["code"] == "validation_failed"
    assert invalid["fields"] == {"first_name": "must not be empty"}
    assert duplicate["code"] == "duplicate_number" and "employee_number" in duplicate["fields"]
    assert missing["code"] == missing_delete["code"] == "not_found"
    assert all(r["record"] is None for r in results[1:5])
    names = sorted(e["first_name"] for e in svenn.list_all("employees"))
    assert names == ["Kari", "Ola"]
    assert svenn.get(f"/employees/{taken['id']}").json()["phone"] == "99999999"


def test_a_failed_create_in_a_bulk_is_not_remembered_under_its_key(svenn):
    assert (
        results_of(bulk(svenn, "customers", create({"name": ""}, key="fix-me")))[0]["status"] == 422
    )
    fixed = results_of(bulk(svenn, "customers", create({"name": "Rettet"}, key="fix-me")))
    assert fixed[0]["status"] == 201 and fixed[0]["record"]["name"] == "Rettet"


# -- idempotency, shared with the single-record form ----------------------------------------------
def test_G5_a_resent_bulk_replays_its_creates_and_creates_nothing_new(svenn):
    ops = [
        create({"name": f"Kunde {n}", "customer_number": str(n)}, key=f"run-1:{n}")
        for n in range(3)
    ]

    first = results_of(bulk(svenn, "customers", *ops))
    again = results_of(bulk(svenn, "customers", *ops))

    assert again == first
    assert [r["status"] for r in again] == [201, 201, 201]
    assert len(svenn.list_all("customers")) == 3


def test_G5_a_single_create_then_a_bulk_with_the_same_key_replays(svenn):
    body = {"name": "Hytte", "display_id": "2001"}
    single = svenn.post("/projects", body, headers={"Idempotency-Key": "p-2001"}).json()

    results = results_of(bulk(svenn, "projects", create(body, key="p-2001")))

    assert results == [{"status": 201, "record": single, "error": None}]
    assert len(svenn.list_all("projects")) == 1


def test_G5_a_bulk_create_then_a_single_create_with_the_same_key_replays(svenn):
    body = {"first_name": "Ola", "last_name": "Nordmann"}
    (result,) = results_of(bulk(svenn, "employees", create(body, key="e-1")))

    resp = svenn.post("/employees", body, headers={"Idempotency-Key": "e-1"})

    assert resp.status_code == 201 and resp.headers["Idempotent-Replayed"] == "true"
    assert resp.json() == result["record"]
    assert len(svenn.list_all("employees")) == 1


def test_G5_the_same_key_with_another_body_is_that_operations_422(svenn):
    svenn.post("/customers", {"name": "A"}, headers={"Idempotency-Key": "k"})

    results = results_of(
        bulk(svenn, "customers", create({"name": "B"}, key="k"), create({"name": "C"}, key="k2"))
    )

    assert [r["status"] for r in results] == [422, 201]
    assert results[0]["error"]["code"] == "idempotency_key_reused"
    assert results[0]["record"] is None
    assert sorted(c["name"] for c in svenn.list_all("customers")) == ["A", "C"]
    # and the other way round: a key first used in a bulk refuses another single body
    resp = svenn.post("/customers", {"name": "D"}, headers={"Idempotency-Key": "k2"})
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "idempotency_key_reused"


def test_G5_a_key_repeated_inside_one_bulk_creates_once(svenn):
    results = results_of(
        bulk(
            svenn,
            "customers",
            create({"name": "Én"}, key="same"),
            create({"name": "Én"}, key="same"),
            create({"name": "To"}, key="same"),
        )
    )

    assert [r["status"] for r in results] == [201, 201, 422]
    assert results[0]["record"] == results[1]["record"]
    assert len(svenn.list_all("customers")) == 1


def test_idempotency_keys_of_a_bulk_are_scoped_per_resource(svenn):
    svenn.post("/customers", {"name": "K"}, headers={"Idempotency-Key": "shared"})
    results = results_of(bulk(svenn, "employees", create({"first_name": "K"}, key="shared")))
    assert results[0]["status"] == 201


# -- if_match ---------------------------------------------------------------------------------------
def test_if_match_refuses_a_changed_record_per_operation_with_412(svenn):
    a = svenn.create("customers", {"name": "A"})
    b = svenn.create("customers", {"name": "B"})
    svenn.patch(f"/customers/{a['id']}", {"name": "A2"})  # a is at version 2 now

    results = results_of(
        bulk(
            svenn,
            "customers",
            update(a["id"], {"name": "A3"}, if_match=1),
            update(b["id"], {"name": "B2"}, if_match=1),
            delete(a["id"], if_match=1),
            delete(b["id"], if_match=2),
        )
    )

    assert [r["status"] for r in results] == [412, 200, 412, 204]
    assert results[0]["error"]["code"] == results[2]["error"]["code"] == "version_mismatch"
    assert svenn.get(f"/customers/{a['id']}").json()["name"] == "A2"  # neither changed nor deleted
    assert svenn.get(f"/customers/{b['id']}").status_code == 404


# -- malformed requests: 400, nothing applied -------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operations": []}, "operations"),
        ({"operations": [create({"name": f"K{n}"}) for n in range(101)]}, "operations"),
        ({}, "operations"),
        ([create({"name": "K"})], "body"),
        ({"operations": {"op": "create"}}, "operations"),
        ({"operations": [create({"name": "K"})], "atomic": True}, "atomic"),
        ({"operations": [create({"name": "K"}), {"op": "upsert", "data": {}}]}, "operations[1].op"),
        ({"operations": [create({"name": "K"}), "create"]}, "operations[1]"),
        ({"operations": [{"op": {}, "id": 1}]}, "operations[0].op"),
        ({"operations": [create({"name": "K"}), {"op": "create"}]}, "operations[1].data"),
        (
            {"operations": [create({"name": "K"}), {"op": "create", "data": []}]},
            "operations[1].data",
        ),
        ({"operations": [create({"name": "K"}), {"op": "delete"}]}, "operations[1].id"),
        ({"operations": [create({"name": "K"}), {"op": "delete", "id": "1"}]}, "operations[1].id"),
        ({"operations": [create({"name": "K"}), {"op": "delete", "id": True}]}, "operations[1].id"),
        (
            {"operations": [create({"name": "K"}), delete(1, if_match="1")]},
            "operations[1].if_match",
        ),
        ({"operations": [create({"name": "K"}), delete(1, if_match=0)]}, "operations[1].if_match"),
        ({"operations": [create({"name": "K"}), delete(1.5)]}, "operations[1].id"),
        ({"operations": [create({"name": "K"}), update(1, "x")]}, "operations[1].data"),
        ({"operations": [create({"name": "K"}, key="")]}, "operations[0].idempotency_key"),
        ({"operations": [create({"name": "K"}, key="k" * 256)]}, "operations[0].idempotency_key"),
        ({"operations": [{**delete(1), "data": {}}]}, "operations[0].data"),
    ],
)
def test_a_malformed_bulk_is_400_and_applies_nothing(svenn, body, field):
    resp = svenn.post("/customers/bulk", body)

    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "malformed_bulk"
    assert field in error["fields"]
    assert svenn.list_all("customers") == []


def test_invalid_json_is_400_and_the_key_is_checked_first(svenn):
    resp = svenn.request("POST", "/customers/bulk", content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "malformed_json"
    anonymous = svenn.client.post("/api/v1/customers/bulk", json={"operations": []})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"


def test_an_integral_number_is_an_integer_as_in_json(svenn):
    customer = svenn.create("customers", {"name": "A"})
    results = results_of(bulk(svenn, "customers", delete(float(customer["id"]), if_match=1.0)))
    assert results[0]["status"] == 204 and results[0]["record"]["id"] == customer["id"]


def test_exactly_100_operations_are_accepted(svenn):
    ops = [create({"name": f"K{n}"}, key=f"k{n}") for n in range(100)]
    assert [r["status"] for r in results_of(bulk(svenn, "customers", *ops))] == [201] * 100
    assert len(svenn.list_all("customers")) == 100


def test_bulk_is_per_company(svenn):
    other = svenn.other_company()
    mine = svenn.create("customers", {"name": "Min"})
    results = results_of(bulk(other, "customers", update(mine["id"], {"name": "Din"})))
    assert results[0]["status"] == 404
    assert svenn.get(f"/customers/{mine['id']}").json()["name"] == "Min"


# -- rate limit and statistics --------------------------------------------------------------------
def test_a_bulk_counts_once_for_the_rate_limit_and_n_times_as_writes():
    with make_client(rate_limit=RateLimitSpec(600, 60)) as client:
        svenn = Svenn(client)
        ops = [create({"name": f"K{n}"}) for n in range(100)]

        resp = bulk(svenn, "customers", *ops)

        assert len(results_of(resp)) == 100
        assert resp.headers["RateLimit-Limit"] == "600"
        assert resp.headers["RateLimit-Remaining"] == "599"
        assert svenn.get("/company").headers["RateLimit-Remaining"] == "598"
        counted = stats(svenn)
        assert counted["writes"] == 100
        assert counted["requests"]["POST /api/v1/customers/bulk"] == 1


def test_a_bulk_beyond_the_rate_limit_is_429_with_retry_after_and_applies_nothing():
    with make_client(rate_limit=RateLimitSpec(2, 60)) as client:
        svenn = Svenn(client)
        assert results_of(bulk(svenn, "customers", create({"name": "1"})))[0]["status"] == 201
        assert svenn.get("/customers").status_code == 200

        refused = bulk(svenn, "customers", create({"name": "2"}), create({"name": "3"}))

        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["RateLimit-Remaining"] == "0"
        names = [
            c["name"] for c in svenn.hub.companies[svenn.key].tables["customers"].records.values()
        ]
        assert names == ["1"]


def test_a_malformed_bulk_counts_as_one_write_request(svenn):
    svenn.post("/customers/bulk", {"operations": []})
    assert stats(svenn)["writes"] == 1


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE", "PUT"])
def test_other_methods_on_a_bulk_endpoint_are_405_not_a_bad_id(svenn, method):
    resp = svenn.request(method, "/projects/bulk", json={"operations": [create({"name": "P"})]})
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    assert svenn.list_all("projects") == []
