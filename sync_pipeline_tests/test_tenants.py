"""The tenants file: a good file loads; every bad one gives one line naming tenant and field.

No message may contain a secret value (literal or from the environment).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from sync_pipeline.resources.svenn import SvennClient
from sync_pipeline.resources.tripletex import TripletexClient
from sync_pipeline.tenants import (
    TenantConfigError,
    TenantsResource,
    load_tenants,
    tenants_file_path,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRETS = {
    "SVENN_API_KEY": "svenn-SECRET-1",
    "TRIPLETEX_CONSUMER_TOKEN": "consumer-SECRET-2",
    "TRIPLETEX_EMPLOYEE_TOKEN": "employee-SECRET-3",
}
LITERAL_SECRET = "literal-SECRET-4"


@pytest.fixture(autouse=True)
def secret_env(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def tenant(**overrides) -> dict:
    body = {
        "mode": "active",
        "svenn": {"base_url": "http://127.0.0.1:8802/api/v1", "api_key": "${SVENN_API_KEY}"},
        "tripletex": {
            "base_url": "http://127.0.0.1:8801/v2",
            "consumer_token": "${TRIPLETEX_CONSUMER_TOKEN}",
            "employee_token": "${TRIPLETEX_EMPLOYEE_TOKEN}",
        },
    }
    body.update(overrides)
    return body


def write(tmp_path: Path, data, name: str = "tenants.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(TenantConfigError) as info:
        load_tenants(path)
    message = str(info.value)
    assert "\n" not in message, "one line"
    for secret in [*SECRETS.values(), LITERAL_SECRET]:
        assert secret not in message
    assert info.value.__cause__ is None, "no chained stack trace from yaml/pydantic"
    return message


# -- good files -----------------------------------------------------------------------------


def test_template_renders_to_a_valid_demo_tenant():
    tenants = load_tenants(REPO_ROOT / "data" / "tenants.template.yaml")

    demo = tenants["demo"]
    assert demo.key == "demo" and demo.mode == "active"
    assert demo.svenn.base_url == "http://127.0.0.1:8802/api/v1"
    assert demo.tripletex.base_url == "http://127.0.0.1:8801/v2"
    assert demo.svenn.api_key.get_secret_value() == SECRETS["SVENN_API_KEY"]
    assert demo.tripletex.employee_token.get_secret_value() == SECRETS["TRIPLETEX_EMPLOYEE_TOKEN"]


def test_defaults_and_optional_fields(tmp_path):
    path = write(
        tmp_path,
        {
            "tenants": {
                "a": tenant(),
                "b-2": tenant(
                    mode="review",
                    default_project_manager_employee_number="17",
                    default_department_id=3,
                    conflict_policy="tripletex_wins",
                    mass_delete_threshold=0.5,
                    employee_user_type="STANDARD",
                ),
            }
        },
    )

    tenants = load_tenants(path)

    a, b = tenants["a"], tenants["b-2"]
    assert (a.conflict_policy, a.mass_delete_threshold, a.employee_user_type) == (
        "newest_wins",
        0.2,
        "NO_ACCESS",
    )
    assert a.default_project_manager_employee_number is None and a.default_department_id is None
    assert b.mode == "review"  # G9
    assert (b.default_department_id, b.conflict_policy, b.employee_user_type) == (
        3,
        "tripletex_wins",
        "STANDARD",
    )


def test_literal_secrets_and_embedded_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("SVENN_HOST", "127.0.0.1:9000")
    path = write(
        tmp_path,
        {
            "tenants": {
                "x": tenant(
                    svenn={"base_url": "http://${SVENN_HOST}/api/v1/", "api_key": LITERAL_SECRET}
                )
            }
        },
    )

    x = load_tenants(path)["x"]

    assert x.svenn.base_url == "http://127.0.0.1:9000/api/v1"
    assert x.svenn.api_key.get_secret_value() == LITERAL_SECRET


def test_secrets_are_hidden_in_repr_and_str(tmp_path):
    tenants = load_tenants(write(tmp_path, {"tenants": {"demo": tenant()}}))

    text = repr(tenants) + str(tenants["demo"]) + repr(tenants["demo"].tripletex_client())
    for secret in SECRETS.values():
        assert secret not in text


def test_tenants_file_path_follows_the_environment(monkeypatch):
    monkeypatch.delenv("SYNC_TENANTS_FILE", raising=False)
    assert tenants_file_path() == Path("data/tenants.yaml")
    monkeypatch.setenv("SYNC_TENANTS_FILE", "/etc/sync/tenants.yaml")
    assert tenants_file_path() == Path("/etc/sync/tenants.yaml")


def test_load_without_argument_reads_sync_tenants_file(tmp_path, monkeypatch):
    path = write(tmp_path, {"tenants": {"env": tenant()}}, name="custom.yaml")
    monkeypatch.setenv("SYNC_TENANTS_FILE", str(path))

    assert list(load_tenants()) == ["env"]


# -- bad files: one clear line each ---------------------------------------------------------


def test_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in message and "not found" in message


def test_unreadable_file(tmp_path):
    message = load_error(tmp_path)  # a directory cannot be read as a file
    assert "cannot read" in message


def test_bad_yaml(tmp_path):
    message = load_error(write(tmp_path, "tenants:\n  demo: [unclosed\n"))
    assert message.startswith("tenants.yaml: line ")
    assert "invalid YAML" in message


def test_not_a_mapping(tmp_path):
    assert "'tenants'" in load_error(write(tmp_path, "- a\n- b\n"))


def test_unknown_top_level_key(tmp_path):
    message = load_error(write(tmp_path, {"tenants": {"demo": tenant()}, "tenant": {}}))
    assert message == "tenants.yaml: tenant: unknown key"


def test_no_tenants(tmp_path):
    assert "at least one tenant" in load_error(write(tmp_path, {"tenants": {}}))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(tenant(colour="red"), "tenant 'demo': colour: unknown key", id="unknown-key"),
        pytest.param(
            tenant(tripletex={**tenant()["tripletex"], "companyId": 1}),
            "tenant 'demo': tripletex.companyId: unknown key",
            id="unknown-nested-key",
        ),
        pytest.param(
            tenant(
                tripletex={
                    "base_url": "http://127.0.0.1:8801/v2",
                    "consumer_token": "${TRIPLETEX_CONSUMER_TOKEN}",
                }
            ),
            "tenant 'demo': tripletex.employee_token: is required",
            id="missing-field",
        ),
        pytest.param(
            {k: v for k, v in tenant().items() if k != "svenn"},
            "tenant 'demo': svenn: is required",
            id="missing-section",
        ),
        pytest.param(
            tenant(mode="sometimes"),
            "tenant 'demo': mode: Input should be 'active' or 'review'",
            id="bad-mode",
        ),
        pytest.param(
            tenant(default_department_id="sales"),
            "tenant 'demo': default_department_id: Input should be a valid integer",
            id="wrong-type-int",
        ),
        pytest.param(
            tenant(mass_delete_threshold=1.5),
            "tenant 'demo': mass_delete_threshold: Input should be less than or equal to 1",
            id="threshold-too-high",
        ),
        pytest.param(
            tenant(mass_delete_threshold=0),
            "tenant 'demo': mass_delete_threshold: Input should be greater than 0",
            id="threshold-zero",
        ),
        pytest.param(
            tenant(conflict_policy="coin_flip"),
            "tenant 'demo': conflict_policy: Input should be",
            id="bad-conflict-policy",
        ),
        pytest.param(
            tenant(employee_user_type="ADMIN"),
            "tenant 'demo': employee_user_type: Input should be",
            id="bad-user-type",
        ),
        pytest.param(
            tenant(svenn={"base_url": "ftp://127.0.0.1/api/v1", "api_key": LITERAL_SECRET}),
            "tenant 'demo': svenn.base_url: must be an http:// or https:// URL with a host",
            id="bad-url-scheme",
        ),
        pytest.param(
            tenant(svenn={"base_url": "not a url", "api_key": LITERAL_SECRET}),
            "tenant 'demo': svenn.base_url: must be an http:// or https:// URL with a host",
            id="bad-url",
        ),
        pytest.param(
            tenant(
                tripletex={
                    **tenant()["tripletex"],
                    "base_url": f"https://0:{LITERAL_SECRET}@tripletex.no/v2",
                }
            ),
            "tenant 'demo': tripletex.base_url: must not contain credentials",
            id="url-with-credentials",
        ),
        pytest.param(
            tenant(svenn={"base_url": "http://127.0.0.1:8802/api/v1", "api_key": 12345}),
            "tenant 'demo': svenn.api_key: Input should be a valid string",
            id="wrong-type-secret",
        ),
        pytest.param(
            tenant(svenn={"base_url": "http://127.0.0.1:8802/api/v1", "api_key": "  "}),
            "tenant 'demo': svenn.api_key: must not be empty",
            id="empty-secret",
        ),
        pytest.param(
            tenant(
                tripletex={**tenant()["tripletex"], "employee_token": "${TRIPLETEX_EMPLOYEE_TOKN}"}
            ),
            "tenant 'demo': tripletex.employee_token: environment variable "
            "TRIPLETEX_EMPLOYEE_TOKN is not set",
            id="unset-variable",
        ),
        pytest.param(
            tenant(svenn={"base_url": "http://127.0.0.1/api/v1", "api_key": "${1-bad}"}),
            "tenant 'demo': svenn.api_key: '${1-bad}' is not a valid environment variable",
            id="bad-variable-name",
        ),
        pytest.param(
            "just a string",
            "tenant 'demo': must be a mapping of settings",
            id="tenant-not-a-mapping",
        ),
        pytest.param(
            tenant(key="other"),
            "tenant 'demo': key: unknown key",
            id="key-field-not-allowed",
        ),
    ],
)
def test_bad_tenant_settings_name_tenant_and_field(tmp_path, body, expected):
    message = load_error(write(tmp_path, {"tenants": {"demo": body}}))

    assert message.startswith(f"tenants.yaml: {expected}"), message


@pytest.mark.parametrize("key", ["Demo", "demo tenant", "æøå", "a.b"])
def test_bad_tenant_key(tmp_path, key):
    message = load_error(write(tmp_path, {"tenants": {key: tenant()}}))

    assert message == f"tenants.yaml: tenant '{key}': tenant key must match [a-z0-9_-]+"


def test_error_names_the_failing_tenant_among_several(tmp_path):
    body = {"tenants": {"good": tenant(), "bad": tenant(mode="paused")}}

    assert load_error(write(tmp_path, body)).startswith("tenants.yaml: tenant 'bad': mode:")


def test_unset_variable_message_from_the_task_example(tmp_path, monkeypatch):
    monkeypatch.delenv("TRIPLETEX_EMPLOYEE_TOKEN")
    message = load_error(write(tmp_path, {"tenants": {"demo": tenant()}}))

    assert message == (
        "tenants.yaml: tenant 'demo': tripletex.employee_token: "
        "environment variable TRIPLETEX_EMPLOYEE_TOKEN is not set"
    )


# -- the Dagster resource ----------------------------------------------------------------


def test_resource_builds_clients_for_a_tenant(tmp_path):
    path = write(tmp_path, {"tenants": {"demo": tenant()}})
    resource = TenantsResource(tenants_file=str(path))

    tripletex = resource.tripletex_client("demo", page_size=10)
    svenn = resource.svenn_client("demo")

    assert isinstance(tripletex, TripletexClient) and isinstance(svenn, SvennClient)
    assert tripletex.base_url == "http://127.0.0.1:8801/v2"
    assert tripletex.employee_token == SECRETS["TRIPLETEX_EMPLOYEE_TOKEN"]
    assert tripletex.page_size == 10
    assert svenn.api_key == SECRETS["SVENN_API_KEY"]


def test_resource_unknown_tenant_is_a_clear_error(tmp_path):
    path = write(tmp_path, {"tenants": {"demo": tenant(), "other": tenant()}})

    with pytest.raises(TenantConfigError) as info:
        TenantsResource(tenants_file=str(path)).get("missing")

    assert str(info.value) == "tenants.yaml: unknown tenant 'missing' (known: demo, other)"


def test_resource_rereads_the_file_and_works_inside_a_dagster_run(tmp_path):
    path = write(tmp_path, {"tenants": {"demo": tenant()}})

    @dg.asset
    def tenant_modes(tenants: TenantsResource) -> dict[str, str]:
        return {key: cfg.mode for key, cfg in tenants.load().items()}

    resource = TenantsResource(tenants_file=str(path))
    first = dg.materialize([tenant_modes], resources={"tenants": resource})
    write(tmp_path, {"tenants": {"demo": tenant(mode="review")}})
    second = dg.materialize([tenant_modes], resources={"tenants": resource})

    assert first.output_for_node("tenant_modes") == {"demo": "active"}
    assert second.output_for_node("tenant_modes") == {"demo": "review"}


# -- one run reads the file once and validates only its own tenant (issue 13) ---------------


@pytest.fixture
def yaml_parses(monkeypatch):
    """How many times a YAML document was parsed."""
    calls = []
    real = yaml.load

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(yaml, "load", counting)
    return calls


def test_repeated_gets_of_different_tenants_parse_the_file_once(tmp_path, yaml_parses):
    path = write(tmp_path, {"tenants": {"a": tenant(), "b": tenant(mode="review")}})
    resource = TenantsResource(tenants_file=str(path))

    modes = [resource.get(key).mode for key in ["a", "b", "a", "b"]]
    resource.tripletex_client("a")
    resource.svenn_client("b")
    listed = load_tenants(path)

    assert modes == ["active", "review", "active", "review"]
    assert sorted(listed) == ["a", "b"]
    assert len(yaml_parses) == 1


def test_an_edit_of_the_same_size_is_seen_by_the_next_get(tmp_path, yaml_parses):
    path = write(tmp_path, {"tenants": {"a": tenant()}})
    resource = TenantsResource(tenants_file=str(path))
    before = resource.get("a")
    stat = path.stat()

    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("mode: active", "mode: review"), encoding="utf-8")
    later = stat.st_mtime_ns + 1_000_000
    os.utime(path, ns=(later, later))  # an edit within the same clock tick
    assert path.stat().st_size == stat.st_size

    assert (before.mode, resource.get("a").mode) == ("active", "review")
    assert len(yaml_parses) == 2


def test_a_broken_file_is_reported_until_it_is_fixed(tmp_path):
    path = write(tmp_path, "tenants:\n  a: [unclosed\n")
    resource = TenantsResource(tenants_file=str(path))
    for _ in range(2):
        with pytest.raises(TenantConfigError, match="invalid YAML"):
            resource.get("a")

    write(tmp_path, {"tenants": {"a": tenant()}})

    assert resource.get("a").mode == "active"


def test_an_invalid_tenant_does_not_stop_another_tenants_run(tmp_path):
    path = write(tmp_path, {"tenants": {"a": tenant(), "b": tenant(mode="paused")}})
    resource = TenantsResource(tenants_file=str(path))

    assert resource.get("a").mode == "active"
    assert resource.tripletex_client("a").base_url == "http://127.0.0.1:8801/v2"
    with pytest.raises(TenantConfigError) as info:
        resource.get("b")
    assert str(info.value).startswith("tenants.yaml: tenant 'b': mode: Input should be")
    assert load_error(path).startswith("tenants.yaml: tenant 'b': mode:")
    with pytest.raises(TenantConfigError, match="tenant 'b'"):
        resource.load()


def test_a_changed_secret_in_the_environment_is_used_by_the_next_get(tmp_path, monkeypatch):
    resource = TenantsResource(tenants_file=str(write(tmp_path, {"tenants": {"a": tenant()}})))
    assert resource.svenn_client("a").api_key == SECRETS["SVENN_API_KEY"]

    monkeypatch.setenv("SVENN_API_KEY", "svenn-SECRET-rotated")
    assert resource.svenn_client("a").api_key == "svenn-SECRET-rotated"

    monkeypatch.delenv("SVENN_API_KEY")
    with pytest.raises(TenantConfigError) as info:
        resource.get("a")
    assert str(info.value) == (
        "tenants.yaml: tenant 'a': svenn.api_key: environment variable SVENN_API_KEY is not set"
    )


def test_changing_a_listing_does_not_change_the_file_seen_later(tmp_path):
    path = write(tmp_path, {"tenants": {"a": tenant(), "b": tenant()}})

    load_tenants(path).clear()

    assert sorted(load_tenants(path)) == ["a", "b"]
    assert TenantsResource(tenants_file=str(path)).get("b").key == "b"


def test_unknown_tenant_among_many_lists_the_first_twenty(tmp_path):
    keys = [f"t{i:02d}" for i in range(25)]
    path = write(tmp_path, {"tenants": {key: tenant() for key in reversed(keys)}})

    with pytest.raises(TenantConfigError) as info:
        TenantsResource(tenants_file=str(path)).get("missing")

    known = ", ".join(keys[:20])
    assert str(info.value) == (
        f"tenants.yaml: unknown tenant 'missing' (known: {known} … and 5 more)"
    )


# -- hostile or careless input: refused before it costs anything -----------------------------


def test_tenants_file_refuses_alias_bomb(tmp_path):
    """A billion-laughs file (a few hundred bytes, a node count growing ninefold per line once
    expanded) is refused at its first anchor, before anything is built or walked."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    body = yaml.safe_dump({"tenants": {"demo": tenant()}}) + "    colour: *a6\n"
    bomb = "\n".join(lines) + "\n" + body
    assert len(bomb) < 1000

    message = load_error(write(tmp_path, bomb))

    assert message == "tenants.yaml: line 1: anchors and aliases (&, *) are not allowed"


