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
# there; a new module file needs `make install` again. setup.py compiles the SLA rules modules
# with mypyc (about a minute): after editing one of them, `make install` again
# (GREENLANE_PURE=1 make install keeps them pure Python). The link folder's name depends on
# whether the install is compiled, so an earlier one is removed first (mypy reads one), and so
# are the compiled modules that setup.py builds in place.
install: $(BIN)/python
	rm -rf build/__editable__.greenlane-* greenlane_rules__mypyc.*.so sla/*.so agents/*.so
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
