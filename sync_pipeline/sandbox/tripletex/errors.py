"""Tripletex's error envelope and the request id every response carries (API-NOTES 3.1, 6)."""

from __future__ import annotations

import contextvars
import json
import uuid
from typing import Any

from starlette.responses import Response

LINK = "https://tripletex.no/v2-docs/"
VALIDATION_FAILED = "Validering feilet."
# Norwegian validation texts as observed (API-NOTES 4, 6.3).
NOT_NULL = "Kan ikke være null."
REQUIRED = "Feltet må fylles ut."
UNKNOWN_PROPERTY = "Feltet eksisterer ikke i objektet."
BAD_FORMAT = "Ugyldig format."
WRONG_TYPE = "Verdien er ikke av korrekt type for dette feltet."
ID_ON_CREATE = "ID kan ikke settes når man oppretter et objekt."
EMAIL_TAKEN = "Det finnes allerede en bruker med denne e-postadressen."
EMAIL_REQUIRED = "Må angis for Tripletex-brukere."
USER_TYPE_REQUIRED = 'Brukertype kan ikke være "0" eller tom.'
MANAGER_REQUIRED = 'Feltet "Prosjektleder" må fylles ut.'
MANAGER_NOT_ALLOWED = "Oppgitt prosjektleder har ikke fått tilgang som prosjektleder i kontoen: {}."
# INFERRED: the text Tripletex gives for a duplicate department number ("Nummeret er i bruk.",
# OBSERVED) is assumed for duplicate project and customer numbers too.
NUMBER_IN_USE = "Nummeret er i bruk."
# INFERRED: no source shows the text for a reference to a missing object.
NOT_FOUND_REF = "Objektet finnes ikke."
ID_LIST = "'{}': Listen med ID-er må være en kommaseparert liste med positive heltall."

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("tlx_request_id", default="")


def new_request_id() -> str:
    return str(uuid.uuid4())


def length_message(lo: int, hi: int) -> str:
    return f"Feltet har ikke korrekt lengde. Det må være mellom {lo} og {hi}."


def vmsg(field: str | None, message: str, path: str | None = None, root_id: int | None = None):
    return {"field": field, "message": message, "path": path, "rootId": root_id}


class ApiError(Exception):
    """Raised by handlers; rendered as Tripletex's ``ApiError`` body."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str | None,
        developer_message: str | None = None,
        validation: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.developer_message, self.validation = developer_message, validation

    def body(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "link": LINK,
            "developerMessage": self.developer_message,
            "validationMessages": self.validation,
            "requestId": REQUEST_ID.get() or new_request_id(),
        }

    def response(self) -> Response:
        return json_response(self.body(), self.status)


def validation_error(messages: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, 18000, VALIDATION_FAILED, "VALIDATION_ERROR", messages)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        3000,
        "Unauthorized",
        "Could not log in. Check login info in Authorization header.",
    )


def not_found() -> ApiError:
    return ApiError(404, 6000, "Object not found")


def stale_version() -> ApiError:
    # INFERRED: the 409 body was not found in the sources; code 8000 "Revision Exception"
    # is documented (CL 2.5.5), the envelope is the common one.
    return ApiError(
        409,
        8000,
        "Objektet har blitt endret av noen andre. Last inn på nytt og prøv igjen.",
        "Revision Exception: the object has been modified since it was read.",
    )


def status_error(status: int, message: str | None = None) -> ApiError:
    """A generic error for injected faults and rate-limit refusals."""
    code = {
        400: 4000,
        401: 3000,
        403: 9000,
        404: 6000,
        409: 7000,
        422: 15000,
        429: 0,
        500: 1000,
    }.get(status, 1000)
    default = {429: "Too many requests", 500: None}.get(status, message or "Error")
    return ApiError(status, code, message or default)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status, headers, media_type="application/json")