def test_tenants_file_refuses_an_alias_used_for_shared_settings(tmp_path):
    text = yaml.safe_dump({"tenants": {"a": tenant()}}) + "  b: {}\n"
    text = text.replace("  a:\n", "  a: &shared\n").replace("  b: {}", "  b: *shared")

    assert "anchors and aliases" in load_error(write(tmp_path, text))


def test_tenants_file_refuses_duplicate_keys(tmp_path):
    one = yaml.safe_dump({"tenants": {"demo": tenant()}})
    body = one.split("\n", 1)[1]  # "  demo:\n    mode: …" — the tenant pasted twice
    text = "tenants:\n" + body + body.replace("mode: active", "mode: review")

    message = load_error(write(tmp_path, text))

    assert message.startswith("tenants.yaml: line ") and message.endswith("duplicate key 'demo'")


def test_tenants_file_refuses_duplicate_keys_inside_a_tenant(tmp_path):
    text = yaml.safe_dump({"tenants": {"demo": tenant()}}) + "    mode: review\n"

    assert load_error(write(tmp_path, text)).endswith("duplicate key 'mode'")


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("demo\n", "demo\\n"),
        ("demo ", "demo "),
        (" demo", " demo"),
        ("de\tmo", "de\\tmo"),
        ("demo\r\nother", "demo\\r\\nother"),
    ],
)
def test_tenants_file_refuses_whitespace_key(tmp_path, key, shown):
    message = load_error(write(tmp_path, {"tenants": {key: tenant()}}))

    assert message == f"tenants.yaml: tenant '{shown}': tenant key must match [a-z0-9_-]+"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("mass_delete_threshold", True, "Input should be a valid number"),
        ("default_department_id", True, "Input should be a valid integer"),
        ("default_department_id", False, "Input should be a valid integer"),
    ],
)
def test_tenants_file_refuses_bool_as_number(tmp_path, field, value, expected):
    message = load_error(write(tmp_path, {"tenants": {"demo": tenant(**{field: value})}}))

    assert message == f"tenants.yaml: tenant 'demo': {field}: {expected}"


