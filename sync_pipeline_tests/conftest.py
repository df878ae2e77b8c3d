"""Session fixtures: both sandbox servers run as child processes on free loopback ports.

Tests that change data register their own company (``sandbox.new_company()``)
so they never see each other's records; the start-up company holds the demo
world and must be treated as read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from sync_pipeline.sandbox.process import SandboxProcess

# Property-based tests (hypothesis, schemathesis) explore new examples on developers'
# machines, and replay the same ones in CI so a submission's result is repeatable.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / "tripletex"


@pytest.fixture(scope="session")
def tripletex_sandbox():
    with SandboxProcess.start("tripletex", "--seed", "demo") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def svenn_sandbox():
    with SandboxProcess.start("svenn", "--seed", "demo") as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def tripletex_reference_dir() -> Path:
    """The official Tripletex API documents, which are not part of the project."""
    if not (REFERENCE_DIR / "openapi-2.74.00.json").exists():
        pytest.skip(
            f"Tripletex reference documents not found in {REFERENCE_DIR} "
            "(they live in the shared folder beside the repository, not in it)"
        )
    return REFERENCE_DIR
