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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Unpack
from zoneinfo import ZoneInfo

import requests
from pydantic import Field, PrivateAttr

from sync_pipeline.model import Entity
from sync_pipeline.resources.http import (
    ApiClient,
    ApiError,
    Clock,
    ErrorEnvelope,
    RequestOptions,
    Sleeper,
)
from sync_pipeline.resources.systems import Record, Written

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
    def envelope(cls, body: dict[str, Any], response: requests.Response) -> ErrorEnvelope:
        messages = [m for m in (body.get("validationMessages") or []) if isinstance(m, dict)]
        return ErrorEnvelope(
            code=body.get("code"),
            message=body.get("message") or body.get("developerMessage"),
            fields=[(m.get("field"), m.get("message")) for m in messages],
            request_id=body.get("requestId") or response.headers.get("x-tlx-request-id"),
            extra={"developer_message": body.get("developerMessage")},
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


def _page_problem(body: Any, fields: str | None) -> str | None:
    """Why a list page is not one (G7): without its envelope (``values`` and
    ``fullResultSize``), or with a record lacking the id it was asked for, the page's content
    is unknown, so the listing must count as incomplete — never as an empty page or the end
    of the listing."""
    if not isinstance(body, dict) or not isinstance(body.get("values"), list):
        return "the page has no 'values' list"
    if "fullResultSize" not in body:
        return "the page has no 'fullResultSize' (not a list envelope)"
    if _selects_id(fields) and not all(_has_id(v) for v in body["values"]):
        return "a record on the page has no id"
    return None


@dataclass(frozen=True)
class Listing:
    """How one entity is listed: its path, the fields the sync reads, and its passes
    (pass name → extra filters), each paged on its own."""

    path: str
    fields: str
    key_field: str
    #: The list filter that finds a record by its key.
    key_filter: str
    passes: dict[str, dict[str, Any]]
    #: Whether ``PUT <path>/list`` exists (there is no ``PUT /employee/list``).
    batch_update: bool


#: Tripletex hides inactive customers from a listing by default, so customers are listed
#: (and looked up) in an active and an inactive pass: a forgotten one would look deleted.
LISTINGS: dict[Entity, Listing] = {
    "employee": Listing(
        "/employee", EMPLOYEE_FIELDS, "employeeNumber", "employeeNumber", {"all": {}}, False
    ),
    "customer": Listing(
        "/customer",
        CUSTOMER_FIELDS,
        "customerNumber",
        "customerAccountNumber",
        {"active": {"isInactive": False}, "inactive": {"isInactive": True}},
        True,
    ),
    "project": Listing("/project", PROJECT_FIELDS, "number", "number", {"all": {}}, True),
}


@dataclass(frozen=True)
class ListedPage:
    """One page of an entity's listing: its pass, its number and what the server said."""

    listing: str
    number: int
    page: Page


class TripletexClient(ApiClient):
    """Tripletex API v2 client: session handling, paging, retries, rate limit, typed errors.

    Not tied to the sandbox: point ``base_url`` at ``https://tripletex.no/v2`` or
    ``https://api-test.tripletex.tech/v2`` with real tokens and it behaves the same.
    """

    system: ClassVar[str] = "Tripletex"
    error_type: ClassVar[type[ApiError]] = TripletexApiError
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
        return super().use_clock(monotonic=monotonic, sleeper=sleeper)

    # -- plumbing -----------------------------------------------------------------------
    def _secrets(self) -> tuple[str, ...]:
        return (*super()._secrets(), *((self._session_token,) if self._session_token else ()))

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
        self, method: str, path: str, **options: Unpack[RequestOptions]
    ) -> requests.Response:
        """An authenticated request; a 401 re-mints the session once, then raises."""
        options["params"] = _encode_params(options.get("params"))
        for attempt in (1, 2):
            token = self._session()
            try:
                return self._http().request(
                    method, path, auth=(str(self.company_id), token), **options
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
    def _page_values(self, body: Any, path: str, fields: str | None) -> list[dict[str, Any]]:
        problem = _page_problem(body, fields)
        if problem:
            raise self._incomplete_listing(problem, path)
        return body["values"]

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
            values = self._page_values(body, path, fields)
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
        values = self._page_values(body, path, fields)
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

    # -- entities ---------------------------------------------------------------------------
    # What the sync asks for (``systems.TripletexSystem``): paths, key fields, filters and the
    # customers' two passes stay here.
    @staticmethod
    def listing(entity: Entity) -> Listing:
        return LISTINGS[entity]

    def key_field(self, entity: Entity) -> str:
        return LISTINGS[entity].key_field

    def iter_listing(
        self,
        entity: Entity,
        digests: Mapping[str, Sequence[str | None]] | None = None,
        stored_sizes: Mapping[tuple[str, int], int] | None = None,
    ) -> Iterator[ListedPage]:
        """Every page of every pass of the entity's listing, sorted by id, each asked with
        ``If-None-Match`` (the page's known digest, else a probe): a 304 page counts as
        holding its ``stored_sizes`` rows when deciding whether the listing goes on."""
        listing = LISTINGS[entity]
        size = self.page_size
        for name, filters in listing.passes.items():
            known = (digests or {}).get(name) or []
            number = 0
            while True:
                page = self.get_page_conditional(
                    listing.path,
                    {**filters, "sorting": "id", "from": number * size, "count": size},
                    listing.fields,
                    if_none_match=known[number] if number < len(known) else None,
                )
                yield ListedPage(name, number, page)
                if page.not_modified:
                    rows = (stored_sizes or {}).get((name, number), 0)
                else:
                    rows = len(page.values or [])
                if rows < size:
                    break
                number += 1

    def _in_passes(
        self, entity: Entity, filters: Mapping[str, Any], fields: str
    ) -> Iterator[list[Record]]:
        """One listing per pass with ``filters`` (inactive customers are asked separately)."""
        listing = LISTINGS[entity]
        for extra in listing.passes.values():
            yield self.list_all(listing.path, {**filters, **extra}, fields)

    def get_many(
        self, entity: Entity, ids: Iterable[int], fields: str | None = None
    ) -> list[Record]:
        """The records with these ids (inactive customers too), with the listing's fields;
        an id Tripletex does not have is simply absent."""
        wanted = sorted({int(i) for i in ids})
        fields = fields or LISTINGS[entity].fields
        found: list[Record] = []
        for start in range(0, len(wanted), self.page_size):
            chunk = wanted[start : start + self.page_size]
            for values in self._in_passes(entity, {"id": chunk}, fields):
                found.extend(values)
        return found

    def exists(self, entity: Entity, id: int) -> bool:
        """False only on a 404 for a GET by id; any other error propagates (G7: a record
        missing from a listing is proven gone this way before anything is deleted)."""
        try:
            self.get(f"{LISTINGS[entity].path}/{int(id)}", fields="id")
        except TripletexApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    def find_by_key(self, entity: Entity, key: Any) -> Written | None:
        """The one record whose key equals ``key`` (inactive customers too), or None; two
        are left to the rules (DUPLICATE_KEY)."""
        if key in (None, ""):
            return None
        listing = LISTINGS[entity]
        for values in self._in_passes(
            entity, {listing.key_filter: key}, f"id,version,{listing.key_field}"
        ):
            exact = [v for v in values if self.key_of(entity, v) == str(key).strip()]
            if len(exact) == 1:
                return Written.of(exact[0], listing.key_field)
            if len(exact) > 1:
                return None
        return None

    def create_many(
        self, entity: Entity, bodies: Sequence[Mapping[str, Any]]
    ) -> list[Written | None]:
        """``POST /<entity>/list``; the created records paired with their bodies by key
        (Tripletex does not promise the order), by position only for a body without one."""
        listing = LISTINGS[entity]
        values = self.post_list(f"{listing.path}/list", list(bodies))
        by_key: dict[str, Any] = {}
        for value in values:
            key = self.key_of(entity, value) if isinstance(value, dict) else None
            if key is not None:
                by_key[key] = value
        matched: list[Written | None] = []
        for position, body in enumerate(bodies):
            key = self.key_of(entity, body)
            value = by_key.get(key) if key is not None else None
            if value is None and len(values) == len(bodies):
                value = values[position]
            matched.append(Written.of(value, listing.key_field))
        return matched

    def can_update_many(self, entity: Entity) -> bool:
        return LISTINGS[entity].batch_update

    def update_many(
        self, entity: Entity, bodies: Sequence[Mapping[str, Any]]
    ) -> dict[int, Written]:
        """``PUT /<entity>/list`` (each body carries id and version); the answer by id."""
        listing = LISTINGS[entity]
        values = self.put_list(f"{listing.path}/list", list(bodies))
        written = (Written.of(v, listing.key_field) for v in values)
        return {w.id: w for w in written if w is not None}

    def update_one(self, entity: Entity, id: int, body: Mapping[str, Any]) -> Written | None:
        """``PUT /<entity>/<id>``, for an entity without a batch update."""
        listing = LISTINGS[entity]
        return Written.of(self.put(f"{listing.path}/{int(id)}", body), listing.key_field)

    def project_manager_ids(self) -> list[int]:
        """Employees Tripletex lets manage projects (P10)."""
        values = self.list_all("/employee", {"assignableProjectManagers": True}, "id")
        return [int(v["id"]) for v in values]
