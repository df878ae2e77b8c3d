"""Operator decisions: go-live (G9), releasing what the mass guards hold (G7, G12), moving a
tenant's binding (G11), and the link-state repairs (C6, G13).

Each is recorded in the state store with who decided; link state changes only through
``assets/apply/links.py``, the module that owns it.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sync_pipeline import lease
from sync_pipeline.assets.apply import links
from sync_pipeline.model import Side
from sync_pipeline.ops import EXIT_OK, OperatorError, TenantBusy
from sync_pipeline.ops.instance import dagster_instance, refuse_if_busy
from sync_pipeline.ops.output import cell, format_table
from sync_pipeline.ops.selection import actor, selected, tenants
from sync_pipeline.ops.store import dict_rows, open_db
from sync_pipeline.resources.state import transaction
from sync_pipeline.tenants import TenantConfig

_RECORD_APPROVAL = (
    "INSERT INTO sync.approvals (tenant, action, actor, approved_at, consumed_by_run) "
    "VALUES (?, ?, ?, now(), NULL)"
)


# -- go-live (G9) and the tenant binding (G11) -------------------------------------------------
def bind_at_approval(key: str, config: TenantConfig, by: str) -> str:
    """Go-live records (or confirms) the companies the tenant's credentials belong to now;
    a company other than the bound one, or bound to another tenant, refuses the approval.
    Unreachable APIs do not block it: the next run's check records and enforces them."""
    from sync_pipeline.assets.extract.binding import check_and_bind, company_ids
    from sync_pipeline.resources.http import ApiError

    try:
        ids = company_ids(config, max_retries=0)
    except ApiError as err:
        return (
            f"tenant '{key}': companies not recorded now ({err}); the next run records "
            "and checks them (G11)"
        )
    with open_db() as conn:
        check, new = check_and_bind(conn, key, ids, by=by, how="approve")
    if check.problems:
        raise OperatorError(
            f"tenant '{key}' not approved (G11): {'; '.join(check.problems)}. Fix the "
            f"tenants file, or if the tenant really moved: sync-pipeline rebind --tenant {key}"
        )
    return (
        f"tenant '{key}' {'bound' if new else 'is bound'} to Svenn company {ids.svenn} and "
        f"Tripletex company {ids.tripletex} (G11)"
    )


def approve(tenants_file: str | Path | None, tenant: str, by: str | None = None) -> int:
    """Record the go-live of a tenant in review mode (G9); its next run applies the plan."""
    configured = tenants(tenants_file)
    key = selected(configured, tenant)[0]
    if configured[key].mode != "review":
        print(f"tenant '{key}' is in active mode already; nothing to approve")
        return EXIT_OK
    who = actor(by)
    with open_db() as conn:
        earlier = dict_rows(
            conn,
            """SELECT actor, approved_at FROM sync.approvals
               WHERE tenant = ? AND action = 'go_live' ORDER BY approved_at LIMIT 1""",
            [key],
        )
        if earlier:
            print(
                f"tenant '{key}' went live already: approved by {earlier[0]['actor']} "
                f"at {cell(earlier[0]['approved_at'])}"
            )
            return EXIT_OK
    binding = bind_at_approval(key, configured[key], who)  # G11; refuses a changed company
    with open_db() as conn:
        conn.execute(_RECORD_APPROVAL, [key, "go_live", who])
    print(f"tenant '{key}' approved for go-live by {who}; the next run applies its plan (G9)")
    print(binding)
    return EXIT_OK


