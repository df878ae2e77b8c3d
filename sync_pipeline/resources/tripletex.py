"""Tripletex API v2 client (``https://tripletex.no/v2``, ``https://api-test.tripletex.tech/v2``
or the project's sandbox).

Knows Tripletex's conventions: a session token minted from the consumer and
employee tokens and sent as Basic auth (user ``0``), ``{"value": …}`` /
``{"values": […]}`` envelopes (a list page without its envelope, or with a record lacking
its id, is an error, never an empty page), ``from``/``count`` paging that must not trust
``fullResultSize``, the ``If-None-Match``/``versionDigest`` checksum, and the
error envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import requests
from pydantic import Field, PrivateAttr

from sync_pipeline.resources.http import (
    ApiClient,
    ApiError,
    Clock,
    Sleeper,
    error_body,
    fallback_message,
    redact,
)

OSLO = ZoneInfo("Europe/Oslo")

#: Project fields the sync reads. ``changes`` gives the last-modified timestamp (G2),
#: ``participants`` the Tripletex → Svenn access list (P12), ``isInternal`` P3/P4,
#: ``isOffer`` P13, ``mainProject`` the sub-project test (P2).
PROJECT_FIELDS = (
    "id,version,number,name,startDate,endDate,isClosed,isInternal,isOffer,mainProject(id),"
    "customer(id),projectManager(id),participants(id,employee(id)),changes"
)
#: Customer fields the sync reads; ``isInactive`` drives C2/C3/C7, ``invoiceEmail`` C5.
CUSTOMER_FIELDS = (
    "id,version,customerNumber,name,email,invoiceEmail,phoneNumber,organizationNumber,"
    "isInactive,changes"
)
#: Employee fields the sync reads; ``userType`` and ``department`` matter on create (E4).
EMPLOYEE_FIELDS = (
    "id,version,employeeNumber,firstName,lastName,email,phoneNumberMobile,userType,"
    "department(id),changes"
)

_NO_DIGEST_PREFIX = "'If-None-Match'"
_DIGEST_PROBE = "sync-pipeline-probe"


def oslo_date(moment: datetime) -> date:
    """The Oslo calendar date at ``moment`` (naive = UTC).

    Session expiry dates are Oslo dates: a UTC date is wrong for one or two hours a day.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(OSLO).date()


def oslo_today() -> date:
    return oslo_date(datetime.now(UTC))


@dataclass(frozen=True)
class Page:
    """One conditional list page: ``values`` is None when the server answered 304."""

    values: list[dict[str, Any]] | None
    version_digest: str | None
    not_modified: bool


class TripletexApiError(ApiError):
    """Tripletex refused a request (error envelope ``{status, code, message, …}``)."""

    system = "Tripletex"

    def __init__(self, *, developer_message: str | None = None, **kwargs: Any) -> None:
        self.developer_message = developer_message
        super().__init__(**kwargs)

    @classmethod
    def from_response(
        cls,
        response: requests.Response,
        method: str,
        path: str,
        secrets: Iterable[str] = (),
    ) -> TripletexApiError:
        secrets = tuple(secrets)
        body = error_body(response)
        if not isinstance(body, dict):
            body = {}
        message = body.get("message") or body.get("developerMessage") or fallback_message(response)
        developer = body.get("developerMessage")
        validation = [
            {
                "field": redact(str(m.get("field") or ""), secrets) or None,
                "message": redact(str(m.get("message") or ""), secrets),
            }
            for m in (body.get("validationMessages") or [])
            if isinstance(m, dict)
        ]
        return cls(
            status=response.status_code,
            code=body.get("code"),
            message=redact(str(message), secrets),
            developer_message=redact(str(developer), secrets) if developer else None,
            validation_messages=validation,
            request_id=body.get("requestId") or response.headers.get("x-tlx-request-id"),
            method=method,
            path=path,
        )


