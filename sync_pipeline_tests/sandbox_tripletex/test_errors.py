"""Each documented error case, reproduced with Tripletex's status, code and message."""

from __future__ import annotations

import datetime as dt

import requests

OSLO_TODAY = (
    dt.datetime.now(dt.UTC).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Oslo")).date()
)


def messages(resp) -> list[tuple[str | None, str]]:
    return [(m["field"], m["message"]) for m in resp.json()["validationMessages"]]


def assert_validation(resp, *expected) -> None:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert (body["code"], body["message"]) == (18000, "Validering feilet.")
    for item in expected:
        assert item in messages(resp), messages(resp)


# -- authentication -------------------------------------------------------------------------------
def test_bad_session_token_gives_401_code_3000_with_the_real_body(api):
    resp = requests.get(f"{api.base}/project", auth=("0", "not-a-session"), timeout=30)
    assert resp.status_code == 401
    body = resp.json()
    assert body["code"] == 3000 and body["message"] == "Unauthorized"
    assert body["developerMessage"] == "Could not log in. Check login info in Authorization header."
    assert body["link"] == "https://tripletex.no/v2-docs/" and body["validationMessages"] is None


def test_missing_authorization_gives_401(api):
    assert requests.get(f"{api.base}/customer", timeout=30).status_code == 401


def test_blank_username_is_the_own_company_other_usernames_are_refused(api):
    ok = requests.get(f"{api.base}/department", auth=("", api.session_token), timeout=30)
    assert ok.status_code == 200
    other = requests.get(f"{api.base}/department", auth=("12345", api.session_token), timeout=30)
    assert other.status_code == 401


def test_session_expiring_today_is_issued_but_refused(api):
    """API-NOTES 2.2: a token with expirationDate ≤ today (Oslo) is given out, then 401."""
    resp = requests.put(
        f"{api.base}/token/session/:create",
        params={
            "consumerToken": "c",
            "employeeToken": api.employee_token,
            "expirationDate": OSLO_TODAY.isoformat(),
        },
        timeout=30,
    )
    assert resp.status_code == 200
    token = resp.json()["value"]["token"]
    who = requests.get(f"{api.base}/token/session/>whoAmI", auth=("0", token), timeout=30)
    assert who.status_code == 401 and who.json()["code"] == 3000


def test_session_without_expiration_date_is_422_kan_ikke_vaere_null(api):
    resp = requests.post(
        f"{api.base}/token/session/:create",
        json={"consumerToken": "c", "employeeToken": api.employee_token},
        timeout=30,
    )
    assert_validation(resp, ("expirationDate", "Kan ikke være null."))


# -- project ---------------------------------------------------------------------------------------
def test_unknown_property_is_422_feltet_eksisterer_ikke(api):
    resp = api.post(
        "/project",
        {"name": "X", "startDate": "2026-01-01", "projectManager": {"id": 1}, "status": "OPEN"},
    )
    assert_validation(resp, ("status", "Feltet eksisterer ikke i objektet."))
    assert resp.json()["validationMessages"][0] == {
        "field": "status",
        "message": "Feltet eksisterer ikke i objektet.",
        "path": None,
        "rootId": None,
    }


def test_project_without_start_date_and_manager(api):
    resp = api.post("/project", {"name": "X"})
    assert_validation(
        resp, ("startDate", "Feltet må fylles ut."), ("", 'Feltet "Prosjektleder" må fylles ut.')
    )


def test_project_manager_without_access_is_refused_with_name(api):
    outsider = api.employee(firstName="Nils", lastName="Uten", userType="NO_ACCESS", email=None)
    resp = api.post(
        "/project",
        {"name": "X", "startDate": "2026-01-01", "projectManager": {"id": outsider["id"]}},
    )
    assert_validation(
        resp,
        (
            "projectManager.id",
            "Oppgitt prosjektleder har ikke fått tilgang som prosjektleder i kontoen: Nils Uten.",
        ),
    )


def test_id_or_version_in_post_is_refused(api):
    resp = api.post(
        "/project",
        {
            "id": 7,
            "version": 0,
            "name": "X",
            "startDate": "2026-01-01",
            "projectManager": {"id": 1},
        },
    )
    assert_validation(
        resp,
        ("id", "ID kan ikke settes når man oppretter et objekt."),
        ("version", "ID kan ikke settes når man oppretter et objekt."),
    )


def test_lengths_follow_the_swagger_limits(api):
    resp = api.post(
        "/project",
        {"name": "N" * 256, "startDate": "2026-01-01", "projectManager": {"id": 1}},
    )
    assert_validation(
        resp, ("name", "Feltet har ikke korrekt lengde. Det må være mellom 0 og 255.")
    )
    resp = api.post(
        "/employee",
        {"firstName": "", "lastName": "L", "userType": "NO_ACCESS", "department": {"id": 1}},
    )
    assert_validation(
        resp, ("firstName", "Feltet har ikke korrekt lengde. Det må være mellom 1 og 100.")
    )


