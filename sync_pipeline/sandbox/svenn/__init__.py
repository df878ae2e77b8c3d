"""The Svenn API sandbox: svenn-api.md served from memory, per company (API key).

``create_app(startup_key=..., seed="demo"|"empty"|"world", ...)`` is what
``python -m sync_pipeline.sandbox svenn`` serves.
"""

from sync_pipeline.sandbox.svenn.app import create_app

__all__ = ["create_app"]
