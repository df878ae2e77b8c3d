"""The canonical model of SYNC-RULES.md §0 and the catalogue of finding codes.

Everything that crosses a layer boundary is named here once: which fields are
synced per entity, how they are called on each side, and which codes, severities
and Norwegian messages the error log uses. Extraction normalises both systems
into these canonical columns; the rules compare them; the apply step maps them
back to each API's field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Entity = Literal["employee", "customer", "project"]
Side = Literal["svenn", "tripletex"]
Severity = Literal["error", "warning", "info"]

#: Dependency order: a project refers to a customer and employees (G3).
ENTITIES: tuple[Entity, ...] = ("employee", "customer", "project")
SIDES: tuple[Side, ...] = ("svenn", "tripletex")

#: Plural names used for tables (``staging.svenn_projects``) and Svenn resources.
PLURAL: dict[Entity, str] = {
    "employee": "employees",
    "customer": "customers",
    "project": "projects",
}


@dataclass(frozen=True)
class Field:
    """One synced field: canonical column, Svenn field, Tripletex field (write path)."""

    name: str
    svenn: str
    tripletex: str
    #: A reference to another entity, compared through links (G2).
    ref: Entity | None = None


#: The synced fields per entity (SYNC-RULES §0). The key is listed first.
FIELDS: dict[Entity, tuple[Field, ...]] = {
    "project": (
        Field("number", "display_id", "number"),
        Field("name", "name", "name"),
        Field("start_date", "start_date", "startDate"),
        Field("end_date", "end_date", "endDate"),
        Field("status", "status", "isClosed"),  # completed ⇔ closed (P7)
        Field("customer_id", "customer_id", "customer", ref="customer"),
        Field("project_manager_id", "project_manager_id", "projectManager", ref="employee"),
    ),
    "customer": (
        Field("number", "customer_number", "customerNumber"),
        Field("name", "name", "name"),
        Field("email", "email", "email"),
        Field("phone", "phone", "phoneNumber"),
        Field("organization_number", "organization_number", "organizationNumber"),
        Field("is_active", "is_active", "isInactive"),  # negated (C3–C7)
    ),
    "employee": (
        Field("number", "employee_number", "employeeNumber"),
        Field("first_name", "first_name", "firstName"),
        Field("last_name", "last_name", "lastName"),
        Field("email", "email", "email"),
        Field("phone", "phone", "phoneNumberMobile"),
    ),
}

#: Canonical field names per entity, in order.
FIELD_NAMES: dict[Entity, tuple[str, ...]] = {
    e: tuple(f.name for f in fs) for e, fs in FIELDS.items()
}

#: Staging columns per entity. Both sides share them, so rules can union the sides.
#: Common: tenant, id (the side's own record id), version, modified_at (Svenn
#: ``updated_at``; Tripletex's newest ``changes`` timestamp, NULL when unknown),
#: deleted (Svenn tombstone; always false in Tripletex), label ("number name").
STAGING_COLUMNS: dict[Entity, dict[str, str]] = {
    "project": {
        "number": "VARCHAR",
        "name": "VARCHAR",
        "start_date": "DATE",
        "end_date": "DATE",
        "status": "VARCHAR",  # 'active' | 'completed'
        "customer_id": "BIGINT",  # the same side's customer id
        "project_manager_id": "BIGINT",  # the same side's employee id
        "member_ids": "BIGINT[]",  # Svenn member_ids / Tripletex participants' employee ids
        "parent_id": "BIGINT",  # Svenn parent_id / Tripletex mainProject (P2)
        "is_internal": "BOOLEAN",  # Tripletex isInternal (P3/P4); false in Svenn
        "is_offer": "BOOLEAN",  # Tripletex isOffer (P13, migration 13); false in Svenn
    },
    "customer": {
        "number": "VARCHAR",  # Svenn free text; Tripletex int32 rendered as text
        "name": "VARCHAR",
        "email": "VARCHAR",
        "phone": "VARCHAR",
        "organization_number": "VARCHAR",
        "is_active": "BOOLEAN",
    },
    "employee": {
        "number": "VARCHAR",
        "first_name": "VARCHAR",
        "last_name": "VARCHAR",
        "email": "VARCHAR",
        "phone": "VARCHAR",
        "is_active": "BOOLEAN",  # always true in Tripletex (no inactive employees, E3)
        "user_type": "VARCHAR",  # Tripletex userType; NULL in Svenn
        "department_id": "BIGINT",  # Tripletex department; NULL in Svenn
    },
}
#: Staging columns added by a later migration (name → version): migration 1 leaves them out,
#: so a shipped migration keeps creating exactly what it always created.
LATER_STAGING_COLUMNS: dict[str, int] = {"is_offer": 13}
COMMON_STAGING_COLUMNS: dict[str, str] = {
    "tenant": "VARCHAR NOT NULL",
    "id": "BIGINT NOT NULL",
    "version": "BIGINT",
    "modified_at": "TIMESTAMPTZ",
    "deleted": "BOOLEAN NOT NULL",
    "label": "VARCHAR",
}


def staging_table(side: Side, entity: Entity) -> str:
    return f"staging.{side}_{PLURAL[entity]}"


def raw_table(side: Side, entity: Entity) -> str:
    return f"raw.{side}_{PLURAL[entity]}"


@dataclass(frozen=True)
class Code:
    """A finding code as users meet it in the error log (G10)."""

    code: str
    severity: Severity
    rule_id: str
    message: str


_CODES = (
    #: P1, C1 and E1 speak the help article's own words (its "Vanlige feil").
    Code("PROJECT_MISSING_START_DATE", "error", "P1", "Prosjekt mangler startdato."),
    Code(
        "PROJECT_IS_SUBPROJECT",
        "info",
        "P2",
        "Underprosjekter synkroniseres ikke, fordi Tripletex krever unikt prosjektnummer.",
    ),
    Code(
        "PROJECT_INTERNAL_SKIPPED",
        "info",
        "P3",
        "Interne prosjekter i Tripletex opprettes ikke i Svenn.",
    ),
    Code(
        "PROJECT_IS_OFFER",
        "info",
        "P13",
        "Tilbud i Tripletex er ikke prosjekter og synkroniseres ikke.",
    ),
    Code(
        "PROJECT_INVALID_NUMBER",
        "error",
        "P6",
        "Prosjektnummeret kan bare inneholde tall, bokstaver og punktum.",
    ),
    #: Also for a linked project whose Svenn manager may not manage projects (G10): Tripletex
    #: keeps the manager it has, which a create set to the default.
    Code(
        "PROJECT_MANAGER_DEFAULTED",
        "warning",
        "P10",
        "Prosjektlederen har ikke tilgang som prosjektleder i Tripletex; "
        "standard prosjektleder er brukt, eller prosjektet beholder sin prosjektleder i Tripletex.",
    ),
    Code(
        "PROJECT_MANAGER_NOT_SYNCED",
        "warning",
        "P10",
        "Prosjektlederen i Tripletex er ikke synkronisert til Svenn; "
        "prosjektlederen er ikke endret i Svenn.",
    ),
    Code(
        "PROJECT_CUSTOMER_NOT_SYNCED",
        "warning",
        "P11",
        "Kunden på prosjektet er ikke synkronisert; prosjektet er synkronisert uten kunde.",
    ),
    Code("CUSTOMER_NON_NUMERIC_ID", "error", "C1", "Kunde har ikke numerisk ID."),
    Code(
        "CUSTOMER_INACTIVE_SKIPPED",
        "info",
        "C2",
        "Inaktive kunder synkroniseres ikke.",
    ),
    Code(
        "CUSTOMER_INACTIVATE_IN_TRIPLETEX",
        "warning",
        "C3",
        "Kunden må settes inaktiv i Tripletex.",
    ),
    Code(
        "CUSTOMER_MISSING_INVOICE_EMAIL",
        "warning",
        "C5",
        "Kunden mangler e-postadresse for fakturautsendelse.",
    ),
    Code("EMPLOYEE_MISSING_SURNAME", "error", "E1", "Ansatt mangler etternavn."),
    Code(
        "EMPLOYEE_INACTIVE_SKIPPED",
        "info",
        "E3",
        "Inaktive ansatte synkroniseres ikke til Tripletex.",
    ),
    Code(
        "REQUIRED_FIELD_MISSING",
        "error",
        "G10",
        "Et felt Tripletex krever er tomt; endringen er ikke sendt til Tripletex.",
    ),
    Code(
        "DUPLICATE_KEY",
        "error",
        "G3",
        "Nummeret brukes av flere poster; ingen av dem synkroniseres før det er rettet.",
    ),
    Code(
        "MASS_DELETE_HELD",
        "error",
        "G7",
        "Uvanlig mange slettinger er holdt tilbake og venter på bekreftelse.",
    ),
    Code(
        "DELETION_NOT_CONFIRMED",
        "info",
        "G7",
        "Posten manglet i utlistingen fra Tripletex, men finnes der fortsatt; "
        "den er ikke slettet og synkroniseres ved neste kjøring.",
    ),
    Code(
        "LINK_DETACHED",
        "warning",
        "G13",
        "Koblingen mellom Svenn og Tripletex er brutt; endringer i posten "
        "synkroniseres ikke lenger.",
    ),
    Code(
        "MASS_CREATE_HELD",
        "error",
        "G12",
        "Uvanlig mange nye poster er holdt tilbake og venter på bekreftelse.",
    ),
    Code(
        "TENANT_BINDING_CHANGED",
        "error",
        "G11",
        "API-nøkkelen eller tokenet tilhører et annet firma enn integrasjonen er koblet til; "
        "ingenting synkroniseres før en operatør har koblet den på nytt.",
    ),
    Code(
        "EDIT_CONFLICT",
        "info",
        "G2",
        "Feltet er endret i begge systemer; den nyeste endringen er brukt.",
    ),
    Code(
        "CONCURRENT_EDIT",
        "warning",
        "G8",
        "Posten ble endret samtidig; den synkroniseres ved neste kjøring.",
    ),
    Code("API_REJECTED", "error", "G10", "Posten ble avvist: {api_message}"),
    Code(
        "DEPENDENCY_NOT_SYNCED",
        "warning",
        "G4",
        "En tilknyttet post (kunde eller ansatt) ble ikke synkronisert; "
        "posten forsøkes igjen ved neste kjøring.",
    ),
    Code(
        "API_UNAVAILABLE",
        "error",
        "G5",
        "Tjenesten svarte ikke; posten forsøkes igjen ved neste kjøring.",
    ),
    Code(
        "RUN_ALREADY_ACTIVE",
        "warning",
        "G13",
        "En annen synkronisering av firmaet pågår; denne kjøringen ble avvist.",
    ),
    Code(
        "LINK_REFUSED",
        "error",
        "G13",
        "Posten er allerede koblet til en annen post; den nye koblingen ble ikke lagret.",
    ),
)
CODES: dict[str, Code] = {c.code: c for c in _CODES}
