"""The raw tables (the API's records as they came) and the SQL that turns them into staging.

Each raw table holds the API's own field names as typed columns (references flattened to
``<field>_id``, Tripletex participants to ``participant_employee_ids``), the whole record
as ``raw_json``, the tenant and when the record was fetched. Tripletex rows also carry the
listing and page they came from, so a page the server reports unchanged (304) can be kept
as it is. Staging is derived from raw by one ``SELECT`` per table, in SQL: the
normalisation of SYNC-RULES §0 (empty strings → NULL, ``0`` references → NULL, trimmed
keys, parsed dates, completed ⇔ closed, active ⇔ not inactive, newest change time).
"""

from __future__ import annotations

from sync_pipeline.model import (
    COMMON_STAGING_COLUMNS,
    STAGING_COLUMNS,
    Entity,
    Side,
    raw_table,
    staging_table,
)

#: Raw columns per (side, entity): name → (DuckDB type, expression over the record ``j``).
#: The tables themselves are created by migration 2 (``resources/storage.py``); a test
#: keeps the two in step.
RAW_COLUMNS: dict[tuple[Side, Entity], dict[str, tuple[str, str]]] = {}


def _col(path: str, kind: str = "VARCHAR") -> tuple[str, str]:
    expr = f"j->>'$.{path}'"
    return kind, expr if kind == "VARCHAR" else f"TRY_CAST({expr} AS {kind})"


_SVENN_COMMON = {
    "id": _col("id", "BIGINT"),
    "version": _col("version", "BIGINT"),
}
_SVENN_TIMES = {
    "created_at": _col("created_at"),
    "updated_at": _col("updated_at"),
    "deleted_at": _col("deleted_at"),
}
RAW_COLUMNS[("svenn", "project")] = {
    **_SVENN_COMMON,
    "display_id": _col("display_id"),
    "name": _col("name"),
    "description": _col("description"),
    "start_date": _col("start_date"),
    "end_date": _col("end_date"),
    "status": _col("status"),
    "parent_id": _col("parent_id", "BIGINT"),
    "customer_id": _col("customer_id", "BIGINT"),
    "project_manager_id": _col("project_manager_id", "BIGINT"),
    "member_ids": ("BIGINT[]", "TRY_CAST(j->'$.member_ids' AS BIGINT[])"),
    **_SVENN_TIMES,
}
RAW_COLUMNS[("svenn", "customer")] = {
    **_SVENN_COMMON,
    "customer_number": _col("customer_number"),
    "name": _col("name"),
    "email": _col("email"),
    "phone": _col("phone"),
    "organization_number": _col("organization_number"),
    "is_active": _col("is_active", "BOOLEAN"),
    **_SVENN_TIMES,
}
RAW_COLUMNS[("svenn", "employee")] = {
    **_SVENN_COMMON,
    "employee_number": _col("employee_number"),
    "first_name": _col("first_name"),
    "last_name": _col("last_name"),
    "email": _col("email"),
    "phone": _col("phone"),
    "is_active": _col("is_active", "BOOLEAN"),
    **_SVENN_TIMES,
}

_TRIPLETEX_COMMON = {
    "id": _col("id", "BIGINT"),
    "version": _col("version", "BIGINT"),
}
_TRIPLETEX_CHANGES = {"changes": ("JSON", "j->'$.changes'")}
RAW_COLUMNS[("tripletex", "project")] = {
    **_TRIPLETEX_COMMON,
    "number": _col("number"),
    "name": _col("name"),
    "startDate": _col("startDate"),
    "endDate": _col("endDate"),
    "isClosed": _col("isClosed", "BOOLEAN"),
    "isInternal": _col("isInternal", "BOOLEAN"),
    "mainProject_id": _col("mainProject.id", "BIGINT"),
    "customer_id": _col("customer.id", "BIGINT"),
    "projectManager_id": _col("projectManager.id", "BIGINT"),
    "participant_employee_ids": (
        "BIGINT[]",
        "TRY_CAST(j->'$.participants[*].employee.id' AS BIGINT[])",
    ),
    **_TRIPLETEX_CHANGES,
}
#: Raw columns a later migration appended (after ``raw_json``), per (side, entity).
LATER_RAW_COLUMNS: dict[tuple[Side, Entity], dict[str, tuple[str, str]]] = {
    ("tripletex", "project"): {"isOffer": _col("isOffer", "BOOLEAN")},  # P13, migration 13
}
RAW_COLUMNS[("tripletex", "project")].update(LATER_RAW_COLUMNS[("tripletex", "project")])
RAW_COLUMNS[("tripletex", "customer")] = {
    **_TRIPLETEX_COMMON,
    "customerNumber": _col("customerNumber", "BIGINT"),
    "name": _col("name"),
    "email": _col("email"),
    "invoiceEmail": _col("invoiceEmail"),
    "phoneNumber": _col("phoneNumber"),
    "organizationNumber": _col("organizationNumber"),
    "isInactive": _col("isInactive", "BOOLEAN"),
    **_TRIPLETEX_CHANGES,
}
RAW_COLUMNS[("tripletex", "employee")] = {
    **_TRIPLETEX_COMMON,
    "employeeNumber": _col("employeeNumber"),
    "firstName": _col("firstName"),
    "lastName": _col("lastName"),
    "email": _col("email"),
    "phoneNumberMobile": _col("phoneNumberMobile"),
    "userType": _col("userType"),
    "department_id": _col("department.id", "BIGINT"),
    **_TRIPLETEX_CHANGES,
}