def rebind(tenants_file: str | Path | None, tenant: str, by: str | None = None) -> int:
    """G11: bind the tenant to the companies its credentials belong to now."""
    from sync_pipeline.assets.extract.binding import company_ids
    from sync_pipeline.assets.extract.binding import rebind as bind_again
    from sync_pipeline.resources.http import ApiError

    configured = tenants(tenants_file)
    key = selected(configured, tenant)[0]
    who = actor(by)
    try:
        ids = company_ids(configured[key])
    except ApiError as err:
        raise OperatorError(
            f"tenant '{key}': cannot read the companies of its credentials ({err})"
        ) from None
    with open_db() as conn:
        check, resolved = bind_again(conn, key, ids, by=who)
        (active,) = conn.execute(
            "SELECT count(*) FROM sync.links WHERE tenant = ? AND state = 'active'", [key]
        ).fetchone()
    if check.taken:
        raise OperatorError(f"tenant '{key}' not rebound (G11): {'; '.join(check.taken)}")
    was = ", ".join(
        f"{name} {check.bound[side]}"
        for side, name in (("svenn", "Svenn"), ("tripletex", "Tripletex"))
        if check.bound[side] is not None
    )
    print(
        f"tenant '{key}' bound by {who} to Svenn company {ids.svenn} and Tripletex company "
        f"{ids.tripletex}" + (f" (was {was})" if was else "") + f"; {resolved} "
        "TENANT_BINDING_CHANGED error(s) resolved; the next run syncs these companies (G11)"
    )
    if check.changed and active:
        print(
            f"tenant '{key}': {active} active links refer to records of the former companies; "
            "unusual numbers of deletions and creates are held for confirmation (G7, G12)"
        )
    return EXIT_OK


# -- what the mass guards hold (G7, G12) -------------------------------------------------------
def _confirm_held(
    tenants_file: str | Path | None,
    tenant: str,
    by: str | None,
    *,
    code: str,
    action: str,
    what: str,
    rule: str,
) -> int:
    """Release what a mass guard holds (G7 deletions, G12 creates): one approval, which the
    next applying run uses up; nothing is recorded when nothing is held."""
    key = selected(tenants(tenants_file), tenant)[0]
    who = actor(by)
    with open_db() as conn:
        held = dict_rows(
            conn,
            # how many the guard holds, as its finding counted them (``details.<what>``)
            """SELECT entity, coalesce(any_value(details->>('$.' || ?)),
                                       CAST(count(*) AS VARCHAR)) AS n
               FROM sync.errors WHERE tenant = ? AND code = ? AND resolved_at IS NULL
               GROUP BY entity ORDER BY entity""",
            [what, key, code],
        )
        if not held:
            print(f"tenant '{key}': no {what} are held; nothing to confirm")
            return EXIT_OK
        pending = dict_rows(
            conn,
            """SELECT actor FROM sync.approvals WHERE tenant = ? AND action = ?
               AND consumed_by_run IS NULL""",
            [key, action],
        )
        if not pending:
            conn.execute(_RECORD_APPROVAL, [key, action, who])
    entities = ", ".join(f"{r['entity']} ({r['n']})" for r in held)
    print(
        f"tenant '{key}': held {what} of {entities} confirmed by {who}; "
        f"the next run applies them ({rule})"
    )
    return EXIT_OK


def confirm_deletes(tenants_file: str | Path | None, tenant: str, by: str | None = None) -> int:
    return _confirm_held(
        tenants_file,
        tenant,
        by,
        code="MASS_DELETE_HELD",
        action="confirm_deletes",
        what="deletions",
        rule="G7",
    )


def confirm_creates(tenants_file: str | Path | None, tenant: str, by: str | None = None) -> int:
    return _confirm_held(
        tenants_file,
        tenant,
        by,
        code="MASS_CREATE_HELD",
        action="confirm_creates",
        what="creates",
        rule="G12",
    )


# -- link state (C6, G13) ------------------------------------------------------------------------
def relink(
    tenants_file: str | Path | None, tenant: str, entity: str, side: Side, record_id: int
) -> int:
    """C6: re-attach a detached link; the next run merges both records again."""
    key = selected(tenants(tenants_file), tenant)[0]
    with open_db() as conn:
        try:
            with transaction(conn):
                svenn_id, tripletex_id = links.reattach(conn, key, entity, side, record_id)
        except links.ReattachRefused as refused:
            raise OperatorError(str(refused)) from None
    print(
        f"tenant '{key}': {entity} link Svenn {svenn_id} ⇄ Tripletex "
        f"{tripletex_id} re-attached; the next run merges both records again (C6)"
    )
    return EXIT_OK


