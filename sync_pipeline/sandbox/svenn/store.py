"""One Svenn company's data in memory: records, change order, idempotency, error log.

Everything here is plain picklable data (the hub persists companies with pickle)
and synchronous (handlers run on one event loop, so no locks are needed).

Change order: every write takes the next tick of the company's clock (at least
1 µs after the previous one), so ``updated_at`` strictly increases per company.
Each table keeps an append-only log of ``(updated_at, id)``; a write appends the
record's new position and leaves its old one stale. Listing bisects into the
log and skips stale entries, so a page costs O(page), and a cursor — the
``(updated_at, id)`` of the last record returned — stays valid whatever is
written meanwhile: a record changed during paging moves behind the cursor and
is delivered (again, with its new version) on a later page, never lost.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from sync_pipeline.sandbox.svenn.errors import ApiError
from sync_pipeline.sandbox.svenn.fields import (
    FIELDS,
    RESOURCES,
    UNIQUE_FIELD,
    parse_date,
    shape_problems,
)
from sync_pipeline.sandbox.svenn.timestamps import format_us, now_us

#: A repeated ``Idempotency-Key`` replays the first response for this long.
IDEMPOTENCY_TTL_SECONDS = 24 * 3600

_SINGULAR = {"projects": "project", "customers": "customer", "employees": "employee"}


def wall_seconds() -> float:
    """Wall clock for idempotency expiry (a module function so tests can move time)."""
    return time.time()


def dump_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON, the form every response body (and idempotent replay) is sent in."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# -- cursors ----------------------------------------------------------------------------------
def encode_cursor(resource: str, stamp: int, record_id: int) -> str:
    raw = f"{resource}:{stamp}:{record_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(resource: str, cursor: str) -> tuple[int, int]:
    """The (updated_at µs, id) a cursor continues after; 400 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        name, stamp, record_id = raw.split(":")
        if name != resource:
            raise ValueError(name)
        return int(stamp), int(record_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise ApiError(
            400, "bad_request", "cursor is not a cursor of this list", {"cursor": "invalid"}
        ) from None


# -- data -------------------------------------------------------------------------------------
@dataclass
class Table:
    """The records of one resource, in API shape, with their change order."""

    resource: str
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: id → current ``updated_at`` in µs.
    stamps: dict[int, int] = field(default_factory=dict)
    #: ``(updated_at µs, id)`` ascending; entries whose stamp is no longer current are stale.
    log: list[tuple[int, int]] = field(default_factory=list)
    next_id: int = 1
    #: Live unique number → id (customers, employees).
    numbers: dict[str, int] = field(default_factory=dict)

    def live(self, record_id: Any) -> dict[str, Any] | None:
        record = self.records.get(record_id)
        return record if record is not None and record["deleted_at"] is None else None

    def touch(self, record: dict[str, Any], stamp: int) -> None:
        record["updated_at"] = format_us(stamp)
        self.stamps[record["id"]] = stamp
        self.log.append((stamp, record["id"]))
        if len(self.log) > 2 * len(self.stamps) + 1024:
            stamps = self.stamps
            self.log = [entry for entry in self.log if stamps[entry[1]] == entry[0]]


@dataclass
class IdempotentResponse:
    fingerprint: str
    status: int
    body: bytes
    at: float


@dataclass
class Company:
    """A tenant: its identity, records, clock, idempotency memory and error log."""

    id: int
    name: str
    organization_number: str | None = None
    tables: dict[str, Table] = field(default_factory=lambda: {r: Table(r) for r in RESOURCES})
    #: Last tick handed out (µs since the epoch); survives restarts with the state file.
    clock_us: int = 0
    idempotency: dict[tuple[str, str], IdempotentResponse] = field(default_factory=dict)
    integration_errors: list[dict[str, Any]] = field(default_factory=list)
    #: Webhook subscriptions (svenn-api.md "Webhooks"), with their secrets.
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    next_webhook_id: int = 1

    def __getstate__(self) -> dict[str, Any]:
        """Queued events are not data: they leave with the request that made them."""
        return {k: v for k, v in self.__dict__.items() if k != "outbox"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"webhooks": [], "next_webhook_id": 1, **state})

    # -- webhooks ---------------------------------------------------------------------------
    def emit(self, resource: str, verb: str, record: dict[str, Any]) -> None:
        """Queue ``<entity>.<verb>`` for the subscriptions that want it (drained by the hub
        after the request, so the request never waits for a delivery)."""
        event = f"{_SINGULAR[resource]}.{verb}"
        if any(event in hook["events"] for hook in self.webhooks):
            self.__dict__.setdefault("outbox", []).append(
                (event, record["id"], record["version"], format_us(self.clock_us))
            )

    def take_events(self) -> list[tuple[str, int, int, str]]:
        return self.__dict__.pop("outbox", None) or []

    def tick(self) -> int:
        self.clock_us = max(now_us(), self.clock_us + 1)
        return self.clock_us

    # -- reads ------------------------------------------------------------------------------
    def get(self, resource: str, record_id: int) -> dict[str, Any]:
        record = self.tables[resource].live(record_id)
        if record is None:
            raise ApiError(404, "not_found", f"no {_SINGULAR[resource]} with id {record_id}")
        return record

    def page(
        self,
        resource: str,
        *,
        limit: int,
        since_us: int | None = None,
        after: tuple[int, int] | None = None,
        include_deleted: bool = False,
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None]:
        """Up to ``limit`` records in (updated_at, id) order, and the position to continue after."""
        table = self.tables[resource]
        log, stamps, records = table.log, table.stamps, table.records
        start = 0
        if since_us is not None:
            start = bisect.bisect_left(log, (since_us, -1))
        if after is not None:
            start = max(start, bisect.bisect_right(log, after))
        out: list[dict[str, Any]] = []
        last: tuple[int, int] | None = None
        for i in range(start, len(log)):
            entry = log[i]
            if stamps.get(entry[1]) != entry[0]:
                continue
            record = records[entry[1]]
            if record["deleted_at"] is not None and not include_deleted:
                continue
            if len(out) == limit:
                return out, last
            out.append(record)
            last = entry
        return out, None

    # -- writes -----------------------------------------------------------------------------
    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        problems = shape_problems(resource, body, create=True)
        self._check(resource, None, body, problems)
        table = self.tables[resource]
        stamp = self.tick()
        record: dict[str, Any] = {"id": table.next_id}
        for name, spec in FIELDS[resource].items():
            record[name] = body[name] if name in body else spec.fresh_default()
        record.update(version=1, created_at=format_us(stamp), updated_at=None, deleted_at=None)
        table.next_id += 1
        table.records[record["id"]] = record
        table.touch(record, stamp)
        self._index_number(table, record)
        self.emit(resource, "created", record)
        return record

    def update(
        self, resource: str, record_id: int, body: dict[str, Any], if_match: int | None
    ) -> dict[str, Any]:
        record = self.get(resource, record_id)
        self._check_version(resource, record, if_match)
        problems = shape_problems(resource, body, create=False)
        self._check(resource, record, body, problems)
        changes = {name: value for name, value in body.items() if record[name] != value}
        if not changes:
            return record
        table = self.tables[resource]
        self._unindex_number(table, record)
        record.update(changes)
        record["version"] += 1
        table.touch(record, self.tick())
        self._index_number(table, record)
        self.emit(resource, "updated", record)
        return record

    def delete(self, resource: str, record_id: int, if_match: int | None = None) -> dict[str, Any]:
        """Soft-delete; returns the tombstone (a bulk delete's result carries it)."""
        record = self.get(resource, record_id)
        self._check_version(resource, record, if_match)
        table = self.tables[resource]
        stamp = self.tick()
        self._unindex_number(table, record)
        record["deleted_at"] = format_us(stamp)
        record["version"] += 1
        table.touch(record, stamp)
        self.emit(resource, "deleted", record)
        return record

    @staticmethod
    def _check_version(resource: str, record: dict[str, Any], if_match: int | None) -> None:
        if if_match is not None and if_match != record["version"]:
            raise ApiError(
                412,
                "version_mismatch",
                f"{_SINGULAR[resource]} {record['id']} is at version {record['version']}, "
                f"not {if_match}",
            )

    # -- rules that need other records ------------------------------------------------------
    def _check(
        self,
        resource: str,
        record: dict[str, Any] | None,
        body: dict[str, Any],
        problems: dict[str, str],
    ) -> None:
        """Add reference and date-order problems, raise 422 if any, then 409 on a taken number."""
        spec = FIELDS[resource]
        # References are checked where they change: resending a record that points to a
        # since-deleted record must not fail on the part the client did not touch.
        changed = {
            name: value
            for name, value in body.items()
            if name not in problems and (record is None or record[name] != value)
        }
        for name, value in changed.items():
            field_spec = spec[name]
            if field_spec.ref is None or value is None:
                continue
            target = self.tables[field_spec.ref]
            known = set(record[name]) if record is not None and isinstance(value, list) else ()
            for ref_id in value if isinstance(value, list) else (value,):
                if ref_id not in known and target.live(ref_id) is None:
                    problems[name] = f"no live {_SINGULAR[field_spec.ref]} with id {ref_id}"
                    break
        if resource == "projects":
            self._check_project(record, body, changed, problems)
        if problems:
            raise ApiError(422, "validation_failed", "the record is not valid", problems)
        number_field = UNIQUE_FIELD.get(resource)
        number = body.get(number_field) if number_field else None
        if number is not None:
            owner = self.tables[resource].numbers.get(number)
            if owner is not None and (record is None or owner != record["id"]):
                raise ApiError(
                    409,
                    "duplicate_number",
                    f"{number_field} {number!r} is already used by {_SINGULAR[resource]} {owner}",
                    {number_field: f"already used by {_SINGULAR[resource]} {owner}"},
                )

    def _check_project(
        self,
        record: dict[str, Any] | None,
        body: dict[str, Any],
        changed: dict[str, Any],
        problems: dict[str, str],
    ) -> None:
        parent_id = changed.get("parent_id")
        if parent_id is not None and "parent_id" not in problems:
            parent = self.tables["projects"].records[parent_id]
            if record is not None and parent_id == record["id"]:
                problems["parent_id"] = "a project cannot be its own parent"
            elif parent["parent_id"] is not None:
                problems["parent_id"] = f"project {parent_id} is itself a sub-project"
            elif record is not None and record["parent_id"] is None and self._has_children(record):
                problems["parent_id"] = "a project with sub-projects cannot become one"
        if ("start_date" in body or "end_date" in body) and not (
            {"start_date", "end_date"} & problems.keys()
        ):
            start = body["start_date"] if "start_date" in body else (record or {}).get("start_date")
            end = body["end_date"] if "end_date" in body else (record or {}).get("end_date")
            start_day, end_day = parse_date(start or ""), parse_date(end or "")
            if start_day and end_day and end_day < start_day:
                problems["end_date"] = "must not be before start_date"

    def _has_children(self, record: dict[str, Any]) -> bool:
        return any(
            p["parent_id"] == record["id"] and p["deleted_at"] is None
            for p in self.tables["projects"].records.values()
        )

    @staticmethod
    def _index_number(table: Table, record: dict[str, Any]) -> None:
        number_field = UNIQUE_FIELD.get(table.resource)
        if number_field and record[number_field] is not None and record["deleted_at"] is None:
            table.numbers[record[number_field]] = record["id"]

    @staticmethod
    def _unindex_number(table: Table, record: dict[str, Any]) -> None:
        number_field = UNIQUE_FIELD.get(table.resource)
        number = record[number_field] if number_field else None
        if number is not None and table.numbers.get(number) == record["id"]:
            del table.numbers[number]

    # -- idempotency ------------------------------------------------------------------------
    def create_once(
        self, scope: str, resource: str, body: dict[str, Any], key: str | None
    ) -> tuple[bytes, bool]:
        """Create unless ``key`` was used for the same body within 24 h; (record JSON, replayed).

        The one path of both the single POST (``Idempotency-Key`` header) and a bulk create
        (``idempotency_key``): the same ``scope`` and key share one memory across both forms.
        Only a successful create is remembered, so a refused one may be retried under its key.
        """
        fingerprint = None
        if key is not None:
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
            fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
            first = self.replay(scope, key, fingerprint)
            if first is not None:
                return first.body, True
        record_json = dump_json(self.create(resource, body))
        if fingerprint is not None:
            self.remember(scope, key, fingerprint, 201, record_json)
        return record_json, False

    def replay(self, scope: str, key: str, fingerprint: str) -> IdempotentResponse | None:
        """The first response to ``key`` within 24 h, or None; 422 if the body differs."""
        self._expire_idempotency()
        entry = self.idempotency.get((scope, key))
        if entry is None:
            return None
        if entry.fingerprint != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request body",
            )
        return entry

    def remember(self, scope: str, key: str, fingerprint: str, status: int, body: bytes) -> None:
        self.idempotency[(scope, key)] = IdempotentResponse(
            fingerprint, status, body, wall_seconds()
        )

    def _expire_idempotency(self) -> None:
        horizon = wall_seconds() - IDEMPOTENCY_TTL_SECONDS
        memory = self.idempotency
        while memory:
            oldest = next(iter(memory))
            if memory[oldest].at > horizon:
                break
            del memory[oldest]

    # -- bulk load --------------------------------------------------------------------------
    def load(self, resource: str, records: list[dict[str, Any]]) -> None:
        """Add generator records (svenn-api.md fields + ``id`` [+ ``deleted``]) without HTTP.

        Ids are kept; server fields are set as if each record had been created (and,
        for ``"deleted": True``, deleted) now, in id order.
        """
        table = self.tables[resource]
        spec = FIELDS[resource]
        allowed = {*spec, "id", "deleted"}
        number_field = UNIQUE_FIELD.get(resource)
        for source in sorted(records, key=lambda r: r["id"]):
            unknown = source.keys() - allowed
            if unknown:
                raise ValueError(f"{resource} {source.get('id')}: unknown fields {sorted(unknown)}")
            record: dict[str, Any] = {"id": source["id"]}
            for name, field_spec in spec.items():
                record[name] = source[name] if name in source else field_spec.fresh_default()
            stamp = self.tick()
            record.update(version=1, created_at=format_us(stamp), updated_at=None, deleted_at=None)
            if source.get("deleted"):
                stamp = self.tick()
                record.update(version=2, deleted_at=format_us(stamp))
            elif number_field and record[number_field] is not None:
                owner = table.numbers.get(record[number_field])
                if owner is not None:
                    raise ValueError(
                        f"{resource} {owner} and {record['id']} share {number_field} "
                        f"{record[number_field]!r}; Svenn refuses that among live records"
                    )
            if record["id"] in table.records:
                raise ValueError(f"{resource}: id {record['id']} appears twice")
            table.records[record["id"]] = record
            table.touch(record, stamp)
            self._index_number(table, record)
            table.next_id = max(table.next_id, record["id"] + 1)