#: Bookkeeping columns: every raw table starts with these; Tripletex ones add listing/page.
RAW_META = {"tenant": "VARCHAR NOT NULL", "extracted_at": "TIMESTAMPTZ NOT NULL"}
TRIPLETEX_PAGE_META = {"listing": "VARCHAR NOT NULL", "page": "INTEGER NOT NULL"}


def raw_meta(side: Side) -> dict[str, str]:
    return {**RAW_META, **(TRIPLETEX_PAGE_META if side == "tripletex" else {})}


def _quote(name: str) -> str:
    return f'"{name}"'


def raw_insert_sql(side: Side, entity: Entity, source: str) -> str:
    """Insert the records of ``source`` (columns ``raw_json`` [+ ``listing``, ``page``]).

    Parameters: tenant, extracted_at.
    """
    cols = RAW_COLUMNS[(side, entity)]
    page_cols = list(TRIPLETEX_PAGE_META) if side == "tripletex" else []
    names = ["tenant", "extracted_at", *page_cols, *cols, "raw_json"]
    exprs = ["$tenant", "$extracted_at", *page_cols, *(e for _, e in cols.values()), "j"]
    return (
        f"INSERT INTO {raw_table(side, entity)} ({', '.join(_quote(n) for n in names)})\n"
        f"SELECT {', '.join(exprs)}\n"
        f"FROM (SELECT *, raw_json::JSON AS j FROM {source})"
    )


# -- staging ----------------------------------------------------------------------------------


def _blank(col: str) -> str:
    """Unset text: Tripletex sends "", Svenn null; whitespace-only counts as unset too."""
    return f"CASE WHEN trim({col}) = '' THEN NULL ELSE {col} END"


def _key(col: str) -> str:
    """Keys are compared trimmed (G3)."""
    return f"NULLIF(trim({col}), '')"


def _ref(col: str) -> str:
    """Tripletex answers ``{"id": 0}`` or null for an unset reference."""
    return f"NULLIF({col}, 0)"


def _label(*parts: str) -> str:
    """ "number name" (employees "number first last"), skipping unset parts."""
    return f"NULLIF(concat_ws(' ', {', '.join(parts)}), '')"


def _date(col: str) -> str:
    return f"TRY_CAST(NULLIF(trim({col}), '') AS DATE)"


def _tripletex_time(col: str) -> str:
    """A change timestamp; with an offset as Tripletex sends it, else Oslo local time."""
    return (
        f"CASE WHEN regexp_matches({col}, '(Z|[+-][0-9]{{2}}:?[0-9]{{2}})$') "
        f"THEN TRY_CAST({col} AS TIMESTAMPTZ) "
        f"ELSE timezone('Europe/Oslo', TRY_CAST({col} AS TIMESTAMP)) END"
    )


_TRIPLETEX_MODIFIED = (
    "list_max(list_transform(json_extract_string(changes, '$[*].timestamp'), "
    f"lambda t: {_tripletex_time('t')}))"
)

_TRIPLETEX_EMPLOYEE_LABEL = _label(
    _key('"employeeNumber"'), _blank('"firstName"'), _blank('"lastName"')
)