def _detached_finding(tenant: str, repair_id: str, pair: dict) -> Any:
    from sync_pipeline.assets.apply.error_log import Finding
    from sync_pipeline.model import CODES

    spec = CODES["LINK_DETACHED"]
    reason = links.REPAIR_REASON
    if not pair["keys_match"]:
        reason += "; the keys no longer match"
    return Finding(
        tenant=tenant,
        run_id=repair_id,
        entity=pair["entity"],
        side=None,
        svenn_id=pair["svenn_id"],
        tripletex_id=pair["tripletex_id"],
        record_label=None,
        code=spec.code,
        severity=spec.severity,
        rule_id=spec.rule_id,
        message=spec.message,
        details={"rule_id": spec.rule_id, "reason": reason},
    )


def repair_links(tenants_file: str | Path | None, tenant: str, *, dry_run: bool = False) -> int:
    """Resolve ids held by two active links (G13): exact copies of one pair are merged into
    one link; of differing pairs the one whose keys still match on both sides stays, every
    other is detached and logged as LINK_DETACHED. Holds the tenant's lease meanwhile."""
    from sync_pipeline.assets.apply.error_log import insert_findings, merge_error_log

    key = selected(tenants(tenants_file), tenant)[0]
    instance = dagster_instance()
    refuse_if_busy(instance, key)
    repair_id = f"repair-links-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    with open_db() as conn:
        if not dry_run:
            try:
                lease.acquire(conn, key, repair_id, finished=lease.finished_in(instance))
            except lease.LeaseRefused as refused:
                raise TenantBusy(f"{refused}; try again when it has finished") from None
        try:
            with transaction(conn):
                repair = links.repair_duplicate_links(conn, key, repair_id, dry_run=dry_run)
                if repair.detached and not dry_run:
                    insert_findings(
                        conn, [_detached_finding(key, repair_id, p) for p in repair.detached]
                    )
        finally:
            if not dry_run:
                lease.release(conn, repair_id, key)
        if repair.detached and not dry_run:
            merge_error_log(conn, key, repair_id, complete=False)
    pairs, detached = repair.pairs, repair.detached
    if not repair.copies and not pairs:
        print(f"tenant '{key}': no id is in two active links; nothing to repair")
        return EXIT_OK
    verb = "would be" if dry_run else "were"
    print(f"tenant '{key}': {repair.copies} copies of a link {verb} merged into one")
    if pairs:
        print(format_table(pairs, ("entity", "svenn_id", "tripletex_id", "keys_match", "action")))
    print(
        f"tenant '{key}': {len(pairs) - len(detached)} links kept, {len(detached)} {verb} "
        "detached (LINK_DETACHED in the error log; re-attach one with `sync-pipeline relink`)"
    )
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``approve``, ``confirm-deletes``, ``confirm-creates``, ``rebind``, ``relink`` and
    ``repair-links``."""

    def command(name: str, text: str, handler) -> argparse.ArgumentParser:
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("--tenant", metavar="KEY", required=True)
        p.set_defaults(handler=handler)
        return p

    for name, text, decide, who in (
        ("approve", "record the go-live of a tenant in review mode (G9)", approve, "approves"),
        (
            "confirm-deletes",
            "release deletions held by the mass-delete guard (G7)",
            confirm_deletes,
            "confirms",
        ),
        (
            "confirm-creates",
            "release creates held by the mass-create guard (G12)",
            confirm_creates,
            "confirms",
        ),
        (
            "rebind",
            "bind a tenant to the companies its credentials belong to now (G11)",
            rebind,
            "rebinds",
        ),
    ):
        p = command(name, text, lambda a, decide=decide: decide(a.tenants_file, a.tenant, a.by))
        p.add_argument("--by", help=f"who {who} (default: $USER)")

    p = command(
        "relink",
        "re-attach a detached link (C6)",
        lambda a: relink(
            a.tenants_file,
            a.tenant,
            a.entity,
            "svenn" if a.svenn_id else "tripletex",
            a.svenn_id or a.tripletex_id,
        ),
    )
    p.add_argument("--entity", choices=("customer", "project", "employee"), required=True)
    ids = p.add_mutually_exclusive_group(required=True)
    ids.add_argument("--svenn-id", type=int)
    ids.add_argument("--tripletex-id", type=int)

    p = command(
        "repair-links",
        "resolve ids held by two active links: keep the pair whose keys match, detach the "
        "others (G13)",
        lambda a: repair_links(a.tenants_file, a.tenant, dry_run=a.dry_run),
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would change")
