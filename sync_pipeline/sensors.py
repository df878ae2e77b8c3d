"""Sensors (the tenants-file sensor keeps the tenant partitions in step with the file)."""

SENSORS: list = []
