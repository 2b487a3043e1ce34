# dbmother: `make demo` runs the demonstration, `make test` runs everything CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test pytest lint docs install pgtest browser clean

$(STAMP): setup.cfg setup.py examples/quickstart/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[test,docs,pyramid,debugtoolbar,zope]"
	$(PY) -m pip install --quiet -e "examples/quickstart[testing]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mother demo

pgtest: $(STAMP)
	$(PY) tools/pgcluster.py ensure

# the browser tests' Chromium: Debian's package, installed once (Playwright drives it)
browser:
	test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)

# mypy checks the whole package: setup.cfg's [mypy] names its files (src/mother)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools examples
	$(VENV)/bin/mypy

# nitpicky (-n): every cross-reference must resolve; -W: every warning fails the build
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html

# dbmother's tests, then the Pyramid quickstart project's own (it starts pserve itself)
pytest: $(STAMP) browser
	MOTHER_TEST_PG_DSN="$$($(PY) tools/pgcluster.py ensure)" $(PY) -m pytest $(PYTEST_ARGS)
	cd examples/quickstart && MOTHER_TEST_PG_DSN="$$(../../$(PY) ../../tools/pgcluster.py ensure)" \
		../../$(PY) -m pytest $(PYTEST_ARGS)

test: lint docs pytest

# stops the throwaway PostgreSQL cluster only if this checkout started it
clean:
	if [ -x $(PY) ]; then $(PY) tools/pgcluster.py stop; fi
	rm -rf $(VENV) docs/_build .pytest_cache .mypy_cache .hypothesis src/*.egg-info
