"""Svenn API v1 client (contract: ``shared/spec/svenn-api.md``).

Bearer auth, cursor paging (``next_cursor`` until null; a page without its envelope or
with a record lacking its id is an error, never the end of the listing), ``Idempotency-Key`` on
creates so a retried or repeated create never duplicates (G4/G5), ``If-Match``
on updates, bulk writes (``POST /<resource>/bulk``, typed per-operation results),
and the ``{"error": {code, message, fields}}`` envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Unpack

import requests
from pydantic import Field

from sync_pipeline.model import PLURAL, Entity
from sync_pipeline.resources.http import (
    ApiClient,
    ApiError,
    ErrorEnvelope,
    RequestOptions,
    redact,
)
from sync_pipeline.resources.systems import Record, Written

RESOURCES = ("projects", "customers", "employees")
#: The key (number) of each entity as Svenn names it (G4: creates always send it).
KEY_FIELD: dict[Entity, str] = {
    "project": "display_id",
    "customer": "customer_number",
    "employee": "employee_number",
}
_ERRORS_PATH = "/integrations/tripletex/errors"
#: Operations one bulk request may carry (svenn-api.md, "Bulk writes").
BULK_MAX_OPERATIONS = 100


class SvennApiError(ApiError):
    """Svenn refused a request; ``code`` is Svenn's snake_case error code."""

    system = "Svenn"

    @classmethod
    def envelope(cls, body: dict[str, Any], response: requests.Response) -> ErrorEnvelope:
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        fields = error.get("fields")
        return ErrorEnvelope(
            code=error.get("code"),
            message=error.get("message"),
            fields=list(fields.items()) if isinstance(fields, dict) else [],
            request_id=response.headers.get("X-Request-Id"),
        )


