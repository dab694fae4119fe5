"""Shared pytest setup: fixtures live beside their area and are registered here."""

pytest_plugins = [
    "fixtures.broker",
    "fixtures.notifier",
    "fixtures.postgres",
    "fixtures.receivers",
]
