"""Escalation notifications: routing, channels, templates and the delivery ledger."""
