# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Half the cores (at least one) for pytest-xdist; integration tests start their own sandboxes per worker.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n > 1 ? n : 1 )))

.PHONY: setup test lint demo demo-ci clean constraints

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

setup: $(STAMP)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# Tests that need PostgreSQL (127.0.0.1:5432, or SYNC_TEST_POSTGRES) skip where none answers;
# `make test SYNC_REQUIRE_POSTGRES=1` (what .ci/run does) makes them fail instead.
test: lint
	SYNC_REQUIRE_POSTGRES=$(SYNC_REQUIRE_POSTGRES) \
	$(BIN)/pytest -n $(WORKERS) --durations=15

demo: setup
	$(BIN)/python -m sync_pipeline.demo

# The demo up to the end of the first sync, without serving the UI (used by CI).
demo-ci: setup
	$(BIN)/python -m sync_pipeline.demo --stop-after-sync

# Regenerate constraints.txt from a fresh install of pyproject.toml's ranges.
constraints:
	rm -rf .venv-constraints && $(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet ".[dev]"
	.venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^sync[-_]pipeline' | grep '==' > constraints.txt
	rm -rf .venv-constraints

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
