"""Canonical values as the rules compare them, and their translation into API bodies.

The rules work on a long frame: one row per (record, field) with the value as TEXT —
dates ``YYYY-MM-DD``, status ``active|completed``, booleans ``true|false``, numbers as
text, and references as the *Tripletex id* of the referenced record (the link identity),
or ``$svenn:<id>`` for a Svenn record that this plan creates in Tripletex. The same
text is what a link's base holds (``base->>field``), so the three-way merge (G2) is a
plain comparison. This module is the one place that knows how a canonical value
becomes a field of a Svenn or Tripletex body.
"""

from __future__ import annotations

from sync_pipeline.model import ENTITIES, FIELDS, Entity, Side, staging_table

#: Value kinds that need their own translation (everything else is plain text).
KIND: dict[tuple[Entity, str], str] = {
    ("project", "start_date"): "date",
    ("project", "end_date"): "date",
    ("project", "status"): "status",
    ("project", "customer_id"): "ref",
    ("project", "project_manager_id"): "ref",
    ("customer", "number"): "int",
    ("customer", "is_active"): "bool",
}

#: Marker prefix of a reference to a Svenn record this plan creates in Tripletex.
PENDING_SVENN = "$svenn:"


def kind(entity: Entity, field: str) -> str:
    return KIND.get((entity, field), "text")


def customer_number_sql(col: str) -> str:
    """C1: a customer number as canonical text — digits fitting a positive int32, else NULL."""
    return (
        f"CASE WHEN regexp_full_match(trim({col}), '[0-9]+') "
        f"AND TRY_CAST(trim({col}) AS HUGEINT) BETWEEN 1 AND 2147483647 "
        f"THEN CAST(CAST(trim({col}) AS INTEGER) AS VARCHAR) END"
    )


def _text_sql(entity: Entity, field: str, col: str) -> str:
    k = kind(entity, field)
    if k == "date":
        return f"strftime({col}, '%Y-%m-%d')"
    if k == "bool":
        return f"CASE WHEN coalesce({col}, true) THEN 'true' ELSE 'false' END"
    if k == "int":
        return customer_number_sql(col)
    if k == "ref":
        return f"CAST({col} AS VARCHAR)"
    if field == "number":
        return f"NULLIF(trim({col}), '')"
    return f"NULLIF(CAST({col} AS VARCHAR), '')"


def long_values_sql(side: Side, entity: Entity) -> str:
    """SELECT tenant, id, field, value (own-side reference ids) for the staged records (? = tenant)."""
    parts = [
        f"SELECT tenant, id, '{f.name}' AS field, {_text_sql(entity, f.name, f.name)} AS value "
        f"FROM {staging_table(side, entity)} WHERE tenant = $tenant"
        for f in FIELDS[entity]
    ]
    return "\nUNION ALL ".join(parts)


def _case(entity_col: str, field_col: str, per_field: dict[tuple[Entity, str], str]) -> str:
    whens = " ".join(
        f"WHEN {entity_col} = '{e}' AND {field_col} = '{f}' THEN {expr}"
        for (e, f), expr in per_field.items()
    )
    return f"CASE {whens} END"


def api_name_sql(target: Side, entity_col: str = "entity", field_col: str = "field") -> str:
    """The target API's name of a canonical field."""
    names = {(e, f.name): f"'{getattr(f, target)}'" for e in ENTITIES for f in FIELDS[e]}
    return _case(entity_col, field_col, names)


def tripletex_json_sql(
    entity_col: str = "entity", field_col: str = "field", value: str = "value"
) -> str:
    """A canonical value as the Tripletex body wants it (references ``{"id": n}`` or ``$ref``)."""
    exprs: dict[tuple[Entity, str], str] = {}
    for e in ENTITIES:
        for f in FIELDS[e]:
            k = kind(e, f.name)
            if k == "status":
                expr = f"to_json({value} = 'completed')"
            elif k == "bool":  # is_active ⇔ NOT isInactive
                expr = f"to_json({value} <> 'true')"
            elif k == "int":
                expr = f"to_json(TRY_CAST({value} AS INTEGER))"
            elif k == "ref":
                expr = (
                    f"CASE WHEN {value} IS NULL THEN to_json(NULL::VARCHAR) "
                    f"WHEN starts_with({value}, '{PENDING_SVENN}') THEN json_object('$ref', "
                    f"json_object('entity', '{f.ref}', 'svenn_id', "
                    f"CAST(substr({value}, {len(PENDING_SVENN) + 1}) AS BIGINT))) "
                    f"ELSE json_object('id', CAST({value} AS BIGINT)) END"
                )
            elif k == "date":
                expr = f"to_json({value})"
            else:  # Tripletex stores an unset string as ""
                expr = f"to_json(coalesce({value}, ''))"
            exprs[(e, f.name)] = expr
    return _case(entity_col, field_col, exprs)


def svenn_json_sql(
    entity_col: str = "entity",
    field_col: str = "field",
    value: str = "value",
    ref: str = "ref_json",
) -> str:
    """A canonical value as the Svenn body wants it; ``ref`` is the mapped reference (JSON)."""
    exprs: dict[tuple[Entity, str], str] = {}
    for e in ENTITIES:
        for f in FIELDS[e]:
            k = kind(e, f.name)
            if k == "bool":
                expr = f"to_json({value} = 'true')"
            elif k == "ref":
                expr = ref
            else:
                expr = f"to_json({value})"
            exprs[(e, f.name)] = expr
    return _case(entity_col, field_col, exprs)


