"""Dagster's event stream during a CLI run, as one line per finished step on stdout."""

from __future__ import annotations

import logging
import sys
import warnings

from sync_pipeline.failures import error_text


class ProgressHandler(logging.Handler):
    """Turns Dagster's event stream into one line per finished step."""

    def __init__(self, stream):
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.rows: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        kind = event.event_type_value
        step = event.step_key or ""
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            count = mat.metadata.get("dagster/row_count") or mat.metadata.get("dagster_row_count")
            label = mat.asset_key.to_user_string()
            self.rows.setdefault(step, []).append(
                f"{label} {count.value} rows" if count is not None else label
            )
        elif kind == "STEP_SUCCESS":
            seconds = event.event_specific_data.duration_ms / 1000
            done = "; ".join(self.rows.pop(step, [])) or ""
            self._line(f"  ok      {step:<44} {seconds:6.1f} s  {done}")
        elif kind == "STEP_FAILURE":
            reason = error_text(event.event_specific_data.error)
            self._line(f"  FAILED  {step:<44} {reason}")
        elif kind == "STEP_UP_FOR_RETRY":
            self._line(f"  retry   {step}")
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                key = evaluation.asset_check_key
                self._line(f"  check   {key.asset_key.to_user_string()}:{key.name} did not pass")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


def progress_logger_def():
    from dagster import logger

    @logger(description="One line per finished step on stdout.")
    def progress(_init_context):
        log = logging.getLogger("sync_pipeline.cli.progress")
        log.handlers = [ProgressHandler(sys.stdout)]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return log

    return progress


def quiet_console(verbose: bool = False) -> None:
    """What an operator's console shows besides the progress lines: library log records
    (client retries, …, all in the Dagster event log) only when ``verbose``; never Dagster's
    preview/deprecation notices, which are for developers."""
    logging.basicConfig(
        level=logging.WARNING if verbose else logging.CRITICAL + 1,
        format="%(levelname)s %(name)s: %(message)s",
    )
    warnings.filterwarnings("ignore", module=r"dagster(\.|$)")
    warnings.filterwarnings("ignore", category=UserWarning, message=".*Definitions.resolve_job_def")
