"""Greenlane: an event-driven green-channel SLA monitor for telecom key accounts."""

__version__ = "0.1.0"
