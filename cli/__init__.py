"""The `greenlane` command line."""
