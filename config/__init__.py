"""Settings from the environment, SLA policy files and their loader."""
