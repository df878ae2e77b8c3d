"""Norwegian-looking test data: names, companies, addresses, org numbers, phones, e-mails.

Every function takes the caller's `random.Random`, so a world is reproducible from its seed
and nothing here holds state between calls.
"""

from __future__ import annotations

import random
import re

FIRST_NAMES = (
    "Ola", "Kari", "Per", "Anne", "Lars", "Ingrid", "Ole", "Marit", "Jon", "Kristin",
    "Bjørn", "Hilde", "Knut", "Solveig", "Arne", "Sigrid", "Håkon", "Åse", "Øystein", "Tone",
    "Espen", "Silje", "Magnus", "Ingvild", "Eirik", "Ragnhild", "Sindre", "Tuva", "Jørgen", "Nora",
    "Emma", "Jakob", "Sofie", "Henrik", "Thea", "Mathias", "Ida", "Even", "Mari", "Trond",
    "Linn", "Geir", "Randi", "Terje", "Gunnar", "Liv", "Frode", "Hege", "Vegard", "Åsmund",
    "Ståle", "Kjersti", "Torbjørn", "Bjørg", "Aksel", "Maja", "Filip", "Oda", "Sander", "Synnøve",
    "Håvard", "Marte", "Andreas", "Camilla", "Kjetil", "Solfrid", "Rune", "Turid", "Stian", "Grethe",
)  # fmt: skip

LAST_NAMES = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Johnsen", "Pettersen", "Eriksen", "Berg", "Haugen", "Hagen",
    "Johannessen", "Andreassen", "Jacobsen", "Dahl", "Jørgensen", "Halvorsen", "Henriksen", "Lund",
    "Sørensen", "Jakobsen", "Moen", "Gundersen", "Iversen", "Strand", "Solberg", "Svendsen",
    "Eide", "Knutsen", "Martinsen", "Paulsen", "Bakken", "Kristoffersen", "Mathisen", "Lie",
    "Rasmussen", "Amundsen", "Lunde", "Kristensen", "Bakke", "Berge", "Moe", "Nygård",
    "Fredriksen", "Solheim", "Holm", "Lien", "Aas", "Ødegård", "Bø", "Sæther",
    "Løken", "Bråten", "Myhre", "Nordby", "Røed", "Årdal", "Østby", "Haaland",
)  # fmt: skip

PLACES = (
    "Fjord", "Vest", "Øst", "Nord", "Sør", "Bergen", "Trønder", "Viken", "Agder", "Lofoten",
    "Nordlys", "Hallingdal", "Romerike", "Jæren", "Sunnmøre", "Toten", "Hadeland", "Ringerike",
    "Follo", "Asker", "Bærum", "Telemark", "Valdres", "Gudbrand", "Helgeland", "Nordfjord",
    "Hardanger", "Voss", "Ryfylke", "Østfold", "Vestfold", "Salten", "Varanger", "Namdal",
)  # fmt: skip

TRADES = (
    "Bygg", "Rør", "Elektro", "Maler", "Tak", "Snekkeri", "Entreprenør", "VVS", "Murer",
    "Ventilasjon", "Graving", "Flis", "Glass", "Anlegg", "Tømrer", "Varme", "Blikk", "Bad",
)  # fmt: skip

# (postal code, city): real pairs, so addresses look right to a Norwegian reader.
POSTAL_PLACES = (
    ("0150", "Oslo"), ("0260", "Oslo"), ("0560", "Oslo"), ("0664", "Oslo"), ("0976", "Oslo"),
    ("5003", "Bergen"), ("5020", "Bergen"), ("5089", "Bergen"), ("7011", "Trondheim"),
    ("7030", "Trondheim"), ("4006", "Stavanger"), ("4014", "Stavanger"), ("9008", "Tromsø"),
    ("3015", "Drammen"), ("1606", "Fredrikstad"), ("4610", "Kristiansand"), ("3211", "Sandefjord"),
    ("2317", "Hamar"), ("6002", "Ålesund"), ("8006", "Bodø"), ("2821", "Gjøvik"), ("1530", "Moss"),
    ("3717", "Skien"), ("1337", "Sandvika"), ("2000", "Lillestrøm"), ("4306", "Sandnes"),
    ("5527", "Haugesund"), ("2609", "Lillehammer"), ("3510", "Hønefoss"), ("1440", "Drøbak"),
    ("7500", "Stjørdal"), ("6413", "Molde"), ("8514", "Narvik"), ("3110", "Tønsberg"),
    ("1710", "Sarpsborg"), ("3611", "Kongsberg"), ("4836", "Arendal"), ("5700", "Voss"),
)  # fmt: skip

STREETS = (
    "Storgata", "Kirkegata", "Kongens gate", "Dronningens gate", "Parkveien", "Skolegata",
    "Strandveien", "Solbergveien", "Bjørkeveien", "Granveien", "Furuveien", "Lindeveien",
    "Eikeveien", "Industriveien", "Fjordveien", "Sjøgata", "Torggata", "Nedre Slottsgate",
    "Øvre Storgate", "Haugeveien", "Åsveien", "Bakkeveien", "Elvegata", "Møllergata",
    "Havnegata", "Rønningveien", "Kløverveien", "Smedgata", "Tollbugata", "Prestegårdsveien",
)  # fmt: skip

PERSONAL_MAIL_DOMAINS = ("gmail.com", "online.no", "hotmail.com", "outlook.com", "icloud.com")

ORGANIZATION_NUMBER_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)

_FOLD = str.maketrans({"æ": "ae", "ø": "o", "å": "aa", "Æ": "Ae", "Ø": "O", "Å": "Aa", "é": "e"})
_NOT_MAILSAFE = re.compile(r"[^a-z0-9.]+")


