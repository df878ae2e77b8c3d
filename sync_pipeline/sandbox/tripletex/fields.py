"""The ``fields`` and ``sorting`` query parameters (API-NOTES 3.4, 3.5).

``fields`` is a comma-separated list where ``name(sub,fields)`` expands a nested object and
``*`` means every field; a selection is parsed into ``{name: sub-selection | None}`` and
checked against the model, an unknown name giving Tripletex's 400/11000.
"""

from __future__ import annotations

from functools import lru_cache

from sync_pipeline.sandbox.tripletex.errors import ApiError
from sync_pipeline.sandbox.tripletex.models import MODELS, REF, REFS, Model

Selection = dict[str, "Selection | None"]


def _split(text: str) -> list[str]:
    """Split at top-level commas; raises ValueError on unbalanced parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(text)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(text)
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _illegal(name: str, model: Model) -> ApiError:
    return ApiError(
        400,
        11000,
        f"Illegal field in fields filter: {name}. {name} does not match a field in the model: "
        f"{model.dto}",
    )


def _parse(text: str, model: Model | None) -> Selection:
    selection: Selection = {}
    for item in _split(text):
        name, sub = item, None
        if "(" in item:
            if not item.endswith(")"):
                raise ValueError(item)
            name, sub = item[: item.index("(")].strip(), item[item.index("(") + 1 : -1]
        if name == "*":
            if model is not None:
                for fname in model.default_fields():
                    selection.setdefault(fname, None)
            continue
        if model is None:  # an object the sandbox does not model: accept any name
            selection[name] = _parse(sub, None) if sub is not None else None
            continue
        field = model.fields.get(name)
        if field is None:
            raise _illegal(name, model)
        if sub is None:
            selection[name] = None
        else:
            target = MODELS.get(field.target) if field.kind in (REF, REFS) else None
            selection[name] = _parse(sub, target) if sub.strip() else None
    return selection


@lru_cache(maxsize=512)
def _cached(text: str, model_name: str) -> Selection:
    return _parse(text, MODELS[model_name])


def parse_fields(text: str | None, model: Model) -> Selection:
    """The selection for ``fields`` (default: every field but ``changes``, refs as stubs)."""
    text = (text or "").strip() or "*"
    try:
        return _cached(text, model.name)
    except ValueError:
        raise ApiError(
            400, 11000, f"Illegal field in fields filter: {text}. Unbalanced parentheses."
        ) from None


def parse_sorting(text: str | None, model: Model) -> list[tuple[list[str], bool]]:
    """``a,-b.c`` → ``[(["a"], False), (["b", "c"], True)]``; unknown field → 422/17000."""
    result = []
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        desc = item.startswith("-")
        path = item.lstrip("-").split(".")
        current: Model | None = model
        for part in path:
            field = current.fields.get(part) if current is not None else None
            if field is None or field.kind in (REFS,):
                raise ApiError(422, 17000, f"sorting field '{raw.strip()}' does not exist")
            current = MODELS.get(field.target) if field.kind == REF else None
        result.append((path, desc))
    return result
