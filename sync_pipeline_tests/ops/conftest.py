"""Fixtures for the operations tests: an isolated data folder and the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
import yaml

from sync_pipeline.resources.storage import migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "sync-pipeline"


@dataclass
class Workspace:
    """One operator's data folder: tenants file, DuckDB file and Dagster home, all under tmp."""

    root: Path
    tenants: dict = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SYNC_TENANTS_FILE": str(self.root / "tenants.yaml"),
            "SYNC_DUCKDB_PATH": str(self.root / "pipeline.duckdb"),
            "DAGSTER_HOME": str(self.root / "dagster_home"),
            "SYNC_DUCKDB_LOCK_WAIT": "0.5",
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def duckdb_path(self) -> Path:
        return self.root / "pipeline.duckdb"

    def add_tenant(
        self,
        key: str,
        *,
        mode: str = "active",
        svenn_url: str,
        svenn_key: str,
        tripletex_url: str,
        tripletex_key: str,
        **extra,
    ) -> None:
        self.tenants[key] = {
            "mode": mode,
            "svenn": {"base_url": svenn_url, "api_key": svenn_key},
            "tripletex": {
                "base_url": tripletex_url,
                "consumer_token": "test-consumer-token",
                "employee_token": tripletex_key,
            },
            **extra,
        }
        (self.root / "tenants.yaml").write_text(yaml.safe_dump({"tenants": self.tenants}))

    def add_offline_tenant(self, key: str, mode: str = "active") -> None:
        """A tenant whose APIs are not running (for commands that only need DuckDB)."""
        self.add_tenant(
            key,
            mode=mode,
            svenn_url="http://127.0.0.1:9/api/v1",
            svenn_key="k",
            tripletex_url="http://127.0.0.1:9/v2",
            tripletex_key="t",
        )

    def db(self) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect(str(self.duckdb_path))
        migrate(conn)
        return conn

    def cli_background(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(CONSOLE_SCRIPT), *args],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CONSOLE_SCRIPT), *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def parse_summary(stdout: str) -> dict[str, dict[str, int]]:
    """The summary table of `run`: {tenant/entity: {column: value}}."""
    lines = stdout.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.startswith("tenant  ") and "linked" in line
    )
    header = lines[start].split()
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[f"{cells[0]}/{cells[1]}"] = dict(zip(header[2:], map(int, cells[2:]), strict=True))
    return rows


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)
