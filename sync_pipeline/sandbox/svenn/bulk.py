"""Bulk writes (svenn-api.md, "Bulk writes"): 1–100 independent operations in one request.

The envelope — ``{"operations": [...]}`` and each operation's ``op``, ``id``,
``if_match``, ``idempotency_key`` and that ``data`` is an object — is checked as a
whole first: anything malformed is a 400 and nothing is applied. The fields inside
``data`` are the operation's own business: a bad one is that operation's 422 while
the others land, exactly as if each had been sent on its own (unlike Tripletex's
all-or-nothing ``/list``).
"""

from __future__ import annotations

from typing import Any

from sync_pipeline.sandbox.svenn.errors import ApiError
from sync_pipeline.sandbox.svenn.store import Company, dump_json

MAX_OPERATIONS = 100
IDEMPOTENCY_KEY_MAX_LENGTH = 255

#: op → (required keys, optional keys)
_SHAPES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "create": (frozenset({"op", "data"}), frozenset({"idempotency_key"})),
    "update": (frozenset({"op", "id", "data"}), frozenset({"if_match"})),
    "delete": (frozenset({"op", "id"}), frozenset({"if_match"})),
}


def parse(body: Any) -> list[dict[str, Any]]:
    """The operations of a bulk body; 400 ``malformed_bulk`` naming every problem otherwise."""
    problems: dict[str, str] = {}
    operations = body.get("operations") if isinstance(body, dict) else None
    if not isinstance(body, dict):
        problems["body"] = "must be an object with 'operations'"
    elif not isinstance(operations, list):
        problems["operations"] = "must be a list of operations"
    elif not 1 <= len(operations) <= MAX_OPERATIONS:
        problems["operations"] = (
            f"must hold 1 to {MAX_OPERATIONS} operations, not {len(operations)}"
        )
    else:
        for index, operation in enumerate(operations):
            problems.update(_problems(f"operations[{index}]", operation))
    if isinstance(body, dict):
        for name in body.keys() - {"operations"}:
            problems[name] = "is not part of a bulk request"
    if problems:
        raise ApiError(400, "malformed_bulk", "the bulk request is malformed", problems)
    return operations


def _problems(where: str, operation: Any) -> dict[str, str]:
    if not isinstance(operation, dict):
        return {where: "must be an object"}
    kind = operation.get("op")
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return {f"{where}.op": "must be one of " + ", ".join(_SHAPES)}
    required, optional = shape
    problems = {f"{where}.{name}": "is required" for name in required - operation.keys()}
    for name in operation.keys() - required - optional:
        problems[f"{where}.{name}"] = f"is not part of a {operation['op']} operation"
    if "data" in operation and not isinstance(operation["data"], dict):
        problems[f"{where}.data"] = "must be an object"
    if "id" in operation:
        operation["id"] = _as_int(operation["id"])
        if operation["id"] is None:
            problems[f"{where}.id"] = "must be an integer"
    if operation.get("if_match") is not None:
        operation["if_match"] = if_match = _as_int(operation["if_match"])
        if if_match is None or if_match < 1:
            problems[f"{where}.if_match"] = "must be a version (an integer from 1) or null"
    key = operation.get("idempotency_key")
    if key is not None and not (
        isinstance(key, str) and 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH
    ):
        problems[f"{where}.idempotency_key"] = (
            f"must be a string of 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters or null"
        )
    return problems


def _as_int(value: Any) -> int | None:
    """A JSON integer — ``7`` or ``7.0``, which JSON (and JSON Schema) count as the same."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def apply(
    company: Company, resource: str, operations: list[dict[str, Any]], *, idempotency_scope: str
) -> bytes:
    """Apply parsed operations in order; the ``{"results": [...]}`` body, one per operation.

    Each result is encoded as its operation finishes, so it shows the record as that
    operation left it even when a later one changes the same record again.
    """
    results = [
        _apply_one(company, resource, operation, idempotency_scope) for operation in operations
    ]
    return b'{"results":[' + b",".join(results) + b"]}"


def _apply_one(company: Company, resource: str, operation: dict[str, Any], scope: str) -> bytes:
    try:
        kind = operation["op"]
        if kind == "create":
            record, _ = company.create_once(
                scope, resource, operation["data"], operation.get("idempotency_key")
            )
            return _success(201, record)
        if_match = operation.get("if_match")
        if kind == "update":
            changed = company.update(resource, operation["id"], operation["data"], if_match)
            return _success(200, dump_json(changed))
        return _success(204, dump_json(company.delete(resource, operation["id"], if_match)))
    except ApiError as exc:
        return dump_json({"status": exc.status, "record": None, "error": exc.detail()})


def _success(status: int, record: bytes) -> bytes:
    return b'{"status":%d,"record":%s,"error":null}' % (status, record)
