# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DURATION ?=
DEMO_ARGS ?= $(if $(DURATION),--duration $(DURATION),)

.PHONY: install demo test lint typecheck check clean postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Strict editable mode links each module file under build/, so mypy sees the `greenlane` package
# there; a new module file needs `make install` again.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict

demo: install
	$(BIN)/greenlane demo $(DEMO_ARGS)

# Installs PostgreSQL from Debian's packages when missing (tests start their own server).
postgres:
	@command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null)

test: install postgres
	$(BIN)/ruff check .
	$(BIN)/mypy build/__editable__.greenlane-*/greenlane
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
