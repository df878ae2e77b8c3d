"""Dagster assets in three groups: ``extract`` → ``rules`` → ``apply``."""
