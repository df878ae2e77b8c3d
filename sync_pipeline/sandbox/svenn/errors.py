"""The one error shape of the Svenn API: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

import json

from fastapi.responses import Response

#: The code each status gets when nothing more specific applies (injected faults, framework errors).
DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "version_mismatch",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class ApiError(Exception):
    """Raised anywhere in a request to answer with the API's error body."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        self.code = code or DEFAULT_CODES.get(status, f"http_{status}")
        self.message = message or self.code.replace("_", " ").capitalize()
        self.fields = fields
        self.headers = headers
        super().__init__(self.message)

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.fields, self.headers)

    def detail(self) -> dict:
        """The ``error`` object alone, as a bulk operation's result carries it."""
        return error_detail(self.code, self.message, self.fields)


def error_detail(code: str, message: str, fields: dict[str, str] | None = None) -> dict:
    """``{"code", "message", "fields"?}``: ``fields`` only when there are any."""
    error: dict = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return error


def error_response(
    status: int,
    code: str | None = None,
    message: str | None = None,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    code = code or DEFAULT_CODES.get(status, f"http_{status}")
    error = error_detail(code, message or code.replace("_", " ").capitalize(), fields)
    body = json.dumps({"error": error}, ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")
