"""Operations an operator runs against the sync: the ``sync-pipeline`` commands' bodies.

``sync_pipeline/cli.py`` is only the argparse front end; ``demo.py`` and the tests use these
modules as a library. One concept per module:

- ``instance``: ``DAGSTER_HOME``, the persistent Dagster instance, refusing a busy tenant
- ``store``: the one opener of the state store outside a run (waits, or gives up at once)
- ``progress``: Dagster's event stream as one line per finished step
- ``output``: the table, JSON and CSV formats (records' text is data, never markup)
- ``selection``: the tenants file (passed explicitly), the tenants a command applies to
- ``runs``: ``run`` and ``plan`` (Dagster jobs in this process), the run summary
- ``reports``: ``errors``, ``tenants``, ``explain`` and the plan report
- ``decisions``: ``approve``, ``confirm-deletes``, ``confirm-creates``, ``rebind``,
  ``relink`` and ``repair-links`` (link state through ``assets/apply/links.py``)

Each command module exposes ``add_parser(subparsers)``; ``cli.COMMAND_MODULES`` lists them.
Any problem an operator can fix is an ``OperatorError``: one line on stderr, exit code 2.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OperatorError(Exception):
    """A problem the operator can fix; shown as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class TenantBusy(OperatorError):
    """Another live run syncs the tenant (G13); exit code 2, one line."""
