"""Dagster resources that talk to the two APIs (and the machinery they share)."""

from sync_pipeline.resources.http import ApiError, ApiUnavailableError, RateLimiter
from sync_pipeline.resources.svenn import SvennApiError, SvennClient
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
    "TripletexApiError",
    "TripletexClient",
]
