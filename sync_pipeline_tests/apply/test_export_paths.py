"""G10: the Parquet exports take their folder from the operator (``SYNC_EXPORT_DIR``); a
folder name is data, never SQL text, so a quote in it cannot fail (or rewrite) the run."""

from __future__ import annotations

import duckdb

from sync_pipeline_tests.apply.harness import WorldTenant, failure_text


def test_export_dir_with_quote(tripletex_sandbox, svenn_sandbox, tmp_path):
    root = tmp_path / "kunde's eksport'); SELECT 1; --"
    tenant = WorldTenant.create(tripletex_sandbox, svenn_sandbox, root, world_seed=5)

    result = tenant.run()

    assert result.success, failure_text(result)
    path = root / "exports" / "runs" / "tenant=acme" / "data.parquet"
    runs = duckdb.read_parquet(str(path)).select("run_id, outcome").fetchall()
    assert runs == [(result.run_id, "success")]
    (open_now,) = tenant.query("SELECT count(*) FROM sync.errors WHERE resolved_at IS NULL")[0]
    errors = duckdb.read_parquet(
        str(root / "exports" / "open_errors" / "tenant=acme" / "data.parquet")
    )
    assert errors.count("*").fetchall() == [(open_now,)]
    (logged,) = tenant.query("SELECT count(*) FROM sync.errors")[0]
    history = duckdb.read_parquet(str(root / "exports" / "errors" / "tenant=acme" / "data.parquet"))
    assert history.count("*").fetchall() == [(logged,)]
