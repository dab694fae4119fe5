"""The pure SLA rules: no I/O, no clock; `now` is always an argument."""
