"""Generated worlds staged as the extract step would stage them (``sync_pipeline.generator.staged``)."""

from sync_pipeline.generator.staged import stage_world

__all__ = ["stage_world"]
