"""The notifier's Prometheus metrics, in a registry of its own. No label names an account."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotifyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.received = Counter(
            "greenlane_notify_escalations_total",
            "Escalation records consumed, by outcome (new, duplicate, dead_letter)",
            ["outcome"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "greenlane_notifications_total",
            "Notifications by channel and outcome (sent, failed, skipped, uncertain_skipped,"
            " quiet: recorded, not sent, since the SLA had already ended)",
            ["channel", "type", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "greenlane_notification_retries_total",
            "Attempts after a transient failure",
            ["channel", "type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "greenlane_notification_latency_seconds",
            "From the first attempt to the confirmed send (retries included)",
            ["channel", "type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "greenlane_notify_dead_letters_total",
            "Records sent to the notifier's dead-letter topic, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.retractions = Counter(
            "greenlane_notify_retractions_total",
            "Retraction records consumed, by outcome (new, duplicate, unknown: of an escalation"
            " not received (yet), ignored: not of an escalation)",
            ["outcome"],
            registry=self.registry,
        )
        self.corrections = Counter(
            "greenlane_notify_corrections_total",
            "Corrections of retracted escalations by channel and outcome (sent, failed,"
            " uncertain_skipped)",
            ["channel", "type", "outcome"],
            registry=self.registry,
        )
        self.cancelled = Counter(
            "greenlane_notify_retracted_deliveries_total",
            "Deliveries not sent because their escalation was retracted first",
            ["channel", "type"],
            registry=self.registry,
        )