REF_ENTITY: dict[tuple[Entity, str], Entity] = {
    (e, f.name): f.ref for e in ENTITIES for f in FIELDS[e] if f.ref is not None
}


def ref_entity_sql(entity_col: str = "entity", field_col: str = "field") -> str:
    return _case(entity_col, field_col, {k: f"'{v}'" for k, v in REF_ENTITY.items()})


def mapped_values_sql(side: Side, entity: Entity) -> str:
    """Long canonical values with references as link identities (Tripletex ids, or
    ``$svenn:<id>`` for a Svenn record this plan creates in Tripletex). ``unmapped`` marks a
    Svenn reference to a record that is not synced (P11)."""
    values = long_values_sql(side, entity)
    refs = {f.name: f.ref for f in FIELDS[entity] if f.ref is not None}
    if side == "tripletex" or not refs:
        return f"SELECT tenant, id, field, value, false AS unmapped FROM ({values})"
    ref_case = (
        "CASE v.field " + " ".join(f"WHEN '{n}' THEN '{e}'" for n, e in refs.items()) + " END"
    )
    return f"""
    SELECT v.tenant, v.id, v.field,
           CASE WHEN v.ref_entity IS NULL OR v.value IS NULL THEN v.value
                WHEN p.tripletex_id IS NOT NULL THEN CAST(p.tripletex_id AS VARCHAR)
                WHEN p.kind = 'create_in_tripletex' THEN '{PENDING_SVENN}' || p.svenn_id
           END AS value,
           v.ref_entity IS NOT NULL AND v.value IS NOT NULL AND p.tripletex_id IS NULL
             AND p.kind IS DISTINCT FROM 'create_in_tripletex' AS unmapped
    FROM (SELECT v.*, {ref_case} AS ref_entity FROM ({values}) v) v
    LEFT JOIN rules.pairs p ON p.tenant = v.tenant AND p.entity = v.ref_entity
      AND p.svenn_id = TRY_CAST(v.value AS BIGINT)"""


def _svenn_deleted_sql(svenn_id: str, ref_entity: str) -> str:
    """The referenced Svenn record is a tombstone (deleted in Svenn: its link is detached in
    this run, or it was paired with a Tripletex record only to be detached, P8/C6/E4)."""
    tombstones = " UNION ALL ".join(
        f"SELECT '{e}' AS entity, id FROM {staging_table('svenn', e)} "
        f"WHERE tenant = $tenant AND deleted"
        for e in ("customer", "employee")
    )
    return (
        f"EXISTS (SELECT 1 FROM ({tombstones}) d WHERE d.entity = {ref_entity} "
        f"AND d.id = {svenn_id})"
    )


def svenn_ref_json_sql(value: str, ref_entity: str, pair: str) -> str:
    """A canonical reference as Svenn wants it: the linked Svenn id, or a ``$ref`` to the
    Tripletex record this plan creates in Svenn; NULL when it cannot be expressed — also when
    the Svenn record is deleted (Svenn refuses a reference to it; P10, P11).
    ``pair`` is a ``rules.pairs`` row joined on the value's Tripletex id."""
    return (
        f"CASE WHEN {value} IS NULL THEN to_json(NULL::BIGINT) "
        f"WHEN starts_with({value}, '{PENDING_SVENN}') "
        f"THEN to_json(CAST(substr({value}, {len(PENDING_SVENN) + 1}) AS BIGINT)) "
        f"WHEN {pair}.svenn_id IS NOT NULL AND {_svenn_deleted_sql(f'{pair}.svenn_id', ref_entity)} "
        f"THEN NULL "
        f"WHEN {pair}.svenn_id IS NOT NULL THEN to_json({pair}.svenn_id) "
        f"WHEN {pair}.kind = 'create_in_svenn' THEN json_object('$ref', json_object("
        f"'entity', {ref_entity}, 'tripletex_id', {pair}.tripletex_id)) END"
    )


def base_json_sql(
    entity_col: str = "entity", field_col: str = "field", value: str = "value"
) -> str:
    """A canonical value as a link's base holds it (SYNC contract: typed JSON, refs as ids)."""
    exprs: dict[tuple[Entity, str], str] = {}
    for e in ENTITIES:
        for f in FIELDS[e]:
            k = kind(e, f.name)
            if k == "bool":
                expr = f"to_json({value} = 'true')"
            elif k == "ref":
                expr = (
                    f"CASE WHEN {value} IS NULL THEN to_json(NULL::BIGINT) "
                    f"WHEN starts_with({value}, '{PENDING_SVENN}') THEN json_object('$ref', "
                    f"json_object('entity', '{f.ref}', 'svenn_id', "
                    f"CAST(substr({value}, {len(PENDING_SVENN) + 1}) AS BIGINT))) "
                    f"ELSE to_json(CAST({value} AS BIGINT)) END"
                )
            else:
                expr = f"to_json({value})"
            exprs[(e, f.name)] = expr
    return _case(entity_col, field_col, exprs)


def json_object_agg(key: str, value: str, where: str = "true") -> str:
    """Aggregate (key, JSON value) rows into one JSON object, keeping only rows where
    ``where`` holds (DuckDB's ``json_group_object`` is a macro and takes no FILTER)."""
    return (
        f"to_json(map_from_entries(list(struct_pack(k := {key}, v := {value})) "
        f"FILTER (WHERE {where})))"
    )
