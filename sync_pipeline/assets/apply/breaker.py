"""The outage breaker: stop calling an API that stayed unavailable (G5).

After ``OUTAGE_AFTER_CHUNKS`` chunks in a row found a system unavailable, the rest of the
run's writes to it are not sent: each becomes a failed outcome with an ``API_UNAVAILABLE``
finding now, and the rules plan it again next run. Any success resets the count.
"""

from __future__ import annotations

from typing import Any

from sync_pipeline.assets.apply.outcomes import Outcomes, Result

#: After this many chunks in a row found an API unavailable, the run stops calling it.
OUTAGE_AFTER_CHUNKS = 2


class Breaker:
    """Consecutive unavailable chunks per system, for one run."""

    def __init__(self, outcomes: Outcomes) -> None:
        self.outcomes = outcomes
        self._outage: dict[str, int] = {}

    def observe(self, system: str, results: list[Result]) -> None:
        """Count consecutive chunks where the API stayed unavailable; any success resets."""
        if any(r.state == "done" for r in results):
            self._outage[system] = 0
        elif any(r.finding is not None and r.finding.code == "API_UNAVAILABLE" for r in results):
            self._outage[system] = self._outage.get(system, 0) + 1

    def is_down(self, system: str) -> bool:
        return self._outage.get(system, 0) >= OUTAGE_AFTER_CHUNKS

    def skip_if_down(self, system: str, items: list[tuple[Any, ...]]) -> bool:
        """True (and the items settled as not attempted) when ``system`` is down."""
        if not self.is_down(system):
            return False
        self.outcomes.settle(
            [
                Result(
                    item[0],
                    "failed",
                    error={"reason": f"not attempted: {system} unavailable"},
                    finding=self.outcomes.finding(item[0], "API_UNAVAILABLE", not_attempted=True),
                )
                for item in items
            ],
            with_intent=True,
        )
        return True