def test_duplicate_project_number_is_422(api):
    api.project(number="500")
    resp = api.post(
        "/project",
        {"name": "Y", "number": "500", "startDate": "2026-01-01", "projectManager": {"id": 1}},
    )
    assert_validation(resp, ("number", "Nummeret er i bruk."))


def test_bad_date_is_wrong_type(api):
    resp = api.post(
        "/project", {"name": "Y", "startDate": "2026-13-40", "projectManager": {"id": 1}}
    )
    assert_validation(resp, ("startDate", "Verdien er ikke av korrekt type for dette feltet."))


def test_G8_stale_version_on_put_is_409_code_8000_and_nothing_changes(api):
    project = api.project()
    assert api.put(f"/project/{project['id']}", {"name": "Ny"}).status_code == 200
    resp = api.put(f"/project/{project['id']}", {"version": project["version"], "name": "Gammel"})
    assert resp.status_code == 409 and resp.json()["code"] == 8000
    assert api.get(f"/project/{project['id']}").json()["value"]["name"] == "Ny"


def test_missing_object_is_404_code_6000(api):
    for path in ("/project/424242", "/customer/424242", "/employee/424242"):
        resp = api.get(path)
        assert resp.status_code == 404
        assert (resp.json()["code"], resp.json()["message"]) == (6000, "Object not found")
    assert api.put("/customer/424242", {"name": "x"}).status_code == 404
    assert api.delete("/project/424242").status_code == 404


# -- customer --------------------------------------------------------------------------------------
def test_customer_invalid_email_and_duplicate_number(api):
    api.customer(customerNumber=20001)
    resp = api.post("/customer", {"name": "Z", "email": "ikke-epost", "customerNumber": 20001})
    assert_validation(resp, ("email", "Ugyldig format."), ("customerNumber", "Nummeret er i bruk."))


def test_customer_in_use_by_a_project_cannot_be_deleted(api):
    customer = api.customer()
    api.project(customer={"id": customer["id"]})
    resp = api.delete(f"/customer/{customer['id']}")
    assert resp.status_code == 422 and resp.json()["code"] == 18000
    assert "prosjekter" in resp.json()["validationMessages"][0]["message"]
    assert api.get(f"/customer/{customer['id']}").status_code == 200


# -- employee --------------------------------------------------------------------------------------
def test_E1_employee_without_user_type_and_with_null_last_name(api):
    resp = api.post(
        "/employee",
        {"firstName": "A", "lastName": None, "email": "a@example.no", "department": {"id": 1}},
    )
    assert_validation(
        resp,
        ("userType", 'Brukertype kan ikke være "0" eller tom.'),
        ("lastName", "Kan ikke være null."),
    )


def test_employee_duplicate_and_invalid_email(api):
    api.employee(email="dup@example.no")
    resp = api.post(
        "/employee",
        {
            "firstName": "B",
            "lastName": "C",
            "userType": "STANDARD",
            "email": "DUP@example.no",
            "department": {"id": 1},
        },
    )
    assert_validation(resp, ("email", "Det finnes allerede en bruker med denne e-postadressen."))
    resp = api.post(
        "/employee",
        {
            "firstName": "B",
            "lastName": "C",
            "userType": "STANDARD",
            "email": "blåbær@example.no",
            "department": {"id": 1},
        },
    )
    assert_validation(resp, ("email", "Ugyldig format."))


# -- batches ---------------------------------------------------------------------------------------
def test_batch_with_one_bad_item_applies_none_and_names_the_item(api):
    """Batch convention: ``path = "[index].field"`` (0-based), ``rootId`` = id on updates."""
    resp = api.post(
        "/project/list",
        [
            {"name": "God", "startDate": "2026-01-01", "projectManager": {"id": 1}},
            {"name": "Dårlig", "projectManager": {"id": 1}},
        ],
    )
    assert_validation(resp, ("startDate", "Feltet må fylles ut."))
    assert resp.json()["validationMessages"][0]["path"] == "[1].startDate"
    assert api.get("/project").json()["values"] == []

    a, b = api.customer(name="A"), api.customer(name="B")
    resp = api.put(
        "/customer/list",
        [{"id": a["id"], "name": "A2"}, {"id": b["id"], "email": "feil"}],
    )
    assert_validation(resp, ("email", "Ugyldig format."))
    assert resp.json()["validationMessages"][0]["rootId"] == b["id"]
    assert api.get(f"/customer/{a['id']}").json()["value"]["name"] == "A"


