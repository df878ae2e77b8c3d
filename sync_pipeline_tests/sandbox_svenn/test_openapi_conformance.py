"""Schemathesis against the Svenn sandbox's own OpenAPI document (issue 3 acceptance).

Every operation gets generated valid and invalid requests with a valid key of
a fresh company; every response must be a non-5xx the document describes (status,
headers, body schema). Positive data may still get 422: referential rules (a
live customer, a top-level parent) and end_date >= start_date are not
expressible in JSON Schema. 400 for schema-valid data stays a failure.
"""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, settings
from jsonschema import Draft202012Validator
from schemathesis.config import SchemathesisConfig

from sync_pipeline.sandbox.svenn import create_app
from sync_pipeline.sandbox.svenn.store import encode_cursor

KEY = "schemathesis-key"

app = create_app(startup_key=KEY, seed="empty")
# Records for the generated ids to hit now and then (ids 1..3 of each resource).
_hub = app.state.hub
for i in range(1, 4):
    _hub.companies[KEY].create("employees", {"first_name": f"E{i}", "employee_number": f"{i}"})
    _hub.companies[KEY].create("customers", {"name": f"C{i}", "customer_number": f"{i}"})
    _hub.companies[KEY].create("projects", {"name": f"P{i}", "member_ids": [1]})

config = SchemathesisConfig.from_dict(
    {
        "auth": {"openapi": {"bearerAuth": {"bearer": KEY}}},
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "401", "404", "409", "412", "422", "429"]
            },
            # A stale If-Match is refused (412) before the body is looked at: a rejection
            # too, and a documented one (RFC 9110 lets preconditions come before content).
            "negative_data_rejection": {
                "expected-statuses": [
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "406",
                    "409",
                    "412",
                    "415",
                    "422",
                    "428",
                    "429",
                ]
            },
        },
    }
)
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config)
_DOC = app.openapi()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_svenn_api_conforms_to_its_openapi_document(case):
    if case.query and "cursor" in case.query:
        # An opaque cursor is only meaningful as the server handed it out; garbage is a 400.
        resource = case.path.rsplit("/", 1)[-1]
        first = _hub.companies[KEY].tables[resource].log[0]
        case.query["cursor"] = encode_cursor(resource, *first)
    response = case.call_and_validate()
    if response.status_code == 422 and case.method in ("POST", "PATCH"):
        assert_only_unschematic_rules_refused(case, response.json()["error"])


# Rules JSON Schema cannot express: references to live records, parent shape, date order;
# e-mail is stricter than the document's `format: email` (a dot in the domain).
_UNSCHEMATIC = re.compile(
    r"no live \w+ with id|must not be before start_date|is itself a sub-project"
    r"|cannot be its own parent|with sub-projects cannot|valid e-mail address"
)


def assert_only_unschematic_rules_refused(case, error: dict) -> None:
    """A 422 for a body the document accepts may only come from the rules above."""
    resource = case.path.split("/")[3]
    if resource not in ("projects", "customers", "employees"):
        return
    name = {"projects": "Project", "customers": "Customer", "employees": "Employee"}[resource]
    body_schema = _DOC["components"]["schemas"][
        name + ("Create" if case.method == "POST" else "Patch")
    ]
    validator = Draft202012Validator(
        body_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    if error["code"] != "validation_failed" or not validator.is_valid(case.body):
        return
    for field, problem in error["fields"].items():
        assert _UNSCHEMATIC.search(problem), f"{field}: {problem} for a schema-valid body"
