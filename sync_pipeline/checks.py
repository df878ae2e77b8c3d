"""Asset checks that are not defined beside their asset."""

CHECKS: list = []
