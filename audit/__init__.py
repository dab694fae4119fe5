"""The SQL audit store of every SLA change and escalation."""
