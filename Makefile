# cbmnet: `make demo` runs the main job, `make test` passes the tests. Both use ./.venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench soak clean assets messages bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) assets bytecode
	$(BIN)/python -m cbmnet.demo

# Compiled modules, as a regular (non-editable) install gets them: without them every
# cbmnet process compiles the package again where bytecode is not written back
# (PYTHONDONTWRITEBYTECODE), 0.03 s of each CLI start. Stale ones are simply not used.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck assets bytecode
	$(BIN)/pytest

# The dashboard's front-end libraries (npm, pinned by package-lock.json), copied into
# static/vendor/ and served from there: nothing is fetched at run time. Rebuilt only when
# the lockfile changes (the stamp).
VENDOR       := src/cbmnet/hub/static/vendor
VENDOR_STAMP := $(VENDOR)/.installed

assets: $(VENDOR_STAMP)

$(VENDOR_STAMP): package.json package-lock.json assets/hpke-core.entry.mjs
	npm ci --no-audit --no-fund
	mkdir -p $(VENDOR)
	cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css $(VENDOR)/
	cp node_modules/topojson-client/dist/topojson-client.min.js $(VENDOR)/
	cp node_modules/world-atlas/countries-50m.json $(VENDOR)/
	node_modules/.bin/esbuild assets/hpke-core.entry.mjs --bundle --format=iife --minify \
	  --target=es2020 --legal-comments=inline --outfile=$(VENDOR)/hpke-core.js
	touch $@

# Every benchmark but the soak (make soak: it restarts PostgreSQL).
bench: $(STAMP) assets bytecode
	@for b in bench/[!_]*.py; do \
	  [ "$$b" = bench/soak.py ] && continue; \
	  echo "== $$b"; $(BIN)/python $$b || exit 1; \
	done

# Fault-injection soak (docs/RELIABILITY.md): two hubs on one PostgreSQL under load while a
# hub is SIGKILLed, PostgreSQL restarts, a witness goes away and a clock is skewed.
# SOAK_SECONDS=60 make soak for a shorter run.
soak: $(STAMP)
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) data demo-data .pytest_cache .mypy_cache .ruff_cache .hypothesis \
	  node_modules $(VENDOR) build

# The dashboard's catalogues: new marked strings (_() in templates, N_() in Python) are
# added to every language's cbmnet.po for the translators (tests/test_i18n.py fails until
# each has a translation).
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o build/cbmnet.pot --no-location --sort-output .
	for l in fr es ru zh ar; do $(BIN)/pybabel update -i build/cbmnet.pot -d src/cbmnet/locale -D cbmnet -l $$l --no-fuzzy-matching; done
