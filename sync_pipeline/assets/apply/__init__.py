"""The apply step (group ``apply``): carry out ``sync.plan``, keep ``sync.links`` true, and
materialise the error log (``sync.errors``) and the runs summary (``sync.runs``).

Layout: ``links`` (link state transitions and ``$ref`` resolution), ``wal`` (the
write-ahead log ``sync.operations``), ``recovery`` (creates of a crashed run),
``executor`` (plan rows → API calls), ``error_log`` (findings → ``sync.errors``), ``runs``
(``sync.runs``), ``exports`` (Parquet for analysts), ``publish`` (open errors to Svenn),
``assets`` and ``checks`` (the Dagster side).
"""
