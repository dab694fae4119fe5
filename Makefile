# The two commands a fresh machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DURATION ?=
DEMO_ARGS ?= $(if $(DURATION),--duration $(DURATION),)

.PHONY: install demo test test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Strict editable mode links each module file under build/, so mypy sees the `greenlane` package
# there; a new module file needs `make install` again.
install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict

demo: install
	$(BIN)/greenlane demo $(DEMO_ARGS)

# Debian's packages the tests use for real (PostgreSQL, ...), installed when missing.
test-deps:
	bash .ci/deps.sh

test: install test-deps
	$(BIN)/ruff check .
	$(BIN)/mypy build/__editable__.greenlane-*/greenlane
	$(BIN)/pytest

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