#: Staging expressions per (side, entity) over the raw table's columns (canonical names).
STAGING_EXPRESSIONS: dict[tuple[Side, Entity], dict[str, str]] = {
    ("svenn", "project"): {
        "number": _key("display_id"),
        "name": _blank("name"),
        "start_date": _date("start_date"),
        "end_date": _date("end_date"),
        "status": "CASE WHEN status = 'completed' THEN 'completed' ELSE 'active' END",
        "customer_id": "customer_id",
        "project_manager_id": "project_manager_id",
        "member_ids": "list_sort(list_distinct(coalesce(member_ids, [])))",
        "parent_id": "parent_id",
        "is_internal": "false",
        "is_offer": "false",
        "modified_at": "TRY_CAST(updated_at AS TIMESTAMPTZ)",
        "deleted": "deleted_at IS NOT NULL",
        "label": _label(_key("display_id"), _blank("name")),
    },
    ("svenn", "customer"): {
        "number": _key("customer_number"),
        "name": _blank("name"),
        "email": _blank("email"),
        "phone": _blank("phone"),
        "organization_number": _blank("organization_number"),
        "is_active": "coalesce(is_active, true)",
        "modified_at": "TRY_CAST(updated_at AS TIMESTAMPTZ)",
        "deleted": "deleted_at IS NOT NULL",
        "label": _label(_key("customer_number"), _blank("name")),
    },
    ("svenn", "employee"): {
        "number": _key("employee_number"),
        "first_name": _blank("first_name"),
        "last_name": _blank("last_name"),
        "email": _blank("email"),
        "phone": _blank("phone"),
        "is_active": "coalesce(is_active, true)",
        "user_type": "NULL",
        "department_id": "NULL",
        "modified_at": "TRY_CAST(updated_at AS TIMESTAMPTZ)",
        "deleted": "deleted_at IS NOT NULL",
        "label": _label(_key("employee_number"), _blank("first_name"), _blank("last_name")),
    },
    ("tripletex", "project"): {
        "number": _key("number"),
        "name": _blank("name"),
        "start_date": _date('"startDate"'),
        "end_date": _date('"endDate"'),
        "status": "CASE WHEN \"isClosed\" THEN 'completed' ELSE 'active' END",
        "customer_id": _ref("customer_id"),
        "project_manager_id": _ref('"projectManager_id"'),
        "member_ids": (
            "list_sort(list_distinct(list_filter(coalesce(participant_employee_ids, []), "
            "lambda e: e IS NOT NULL AND e <> 0)))"
        ),
        "parent_id": _ref('"mainProject_id"'),
        "is_internal": 'coalesce("isInternal", false)',
        "is_offer": 'coalesce("isOffer", false)',
        "modified_at": _TRIPLETEX_MODIFIED,
        "deleted": "false",
        "label": _label(_key("number"), _blank("name")),
    },
    ("tripletex", "customer"): {
        "number": 'CAST("customerNumber" AS VARCHAR)',
        "name": _blank("name"),
        "email": _blank("email"),
        "phone": _blank('"phoneNumber"'),
        "organization_number": _blank('"organizationNumber"'),
        "is_active": 'NOT coalesce("isInactive", false)',
        "modified_at": _TRIPLETEX_MODIFIED,
        "deleted": "false",
        "label": _label('CAST("customerNumber" AS VARCHAR)', _blank("name")),
    },
    ("tripletex", "employee"): {
        "number": _key('"employeeNumber"'),
        "first_name": _blank('"firstName"'),
        "last_name": _blank('"lastName"'),
        "email": _blank("email"),
        "phone": _blank('"phoneNumberMobile"'),
        "is_active": "true",  # Tripletex has no inactive employees (E3)
        "user_type": _blank('"userType"'),
        "department_id": _ref("department_id"),
        "modified_at": _TRIPLETEX_MODIFIED,
        "deleted": "false",
        "label": _TRIPLETEX_EMPLOYEE_LABEL,
    },
}


def staging_rebuild_sql(side: Side, entity: Entity) -> str:
    """Insert the tenant's staging rows from its raw rows (parameter: tenant).

    One row per id: paging while records change can list a record twice; the newest
    version wins.
    """
    exprs = STAGING_EXPRESSIONS[(side, entity)]
    columns = [*COMMON_STAGING_COLUMNS, *STAGING_COLUMNS[entity]]
    select = []
    for name in columns:
        if name == "tenant":
            select.append("tenant")
        elif name in ("id", "version"):
            select.append(name)
        else:
            select.append(f"{exprs[name]} AS {name}")
    return (
        f"INSERT INTO {staging_table(side, entity)} ({', '.join(columns)})\n"
        f"SELECT {', '.join(select)}\n"
        f"FROM {raw_table(side, entity)}\n"
        "WHERE tenant = $tenant AND id IS NOT NULL\n"
        "QUALIFY row_number() OVER (PARTITION BY id ORDER BY version DESC NULLS LAST, "
        "extracted_at DESC) = 1"
    )