def test_malformed_id_list_is_422_code_12000(api):
    resp = api.get("/project", id="1,x")
    assert resp.status_code == 422
    assert resp.json()["code"] == 12000
    assert resp.json()["message"] == (
        "'id': Listen med ID-er må være en kommaseparert liste med positive heltall."
    )


def test_unknown_field_in_fields_filter_is_400_code_11000(api):
    resp = api.get("/project", fields="id,fixedPrice")
    assert resp.status_code == 400
    assert resp.json()["code"] == 11000
    assert resp.json()["message"] == (
        "Illegal field in fields filter: fixedPrice. fixedPrice does not match a field in the "
        "model: ProjectDTO"
    )
    nested = api.get("/project", fields="customer(nope)")
    assert nested.status_code == 400 and "CustomerDTO" in nested.json()["message"]


def test_unknown_sorting_field_is_422_code_17000(api):
    resp = api.get("/project", sorting="-nope")
    assert resp.status_code == 422 and resp.json()["code"] == 17000
    assert resp.json()["message"] == "sorting field '-nope' does not exist"


def test_E4_employee_needs_department_and_email_when_a_user(api):
    resp = api.post("/employee", {"firstName": "A", "lastName": "B", "userType": "STANDARD"})
    assert_validation(
        resp,
        ("department.id", "Feltet må fylles ut."),
        ("email", "Må angis for Tripletex-brukere."),
    )
    no_access = {
        "firstName": "A",
        "lastName": "B",
        "userType": "NO_ACCESS",
        "department": {"id": 1},
    }
    assert api.post("/employee", no_access).status_code == 201


def test_changing_email_to_another_users_is_refused(api):
    api.employee(email="opptatt@example.no")
    other = api.employee()
    resp = api.put(f"/employee/{other['id']}", {"email": "opptatt@example.no"})
    assert_validation(resp, ("email", "Det finnes allerede en bruker med denne e-postadressen."))


def test_reference_to_a_missing_object_is_refused(api):
    resp = api.post(
        "/project",
        {
            "name": "X",
            "startDate": "2026-01-01",
            "projectManager": {"id": 1},
            "customer": {"id": 999},
        },
    )
    assert_validation(resp)
    assert ("customer.id", "Objektet finnes ikke.") in messages(resp)  # text INFERRED


def test_participant_twice_and_participant_without_employee(api):
    project = api.project()
    resp = api.post(
        "/project/participant", {"project": {"id": project["id"]}, "employee": {"id": 1}}
    )
    assert_validation(resp, ("employee.id", "Den ansatte er allerede deltaker i prosjektet."))
    resp = api.post("/project/participant", {"project": {"id": project["id"]}})
    assert_validation(resp, ("employee.id", "Feltet må fylles ut."))


def test_project_with_sub_projects_cannot_be_deleted_a_leaf_can(api):
    main = api.project(name="Hoved")
    sub = api.project(name="Under", mainProject={"id": main["id"]})
    assert api.get(f"/project/{main['id']}").json()["value"]["numberOfSubProjects"] == 1
    resp = api.delete(f"/project/{main['id']}")
    assert resp.status_code == 422 and resp.json()["code"] == 18000
    assert api.delete(f"/project/{sub['id']}").status_code == 204
    assert api.get(f"/project/{sub['id']}").status_code == 404
    assert api.delete(f"/project/{main['id']}").status_code == 204


def test_bad_boolean_and_paging_parameters_are_422(api):
    assert api.get("/project", isClosed="kanskje").status_code == 422
    assert api.get("/project", count="mange").status_code == 422


def test_unknown_path_under_v2_has_tripletex_404_body(api):
    resp = api.get("/nothing/here")
    assert resp.status_code == 404 and resp.json()["code"] == 6000


def test_tripletex_session_expiration_with_time_part(api):
    """The schema types expirationDate as a plain string, and clients that run against the
    real test environment send a timestamp: its date part is the expiry."""
    expires = OSLO_TODAY + dt.timedelta(days=3)
    resp = requests.put(
        f"{api.base}/token/session/:create",
        params={
            "consumerToken": "c",
            "employeeToken": api.employee_token,
            "expirationDate": f"{expires.isoformat()}T23:59:59.000Z",
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["value"]["expirationDate"] == expires.isoformat()
    token = resp.json()["value"]["token"]
    who = requests.get(f"{api.base}/token/session/>whoAmI", auth=("0", token), timeout=30)
    assert who.status_code == 200, who.text
    bad = requests.put(
        f"{api.base}/token/session/:create",
        params={"consumerToken": "c", "employeeToken": api.employee_token, "expirationDate": "x"},
        timeout=30,
    )
    assert bad.status_code == 422