def ascii_fold(text: str) -> str:
    """Transliterate æøå (ae/o/aa) so e-mail addresses stay ASCII; Tripletex rejects æøå."""
    return text.translate(_FOLD)


def mail_local_part(*words: str) -> str:
    """Lower-case, dot-joined, ASCII local part, e.g. ("Bjørn", "Sæther") -> "bjorn.saether"."""
    joined = ".".join(ascii_fold(w).lower() for w in words if w)
    return _NOT_MAILSAFE.sub("", joined).strip(".") or "post"


def mail_domain(company_name: str) -> str:
    """A plausible .no domain for a company: "Fjord Rør AS" -> "fjordror.no"."""
    core = re.sub(r"\b(AS|ASA|ANS|DA)\b", "", company_name)
    return (_NOT_MAILSAFE.sub("", ascii_fold(core).lower().replace(" ", "")) or "firma") + ".no"


def first_name(rng: random.Random) -> str:
    return rng.choice(FIRST_NAMES)


def last_name(rng: random.Random) -> str:
    return rng.choice(LAST_NAMES)


def company_name(rng: random.Random) -> str:
    """Names like "Hansen Bygg AS", "Fjord Rør", "Nordby Tak Jæren AS"."""
    pattern = rng.random()
    if pattern < 0.35:
        name = f"{rng.choice(LAST_NAMES)} {rng.choice(TRADES)}"
    elif pattern < 0.65:
        name = f"{rng.choice(PLACES)} {rng.choice(TRADES)}"
    elif pattern < 0.85:
        name = f"{rng.choice(LAST_NAMES)} {rng.choice(TRADES)} {rng.choice(PLACES)}"
    else:
        name = f"{rng.choice(LAST_NAMES)} & Sønn {rng.choice(TRADES)}"
    return name if rng.random() < 0.3 else f"{name} AS"


def street_address(rng: random.Random) -> tuple[str, str, str]:
    """(address line, postal code, city) with a real postal code/city pair."""
    number = rng.randint(1, 120)
    letter = rng.choice("ABC") if rng.random() < 0.15 else ""
    postal_code, city = rng.choice(POSTAL_PLACES)
    return f"{rng.choice(STREETS)} {number}{letter}", postal_code, city


def organization_number_check_digit(first_eight: str) -> int | None:
    """MOD11 check digit of a Norwegian org number, None when the remainder makes it invalid."""
    total = sum(int(d) * w for d, w in zip(first_eight, ORGANIZATION_NUMBER_WEIGHTS, strict=True))
    remainder = total % 11
    if remainder == 0:
        return 0
    if remainder == 1:
        return None
    return 11 - remainder


def is_valid_organization_number(value: str) -> bool:
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        return False
    return organization_number_check_digit(value[:8]) == int(value[8])


def organization_number(rng: random.Random) -> str:
    """A 9-digit org number (starting 8 or 9 like real ones) with a valid MOD11 check digit."""
    while True:
        first_eight = f"{rng.choice('89')}{rng.randrange(10**7):07d}"
        check = organization_number_check_digit(first_eight)
        if check is not None:
            return f"{first_eight}{check}"


def mobile_number(rng: random.Random) -> str:
    """Norwegian mobile number in international form, e.g. "+47 41234567"."""
    return f"+47 {rng.choice('49')}{rng.randrange(10**7):07d}"


def personal_email(rng: random.Random, first: str, last: str | None) -> str:
    suffix = str(rng.randint(1, 99)) if rng.random() < 0.5 else ""
    return f"{mail_local_part(first, last or '')}{suffix}@{rng.choice(PERSONAL_MAIL_DOMAINS)}"


def company_email(rng: random.Random, name: str) -> str:
    return f"{rng.choice(('post', 'firmapost', 'faktura', 'kontakt'))}@{mail_domain(name)}"


PROJECT_JOBS = (
    "Baderomsrehabilitering", "Nytt kjøkken", "Tilbygg", "Takomlegging", "Varmepumpe",
    "Drenering", "Fasadeoppussing", "Ny terrasse", "Elektrisk anlegg", "Rørfornying",
    "Garasje", "Loftsutbygging", "Vindusutskifting", "Serviceavtale", "Rehabilitering",
    "Nybygg enebolig", "Hytte", "Etterisolering", "Balkong", "Ny vannledning",
)  # fmt: skip

PROJECT_PHASES = ("Riving", "Tømrerarbeid", "Rørarbeid", "Elektro", "Maling", "Etappe 2")

INTERNAL_PROJECT_NAMES = (
    "Interntid", "Kurs og opplæring", "Ferie og fravær", "Verksted og lager",
    "Salg og tilbud", "Administrasjon", "Bilhold", "HMS og vernerunder",
)  # fmt: skip


def project_name(rng: random.Random) -> str:
    """E.g. "Baderomsrehabilitering Storgata 12" or "Tilbygg Hansen"."""
    job = rng.choice(PROJECT_JOBS)
    if rng.random() < 0.6:
        return f"{job} {street_address(rng)[0]}"
    return f"{job} {rng.choice(LAST_NAMES)}"


def project_description(rng: random.Random) -> str | None:
    if rng.random() < 0.5:
        return None
    return rng.choice(
        (
            "Befaring gjennomført, tilbud akseptert.",
            "Kunden ønsker oppstart så snart som mulig.",
            "Arbeidet utføres etter avtale med styret.",
            "Inkluderer materialer og bortkjøring av avfall.",
            "Timebasert, faktureres månedlig.",
        )
    )
