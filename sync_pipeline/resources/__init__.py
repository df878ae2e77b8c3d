"""The API clients (with the machinery they share and the protocol the sync asks of them) and
the state store."""

from sync_pipeline.resources.http import ApiError, ApiUnavailableError, RateLimiter
from sync_pipeline.resources.svenn import SvennApiError, SvennClient
from sync_pipeline.resources.systems import SvennSystem, TripletexSystem, Written
from sync_pipeline.resources.tripletex import (
    CUSTOMER_FIELDS,
    EMPLOYEE_FIELDS,
    PROJECT_FIELDS,
    Page,
    TripletexApiError,
    TripletexClient,
)

__all__ = [
    "CUSTOMER_FIELDS",
    "EMPLOYEE_FIELDS",
    "PROJECT_FIELDS",
    "ApiError",
    "ApiUnavailableError",
    "Page",
    "RateLimiter",
    "SvennApiError",
    "SvennClient",
    "SvennSystem",
    "TripletexApiError",
    "TripletexClient",
    "TripletexSystem",
    "Written",
]