def test_tenants_file_numbers_still_load(tmp_path):
    body = tenant(mass_delete_threshold=1, default_department_id=7)
    demo = load_tenants(write(tmp_path, {"tenants": {"demo": body}}))["demo"]

    assert (demo.mass_delete_threshold, demo.default_department_id) == (1.0, 7)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("SVENN_API_KEY", "svenn.api_key"),
        ("TRIPLETEX_CONSUMER_TOKEN", "tripletex.consumer_token"),
        ("TRIPLETEX_EMPLOYEE_TOKEN", "tripletex.employee_token"),
    ],
)
def test_tenants_file_refuses_secret_with_crlf(tmp_path, monkeypatch, variable, field, ending):
    """A secret exported from a file saved with CRLF (``$(cat token)``) would be refused by
    the API as if it were unavailable; the file check names the tenant and the field."""
    monkeypatch.setenv(variable, SECRETS[variable] + ending)

    message = load_error(write(tmp_path, {"tenants": {"demo": tenant()}}))

    assert message.startswith(f"tenants.yaml: tenant 'demo': {field}: contains a line break")


def test_tenants_file_refuses_secret_with_surrounding_spaces(tmp_path, monkeypatch):
    monkeypatch.setenv("SVENN_API_KEY", " " + SECRETS["SVENN_API_KEY"])

    message = load_error(write(tmp_path, {"tenants": {"demo": tenant()}}))

    assert message == "tenants.yaml: tenant 'demo': svenn.api_key: has leading or trailing spaces"


