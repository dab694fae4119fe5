"""Simulated key-account traffic for the demo and tests."""
