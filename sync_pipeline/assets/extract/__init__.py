"""Extraction (group ``extract``): complete, normalised snapshots of both systems in DuckDB.

Per system one multi-asset lists projects, customers and employees with one client
session and writes, per entity, ``raw.<side>_<plural>`` (the API's records) and
``staging.<side>_<plural>`` (the canonical model of SYNC-RULES §0) together with a
``sync.extracts`` row, in one transaction, once the whole listing has arrived. A listing
that fails part-way (after the client's retries) fails the asset, records an incomplete
extract and leaves the previous snapshot untouched (G7).

Modes (``sync.extracts.mode``): a run extracts incrementally on top of the last complete
snapshot, and fully when the run carries the tag ``sync_pipeline/full_extract=true`` (the
nightly schedule sets it), when there is no trustworthy snapshot yet, or when the last
full extract is older than 24 hours.

How a deletion is seen:

- Svenn, full: the record arrives as a tombstone (``include_deleted=true``, ``deleted_at``
  set) → ``staging.deleted = true``. Svenn deletes softly, so nothing is inferred from
  absence.
- Svenn, incremental: the deletion bumps ``updated_at``, so the tombstone arrives in the
  ``updated_since`` window (watermark minus 5 minutes) and replaces the stored record.
- Tripletex, both modes: Tripletex deletes for real and has no tombstones, so a deleted
  record is one missing from a complete listing; every page is asked for (a 304 keeps the
  stored page, a changed page is re-read and shifts the rest), so the staging table simply
  no longer holds the record. The rules may trust that only because the extract's row in
  ``sync.extracts`` says ``complete``.
"""
