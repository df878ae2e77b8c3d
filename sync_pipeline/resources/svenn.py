"""Svenn API v1 client (contract: ``shared/spec/svenn-api.md``).

Bearer auth, cursor paging (``next_cursor`` until null; a page without its envelope or
with a record lacking its id is an error, never the end of the listing), ``Idempotency-Key`` on
creates so a retried or repeated create never duplicates (G4/G5), ``If-Match``
on updates, and the ``{"error": {code, message, fields}}`` envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import requests
from pydantic import Field

from sync_pipeline.resources.http import (
    ApiClient,
    ApiError,
    Clock,
    Sleeper,
    error_body,
    fallback_message,
    redact,
)

RESOURCES = ("projects", "customers", "employees")
_ERRORS_PATH = "/integrations/tripletex/errors"


class SvennApiError(ApiError):
    """Svenn refused a request; ``code`` is Svenn's snake_case error code."""

    system = "Svenn"

    @classmethod
    def from_response(
        cls,
        response: requests.Response,
        method: str,
        path: str,
        secrets: Iterable[str] = (),
    ) -> SvennApiError:
        secrets = tuple(secrets)
        body = error_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {}
        fields = error.get("fields") or {}
        validation = (
            [
                {"field": redact(str(k), secrets), "message": redact(str(v), secrets)}
                for k, v in fields.items()
            ]
            if isinstance(fields, dict)
            else []
        )
        return cls(
            status=response.status_code,
            code=error.get("code"),
            message=redact(str(error.get("message") or fallback_message(response)), secrets),
            validation_messages=validation,
            request_id=response.headers.get("X-Request-Id"),
            method=method,
            path=path,
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
    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)

    base_url: str = Field(description="API root including /api/v1.")
    api_key: str = Field(description="The company's API key (secret).")
    page_size: int = Field(default=500, ge=1, le=500)

    def use_clock(
        self, *, monotonic: Clock | None = None, sleeper: Sleeper | None = None
    ) -> SvennClient:
        """Replace the monotonic clock and sleep (tests); call before any request."""
        if monotonic is not None:
            self._clock = monotonic
        if sleeper is not None:
            self._sleeper = sleeper
        return self

    # -- plumbing -----------------------------------------------------------------------
    def _error(self, response: requests.Response, method: str, path: str) -> SvennApiError:
        return SvennApiError.from_response(response, method, path, self._secrets())

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200, 201, 204),
    ) -> requests.Response:
        return self._http().request(
            method,
            path,
            params=params,
            json=json,
            headers={"Authorization": f"Bearer {self.api_key}", **(headers or {})},
            expected=expected,
        )

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
                raise SvennApiError(
                    status=200,
                    code="cursor_loop",
                    message="the server returned a cursor it had returned before",
                    method="GET",
                    path=f"/{resource}",
                )
            seen.add(cursor)

    @staticmethod
    def _page_records(body: Any, resource: str) -> list[dict[str, Any]]:
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
            raise SvennApiError(
                status=200,
                code="incomplete_listing",
                message=problem,
                method="GET",
                path=f"/{resource}",
            )
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

    # -- company and error log -------------------------------------------------------------
    def get_company(self) -> dict[str, Any]:
        """``{"id", "name", "organization_number"}`` of the key's company."""
        return self._request("GET", "/company").json()

    def put_errors(self, errors: list[dict[str, Any]]) -> None:
        """Replace the sync error list Svenn shows under Tripletex → Feillogg (G10)."""
        self._request("PUT", _ERRORS_PATH, json={"errors": list(errors)}, expected=(200, 204))

    def get_errors(self) -> list[dict[str, Any]]:
        return self._request("GET", _ERRORS_PATH).json().get("errors") or []
