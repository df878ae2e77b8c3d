"""Schedules that keep every tenant in sync (filled in with the operations issue)."""

SCHEDULES: list = []
