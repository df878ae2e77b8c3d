"""Why a Dagster run failed, on one line: for the CLI's stderr and ``sync.runs.reason``.

Kept free of heavy imports: the CLI loads it on every command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def one_line(message: str) -> str:
    """The first line of ``message``, without Dagster's and modules' qualified prefixes."""
    text = " ".join(message.strip().splitlines()[:1]) if message else ""
    # "dagster._core.definitions.events.Failure: why" -> "why"; "pkg.mod.KeyError: x" -> "KeyError: x"
    text = re.sub(r"^dagster\.[\w.]*\.Failure: ", "", text)
    text = re.sub(r"^(?:[A-Za-z_]\w*\.)+(?=\w+: )", "", text)
    return text[:300]


def error_text(error: Any) -> str:
    """The innermost cause of a step error, on one line (Dagster wraps the user's exception)."""
    while error is not None and error.cause is not None:
        error = error.cause
    return one_line(error.message if error else "failed")


def failure_reason(events: Iterable[Any]) -> str:
    """The reason of a failed run from its Dagster events: the first failed step and its
    innermost error, else the run failure's own message (e.g. the process was killed)."""
    events = [e for e in events if e is not None]
    for event in events:
        if event.is_step_failure:
            return f"{event.step_key}: {error_text(event.event_specific_data.error)}"
    for event in events:
        if event.is_run_failure:  # its type value is the legacy "PIPELINE_FAILURE"
            return one_line(event.message or "run failed")
    return "run failed"