def _encode_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _encode_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Tripletex wants ``true``/``false``, ISO dates and comma-separated id lists."""
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out[key] = ",".join(_encode_value(v) for v in value)
        else:
            out[key] = _encode_value(value)
    return out


def _top_level_fields(fields: str) -> set[str]:
    """``id,customer(id,name),changes`` → {"id", "customer", "changes"}."""
    names, depth, current = set(), 0, ""
    for char in fields:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            names.add(current.strip())
            current = ""
            continue
        if depth == 0 and char not in ")]":
            current += char
    names.add(current.strip())
    return names


def _selects_id(fields: str | None) -> bool:
    return fields is None or bool(_top_level_fields(fields) & {"id", "*"})


def _has_id(record: Any) -> bool:
    value = record.get("id") if isinstance(record, dict) else None
    return isinstance(value, int) and not isinstance(value, bool)


def _page_values(body: Any, path: str, fields: str | None) -> list[dict[str, Any]]:
    """A list page's values, or an error when it is not one (G7): without its envelope
    (``values`` and ``fullResultSize``), or with a record lacking the id it was asked for,
    the page's content is unknown, so the listing must count as incomplete — never as an
    empty page or the end of the listing."""
    problem = None
    if not isinstance(body, dict) or not isinstance(body.get("values"), list):
        problem = "the page has no 'values' list"
    elif "fullResultSize" not in body:
        problem = "the page has no 'fullResultSize' (not a list envelope)"
    elif _selects_id(fields) and not all(_has_id(v) for v in body["values"]):
        problem = "a record on the page has no id"
    if problem:
        raise TripletexApiError(
            status=200, code="incomplete_listing", message=problem, method="GET", path=path
        )
    return body["values"]


class TripletexClient(ApiClient):
    """Tripletex API v2 client: session handling, paging, retries, rate limit, typed errors.

    Not tied to the sandbox: point ``base_url`` at ``https://tripletex.no/v2`` or
    ``https://api-test.tripletex.tech/v2`` with real tokens and it behaves the same.
    """

    system: ClassVar[str] = "Tripletex"
    secret_fields: ClassVar[tuple[str, ...]] = ("consumer_token", "employee_token")

    base_url: str = Field(description="API root including /v2, e.g. https://tripletex.no/v2")
    consumer_token: str = Field(description="The integration's consumer token (secret).")
    employee_token: str = Field(description="The customer's employee token (secret).")
    company_id: int = Field(default=0, description="Basic-auth user: 0 = the token's company.")
    rate_limit_requests: int | None = Field(
        default=100, description="Client-side budget per window; None = no client window."
    )
    page_size: int = Field(default=1000, ge=1)
    session_days: int = Field(default=7, ge=1)

    PROJECT_FIELDS: ClassVar[str] = PROJECT_FIELDS
    CUSTOMER_FIELDS: ClassVar[str] = CUSTOMER_FIELDS
    EMPLOYEE_FIELDS: ClassVar[str] = EMPLOYEE_FIELDS

    _session_token: str | None = PrivateAttr(default=None)
    _session_expires: date | None = PrivateAttr(default=None)
    _today: Callable[[], date] | None = PrivateAttr(default=None)

    def use_clock(
        self,
        *,
        today: Callable[[], date] | None = None,
        monotonic: Clock | None = None,
        sleeper: Sleeper | None = None,
    ) -> TripletexClient:
        """Replace the Oslo date, monotonic clock and sleep (tests); call before any request."""
        if today is not None:
            self._today = today
        if monotonic is not None:
            self._clock = monotonic
        if sleeper is not None:
            self._sleeper = sleeper
        return self

    # -- plumbing -----------------------------------------------------------------------
    def _secrets(self) -> tuple[str, ...]:
        return (*super()._secrets(), *((self._session_token,) if self._session_token else ()))

    def _error(self, response: requests.Response, method: str, path: str) -> TripletexApiError:
        return TripletexApiError.from_response(response, method, path, self._secrets())

    # -- session --------------------------------------------------------------------------
    @property
    def session_expires(self) -> date | None:
        """The Oslo date at whose start the current session token stops working."""
        return self._session_expires

    def _oslo_today(self) -> date:
        return (self._today or oslo_today)()

    def _session_is_fresh(self) -> bool:
        if self._session_token is None or self._session_expires is None:
            return False
        margin = timedelta(days=1 if self.session_days > 1 else 0)
        return self._oslo_today() < self._session_expires - margin

    def _session(self) -> str:
        with self._lock:
            if not self._session_is_fresh():
                self._create_session()
            assert self._session_token is not None
            return self._session_token

    def _create_session(self) -> None:
        expires = self._oslo_today() + timedelta(days=self.session_days)
        response = self._http().request(
            "PUT",
            "/token/session/:create",
            params={
                "consumerToken": self.consumer_token,
                "employeeToken": self.employee_token,
                "expirationDate": expires.isoformat(),
            },
            expected=(200, 201),
        )
        value = (response.json() or {}).get("value") or {}
        token = value.get("token")
        if not token:
            raise TripletexApiError(
                status=response.status_code,
                message="session creation returned no token",
                method="PUT",
                path="/token/session/:create",
            )
        self._session_token = str(token)
        self._session_expires = expires

    def _drop_session(self, token: str) -> None:
        with self._lock:
            if self._session_token == token:
                self._session_token = None
                self._session_expires = None

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
        """An authenticated request; a 401 re-mints the session once, then raises."""
        for attempt in (1, 2):
            token = self._session()
            try:
                return self._http().request(
                    method,
                    path,
                    params=_encode_params(params),
                    json=json,
                    headers=headers,
                    auth=(str(self.company_id), token),
                    expected=expected,
                )
            except TripletexApiError as err:
                if err.status == 401 and attempt == 1:
                    self._drop_session(token)
                    continue
                raise
        raise AssertionError("unreachable")

    def who_am_i(self, fields: str | None = None) -> dict[str, Any]:
        """The logged-in user (``employeeId``, ``companyId``, …); P10 default project manager."""
        params = {"fields": fields} if fields else None
        return self._request("GET", "/token/session/%3EwhoAmI", params=params).json()["value"]

    # -- reads --------------------------------------------------------------------------------
    def get(
        self, path: str, params: Mapping[str, Any] | None = None, fields: str | None = None
    ) -> dict[str, Any]:
        """GET one object and unwrap ``value``."""
        merged = {**(params or {}), **({"fields": fields} if fields else {})}
        return self._request("GET", path, params=merged).json()["value"]

    def iter_pages(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        fields: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield non-empty pages until one is shorter than ``count`` (``fullResultSize`` lies)."""
        base = {k: v for k, v in (params or {}).items() if k not in ("from", "count")}
        if fields:
            base["fields"] = fields
        count = self.page_size
        start = 0
        while True:
            body = self._request("GET", path, params={**base, "from": start, "count": count}).json()
            values = _page_values(body, path, fields)
            if values:
                yield values
            if len(values) < count:
                return
            start += len(values)

    def list_all(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every object of a list endpoint (all pages)."""
        return [row for page in self.iter_pages(path, params, fields) for row in page]

    def get_page_conditional(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        fields: str | None = None,
        if_none_match: str | None = None,
    ) -> Page:
        """One list page with the checksum: 304 (``not_modified``) when ``if_none_match`` still holds.

        Without ``if_none_match`` a probe value is sent so the server computes a digest.
        """
        merged = {"from": 0, "count": self.page_size, **(params or {})}
        if fields:
            merged["fields"] = fields
        response = self._request(
            "GET",
            path,
            params=merged,
            headers={"If-None-Match": if_none_match or _DIGEST_PROBE},
            expected=(200, 304),
        )
        if response.status_code == 304:
            return Page(values=None, version_digest=if_none_match, not_modified=True)
        body = response.json()
        values = _page_values(body, path, fields)
        digest = body.get("versionDigest")
        if not digest or str(digest).startswith(_NO_DIGEST_PREFIX):
            digest = None
        return Page(values=values, version_digest=digest, not_modified=False)

    # -- writes -------------------------------------------------------------------------------
    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create one object; returns the created object (``value``)."""
        return self._request("POST", path, json=body).json()["value"]

    def put(
        self, path: str, body: Mapping[str, Any], params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Partial update; include ``version`` for optimistic locking (G8: 409 on a stale one)."""
        response = self._request("PUT", path, json=body, params=params)
        if response.status_code == 204 or not response.content:
            return {}
        return response.json().get("value") or {}

    def delete(self, path: str) -> None:
        self._request("DELETE", path, expected=(200, 204))

    def post_list(self, path: str, bodies: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Batch create (``POST /<entity>/list``); returns the created objects (``values``)."""
        if not bodies:
            return []
        return self._request("POST", path, json=list(bodies)).json().get("values") or []

    def put_list(self, path: str, bodies: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Batch update (``PUT /<entity>/list``; each body carries id and version)."""
        if not bodies:
            return []
        return self._request("PUT", path, json=list(bodies)).json().get("values") or []
