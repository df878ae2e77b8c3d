"""Record timestamps: integer microseconds inside, RFC 3339 UTC with ``Z`` outside.

Integers keep ordering and ``updated_since`` comparisons exact and cheap; the
text form always carries six fraction digits so two writes in the same second
still compare correctly as strings too.
"""

from __future__ import annotations

import datetime as dt
import re
import time

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def now_us() -> int:
    return time.time_ns() // 1000


def format_us(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def parse_rfc3339(text: str) -> int | None:
    """Microseconds since the epoch (rounded up, so ``>=`` stays exact), or None if malformed.

    An offset is required: a timestamp without one names no instant.
    """
    m = _RFC3339.fullmatch(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        ordinal = dt.date(year, month, day).toordinal()
    except ValueError:
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if m.group(9) == "+" else -1)
    fraction = m.group(7) or ""
    micros = int(fraction[:6].ljust(6, "0")) if fraction else 0
    if fraction[6:].strip("0"):
        micros += 1
    seconds = (ordinal - _EPOCH_ORDINAL) * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 1_000_000 + micros