def test_tenants_file_refuses_url_with_a_line_break(tmp_path, monkeypatch):
    monkeypatch.setenv("SVENN_HOST", "127.0.0.1:9000\r\n")
    svenn = {"base_url": "http://${SVENN_HOST}/api/v1", "api_key": LITERAL_SECRET}

    message = load_error(write(tmp_path, {"tenants": {"demo": tenant(svenn=svenn)}}))

    assert message.startswith("tenants.yaml: tenant 'demo': svenn.base_url: contains a line")


# -- webhooks (issue 15) ----------------------------------------------------------------------
def test_webhook_secrets_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TX_HOOK_SECRET", "tripletex-hook-SECRET")
    monkeypatch.setenv("SVENN_HOOK_SECRET", "svenn-hook-SECRET-0123")
    hooks = {"tripletex_secret": "${TX_HOOK_SECRET}", "svenn_secret": "${SVENN_HOOK_SECRET}"}
    loaded = load_tenants(write(tmp_path, {"tenants": {"acme": tenant(webhooks=hooks)}}))["acme"]
    assert loaded.webhook_secret("tripletex") == "tripletex-hook-SECRET"
    assert loaded.webhook_secret("svenn") == "svenn-hook-SECRET-0123"
    assert "SECRET" not in repr(loaded.webhooks)


def test_a_tenant_without_webhooks_has_no_secrets(tmp_path):
    loaded = load_tenants(write(tmp_path, {"tenants": {"acme": tenant()}}))["acme"]
    assert loaded.webhook_secret("tripletex") is None and loaded.webhook_secret("svenn") is None


@pytest.mark.parametrize(
    ("hooks", "where"),
    [
        ({"svenn_secret": "too-short-SECRET"[:12]}, "webhooks.svenn_secret"),
        ({"tripletex_secret": "SECRET"}, "webhooks.tripletex_secret"),
        ({"tripletex_secret": "x" * 101}, "webhooks.tripletex_secret"),
        ({"github_secret": "whatever-SECRET"}, "webhooks.github_secret"),
    ],
)
def test_bad_webhook_secrets_name_the_field_never_the_value(tmp_path, hooks, where):
    message = load_error(write(tmp_path, {"tenants": {"acme": tenant(webhooks=hooks)}}))
    assert where in message and "SECRET" not in message and "xxxx" not in message
