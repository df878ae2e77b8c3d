"""G5: a sync killed (SIGKILL) after N of its writes, then run again, ends exactly where an
uninterrupted sync ends: no duplicate in either system, no lost record."""

from __future__ import annotations

import pytest

from sync_pipeline_tests.apply.harness import WorldTenant, failure_text
from sync_pipeline_tests.conftest import store_of_its_own

CRASH_SEED = 23
#: No default project manager configured: P10's fallback must not depend on run history.
SETTINGS: dict[str, str] = {}


@pytest.fixture(scope="module")
def reference(request, store_backend, tripletex_sandbox, svenn_sandbox, tmp_path_factory):
    """The same world synced without interruption, on a store of its own of the backend the
    tests run on: the end state every crash must reach."""
    with store_of_its_own(request, store_backend, "crash_reference"):
        tenant = WorldTenant.create(
            tripletex_sandbox,
            svenn_sandbox,
            tmp_path_factory.mktemp("reference"),
            CRASH_SEED,
            **SETTINGS,
        )
        before = tenant.writes()
        result = tenant.run()
        assert result.success, failure_text(result)
        return tenant.snapshot(), tenant.writes() - before


@pytest.mark.lake
@pytest.mark.parametrize("fraction", [0.05, 0.4, 0.8])
def test_G5_a_run_killed_after_n_writes_converges_to_the_uninterrupted_end_state(
    reference, tripletex_sandbox, svenn_sandbox, tmp_path, fraction
):
    expected, total_writes = reference
    kill_after = max(1, int(total_writes * fraction))
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, tmp_path, CRASH_SEED, **SETTINGS)
    tenant.slow_writes(delay_ms=100)  # widen each call so the kill lands mid-flight
    try:
        proc = tenant.start_cli_run()
        tenant.kill_after_writes(proc, kill_after)
    finally:
        tripletex_sandbox.clear_faults()
        svenn_sandbox.clear_faults()
    assert tenant.query("SELECT count(*) FROM sync.runs WHERE finished_at IS NOT NULL") == [(0,)]

    recovery = tenant.run()
    assert recovery.success, failure_text(recovery)
    before = tenant.writes()
    check = tenant.run()
    assert check.success, failure_text(check)

    assert tenant.snapshot() == expected  # same records, no duplicates, on both sides
    assert tenant.writes() - before == 0  # converged: nothing left to write (G6)
    unsettled = tenant.query(
        "SELECT count(*) FROM sync.operations WHERE state = 'intent' AND run_id <> ?",
        check.run_id,
    )
    assert unsettled == [(0,)]  # every unknown outcome of the killed run was settled
