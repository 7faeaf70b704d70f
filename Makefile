# Two commands: `make up` runs the system, `make test` runs the test suite.
# Both set up what they need (virtual environment, packages, tag build) idempotently.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test setup tag bench screenshot clean

up: setup
	$(BIN)/inlet up

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@if [ -f tag/package.json ]; then cd tag && npm test --silent; fi

# Benchmarks (not tests): figures and how to read them are in BENCHMARKS.md.
# The single-message HTTP/2 load uses h2load (Debian: nghttp2-client) when present.
bench: setup
	$(BIN)/python -m bench gateway $(BENCH_ARGS)
	$(BIN)/python -m bench profile $(BENCH_ARGS)
	$(BIN)/python -m bench lake $(BENCH_ARGS)
	$(BIN)/python -m bench nginx $(BENCH_ARGS)

setup: $(STAMP) tag

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The tag is built when it has sources; node_modules are installed from lockfiles once.
# (tests/browser holds Adobe's Web SDK, which the compatibility tests load.)
tag:
	@if [ -f tag/package.json ]; then \
		cd tag && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; } && npm run build --silent; \
	fi
	@# npm ci rejects this lockfile (npm 11 and alloy's optional rollup packages); install does not.
	@cd tests/browser && { [ -d node_modules/@adobe/alloy ] && [ -d node_modules/axe-core ] || npm install --no-audit --no-fund --silent; }

# Regenerates the README's pictures of the workspace (docs/workspace-*.png) from its browser tests.
screenshot: setup
	INLET_SCREENSHOT=1 $(BIN)/python -m pytest tests/browser/test_profile_page.py tests/browser/test_workspace.py -q

clean:
	rm -rf $(VENV) tag/node_modules tag/dist var