# -- bulk writes ----------------------------------------------------------------------------------
def create_op(data: Mapping[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """A bulk create. Pass a key (as for ``SvennClient.create``): a bulk holding a create
    without one cannot be re-sent safely, so the client never retries it after a lost answer."""
    op: dict[str, Any] = {"op": "create", "data": dict(data)}
    if idempotency_key:
        op["idempotency_key"] = idempotency_key
    return op


def update_op(id: int, data: Mapping[str, Any], if_match: int | None = None) -> dict[str, Any]:
    """A bulk update of the given fields; with ``if_match`` another version makes it a 412."""
    return {"op": "update", "id": int(id), "if_match": if_match, "data": dict(data)}


def delete_op(id: int, if_match: int | None = None) -> dict[str, Any]:
    """A bulk (soft) delete; with ``if_match`` another version makes it a 412."""
    return {"op": "delete", "id": int(id), "if_match": if_match}


@dataclass(frozen=True)
class BulkResult:
    """One operation's outcome in a bulk write; ``index`` is its place in the request.

    ``record`` is the created or updated record, or the tombstone of a deleted one (None on
    error); ``error_*`` are Svenn's error code, message and field problems (None/empty on
    success).
    """

    index: int
    op: str
    status: int
    record: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_fields: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def written(self) -> Written | None:
        """The created or updated record's id and version (None without a record)."""
        return Written.of(self.record)

    def as_error(self, resource: str) -> SvennApiError | None:
        """The failure as the error a single-record call would have raised (None if ok)."""
        if self.ok:
            return None
        return SvennApiError(
            status=self.status,
            code=self.error_code,
            message=self.error_message or "",
            validation_messages=[{"field": k, "message": v} for k, v in self.error_fields.items()],
            method="POST",
            path=f"/{resource}/bulk[{self.index}]",
        )


def format_timestamp(value: datetime | str) -> str:
    """RFC 3339 UTC (``2026-11-27T12:00:00Z``); naive datetimes are taken as UTC.

    Sub-seconds are dropped, which only widens an ``updated_since`` (>=) window.
    """
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class SvennClient(ApiClient):
    """Svenn API v1 client: cursor paging, idempotent creates, retries, typed errors."""

    system: ClassVar[str] = "Svenn"
    error_type: ClassVar[type[ApiError]] = SvennApiError
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    base_url: str = Field(description="API root including /api/v1.")
    api_key: str = Field(description="The company's API key (secret).")
    page_size: int = Field(default=500, ge=1, le=500)

    # -- plumbing -----------------------------------------------------------------------
    def _request(
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> requests.Response:
        options["headers"] = {
            "Authorization": f"Bearer {self.api_key}",
            **(options.get("headers") or {}),
        }
        return self._http().request(method, path, **options)

    # -- records --------------------------------------------------------------------------
    def iter_pages(
        self,
        resource: str,
        updated_since: datetime | str | None = None,
        include_deleted: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield pages of ``resource`` (ordered by updated_at, id) until ``next_cursor`` is null."""
        params: dict[str, Any] = {"limit": self.page_size}
        if updated_since is not None:
            params["updated_since"] = format_timestamp(updated_since)
        if include_deleted:
            params["include_deleted"] = "true"
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page_params = {**params, **({"cursor": cursor} if cursor else {})}
            body = self._request("GET", f"/{resource}", params=page_params).json()
            data = self._page_records(body, resource)
            if data:
                yield data
            cursor = body["next_cursor"]
            if not cursor:
                return
            if cursor in seen:  # a server bug must not turn an extract into an endless loop
                raise self._incomplete_listing(
                    "the server returned a cursor it had returned before",
                    f"/{resource}",
                    code="cursor_loop",
                )
            seen.add(cursor)

    def _page_records(self, body: Any, resource: str) -> list[dict[str, Any]]:
        """A page's records, or an error when the page is not one (G7): without its envelope
        (``data`` and ``next_cursor``) or with a record lacking its id, the listing's end and
        its content are unknown, so the extract must count as incomplete, never as complete."""
        problem = None
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            problem = "the page has no 'data' list"
        elif "next_cursor" not in body:
            problem = "the page has no 'next_cursor' (the listing's end is unknown)"
        elif any(not isinstance(r, dict) or not _is_id(r.get("id")) for r in body["data"]):
            problem = "a record on the page has no id"
        if problem:
            raise self._incomplete_listing(problem, f"/{resource}")
        return body["data"]

    def list_all(
        self,
        resource: str,
        updated_since: datetime | str | None = None,
        include_deleted: bool = False,
    ) -> list[dict[str, Any]]:
        return [
            row
            for page in self.iter_pages(resource, updated_since, include_deleted)
            for row in page
        ]

    def get(self, resource: str, id: int) -> dict[str, Any]:
        return self._request("GET", f"/{resource}/{id}").json()

    def create(
        self, resource: str, body: Mapping[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Create a record; the same ``idempotency_key`` within 24 h returns the first result."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request(
            "POST", f"/{resource}", json=dict(body), headers=headers, expected=(200, 201)
        ).json()

    def update(
        self, resource: str, id: int, body: Mapping[str, Any], if_match: int | None = None
    ) -> dict[str, Any]:
        """PATCH the given fields; with ``if_match`` a changed version gives 412 (SvennApiError)."""
        headers = {"If-Match": str(if_match)} if if_match is not None else None
        return self._request(
            "PATCH", f"/{resource}/{id}", json=dict(body), headers=headers, expected=(200,)
        ).json()

    def delete(self, resource: str, id: int) -> None:
        self._request("DELETE", f"/{resource}/{id}", expected=(200, 204))

    def bulk(self, resource: str, operations: Sequence[Mapping[str, Any]]) -> list[BulkResult]:
        """Apply 1–100 operations (``create_op``/``update_op``/``delete_op``) in one request.

        Svenn applies them in order and independently, so a refused operation is a
        :class:`BulkResult` with its status and error, never an exception; only a failure of
        the whole request raises :class:`SvennApiError` (400 malformed, 401, 429 once the
        retries are spent, 5xx) or ``ApiUnavailableError``, and then nothing of it is known
        to have been applied — except after a lost answer, see below.

        Re-sending invariant: a bulk whose answer is lost (timeout, dropped connection,
        502/503/504) may have been applied, so it is re-sent only if every create in it
        carries an ``idempotency_key`` — its creates then replay instead of duplicating (G5).
        Updates and deletes are safe to repeat: an update sets the same fields (with
        ``if_match`` a repeat of one that landed is a 412 for that operation), a repeated
        delete is a 404. A bulk with an unkeyed create is sent once; 429 is always retried,
        since Svenn applied nothing then.
        """
        ops = [dict(op) for op in operations]
        if not 1 <= len(ops) <= BULK_MAX_OPERATIONS:
            raise ValueError(f"a bulk takes 1 to {BULK_MAX_OPERATIONS} operations, not {len(ops)}")
        path = f"/{resource}/bulk"
        resend_safe = all(op.get("op") != "create" or op.get("idempotency_key") for op in ops)
        response = self._request(
            "POST", path, json={"operations": ops}, expected=(200,), resend_safe=resend_safe
        )
        try:
            results = response.json()["results"]
            if not isinstance(results, list) or len(results) != len(ops):
                raise ValueError(f"{len(results)} results for {len(ops)} operations")
            return [
                self._bulk_result(i, op["op"], result)
                for i, (op, result) in enumerate(zip(ops, results, strict=True))
            ]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SvennApiError(
                status=response.status_code,
                code="bulk_results_malformed",
                message=self._http().redact(f"the bulk answer does not fit the request: {exc}"),
                method="POST",
                path=path,
            ) from None

    def _bulk_result(self, index: int, op: str, result: Mapping[str, Any]) -> BulkResult:
        status = result["status"]
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError(f"status {status!r} of operation {index}")
        error = result.get("error") or {}
        fields = error.get("fields") or {}
        secrets = self._secrets()
        return BulkResult(
            index=index,
            op=op,
            status=status,
            record=result.get("record"),
            error_code=error.get("code"),
            error_message=redact(str(error["message"]), secrets) if "message" in error else None,
            error_fields={str(k): redact(str(v), secrets) for k, v in fields.items()},
        )

    # -- company and error log -------------------------------------------------------------
    def get_company(self) -> dict[str, Any]:
        """``{"id", "name", "organization_number"}`` of the key's company."""
        return self._request("GET", "/company").json()

    def put_errors(self, errors: list[dict[str, Any]]) -> None:
        """Replace the sync error list Svenn shows under Tripletex → Feillogg (G10)."""
        self._request("PUT", _ERRORS_PATH, json={"errors": list(errors)}, expected=(200, 204))

    def get_errors(self) -> list[dict[str, Any]]:
        return self._request("GET", _ERRORS_PATH).json().get("errors") or []

    # -- entities ---------------------------------------------------------------------------
    # What the sync asks for (``systems.SvennSystem``): resource names, key fields and
    # tombstones stay here.
    def key_field(self, entity: Entity) -> str:
        return KEY_FIELD[entity]

    def iter_changed(
        self, entity: Entity, since: datetime | str | None, *, include_deleted: bool = True
    ) -> Iterator[list[Record]]:
        """Pages of records changed since ``since`` (all when None), tombstones included."""
        return self.iter_pages(PLURAL[entity], updated_since=since, include_deleted=include_deleted)

    def list_changed(
        self, entity: Entity, since: datetime | str | None, *, include_deleted: bool = True
    ) -> list[Record]:
        return [
            r
            for page in self.iter_changed(entity, since, include_deleted=include_deleted)
            for r in page
        ]

    def get_many(self, entity: Entity, ids: Iterable[int]) -> list[Record]:
        """The records with these ids (tombstones too); an id Svenn does not know is absent.
        Svenn has no id filter, so this is one GET per id."""
        found: list[Record] = []
        for id in sorted({int(i) for i in ids}):
            try:
                found.append(self.get(PLURAL[entity], id))
            except SvennApiError as err:
                if err.status != 404:
                    raise
        return found

    def live_by_key(self, entity: Entity, since: datetime) -> dict[str, list[Written]]:
        """Live records changed since ``since``, by key: where a create whose answer was lost
        would be found (Svenn has no key filter)."""
        found: dict[str, list[Written]] = {}
        for record in self.list_changed(entity, since, include_deleted=False):
            key = self.key_of(entity, record)
            written = Written.of(record, KEY_FIELD[entity])
            if key is not None and written is not None and not record.get("deleted_at"):
                found.setdefault(key, []).append(written)
        return found

    def write_many(
        self, entity: Entity, operations: Sequence[Mapping[str, Any]]
    ) -> list[BulkResult]:
        """One bulk of the entity's resource (see :meth:`bulk`)."""
        return self.bulk(PLURAL[entity], operations)
