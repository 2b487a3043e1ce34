# dbmother: `make demo` runs the demonstration, `make test` runs everything CI runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# the oldest psycopg dbmother supports (setup.cfg's lower bound): a second venv runs the
# dialect, session and transaction tests with it, in both of psycopg's implementations
PSYCOPG_OLDEST := 3.1.20
OLD_VENV := .venv-psycopg-oldest
OLD_PY := $(OLD_VENV)/bin/python
OLD_STAMP := $(OLD_VENV)/.installed-$(PSYCOPG_OLDEST)
PSYCOPG_TESTS := tests/dialects tests/test_session.py tests/tm/test_transitions.py \
	tests/tm/test_failures.py tests/tm/test_twophase.py tests/test_roundtrips.py

.PHONY: demo test pytest pytest-psycopg lint docs install pgtest browser pgbouncer debs buildout-eggs clean

# bench too: tests/test_roundtrips.py counts the benchmarks' own unit of work.
# setuptools below 82: Pyramid imports pkg_resources, which setuptools 82 and later leave out
$(STAMP): setup.cfg setup.py examples/quickstart/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools < 82" wheel
	$(PY) -m pip install --quiet -e ".[test,docs,pyramid,debugtoolbar,zope,bench]"
	$(PY) -m pip install --quiet -e "examples/quickstart[testing]"
	touch $(STAMP)

$(OLD_STAMP): setup.cfg setup.py
	rm -rf $(OLD_VENV)
	$(PYTHON) -m venv $(OLD_VENV)
	$(OLD_PY) -m pip install --quiet --upgrade pip "setuptools < 82" wheel
	$(OLD_PY) -m pip install --quiet -e ".[test,bench]" "psycopg[binary]==$(PSYCOPG_OLDEST)"
	touch $(OLD_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mother demo

pgtest: $(STAMP)
	$(PY) tools/pgcluster.py ensure

# the browser tests' Chromium: Debian's package, installed once (Playwright drives it),
# with PgBouncer (debs)
browser: debs

# PgBouncer (transaction mode, started by the tests themselves: tools/pgbouncer.py):
# Debian's package, installed once, with Chromium (debs); its own service is not used
pgbouncer: debs

# mypy checks the whole package: setup.cfg's [mypy] names its files (src/mother)
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools examples
	$(VENV)/bin/mypy

# nitpicky (-n): every cross-reference must resolve; -W: every warning fails the build
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html

# dbmother's tests, then the Pyramid quickstart project's own (it starts pserve itself)
pytest: $(STAMP) browser pgbouncer
	MOTHER_TEST_PG_DSN="$$($(PY) tools/pgcluster.py ensure)" $(PY) -m pytest $(PYTEST_ARGS)
	cd examples/quickstart && MOTHER_TEST_PG_DSN="$$(../../$(PY) ../../tools/pgcluster.py ensure)" \
		../../$(PY) -m pytest $(PYTEST_ARGS)

# the driver-facing tests again: the oldest psycopg in both implementations (C, prebuilt,
# and pure Python on the system's libpq), the newest in pure Python (pytest ran it in C);
# the suites routed through PgBouncer once more with the oldest only (time)
pytest-psycopg: $(STAMP) $(OLD_STAMP) pgbouncer
	set -e; dsn="$$($(PY) tools/pgcluster.py ensure)"; \
	for run in "$(OLD_PY) binary pgbouncer" "$(OLD_PY) python direct" "$(PY) python direct"; do \
		set -- $$run; \
		if [ $$3 = direct ]; then only="not pgbouncer"; else only=""; fi; \
		PSYCOPG_IMPL=$$2 $$1 -c "import psycopg; print('psycopg', psycopg.__version__, psycopg.pq.__impl__)"; \
		PSYCOPG_IMPL=$$2 MOTHER_TEST_PG_DSN="$$dsn" $$1 -m pytest -q -p no:cacheprovider \
			-k "$$only" $(PYTEST_ARGS) $(PSYCOPG_TESTS); \
	done

# Debian's packages the tests need (Chromium, PgBouncer), in one apt-get run
debs:
	test -x /usr/bin/chromium -a -x /usr/sbin/pgbouncer || \
		(apt-get update -q && apt-get install -y -q chromium pgbouncer)

# the buildout end-to-end test's egg cache, filled in the background while the venvs are
# installed and the linters, the docs and the first tests run (its first run on a machine
# takes minutes); the test waits for it (tools/buildout_eggs.py)
buildout-eggs:
	$(PYTHON) tools/buildout_eggs.py start

# in steps, each with what can run beside it on two cores: Debian's packages beside the
# venv, ruff and mypy beside the docs, the psycopg matrix (its venv first) beside the main
# run (the buildout warm-up beside all of them). The two runs use databases of their own
# on one server and one PgBouncer, both started first (a run that finds PgBouncer running
# leaves it running) and PgBouncer stopped after, whatever the runs' outcome
test: buildout-eggs
	$(MAKE) -j2 install debs
	$(MAKE) -j2 lint docs
	$(PY) tools/pgbouncer.py ensure
	status=0; $(MAKE) -j2 -Otarget pytest pytest-psycopg || status=$$?; \
		$(PY) tools/pgbouncer.py stop; exit $$status

# stops the test replicas a killed test run left, PgBouncer and the throwaway PostgreSQL
# cluster, each only if this checkout started it
clean:
	if [ -x $(PY) ]; then $(PY) tools/pgreplicas.py stop; $(PY) tools/pgbouncer.py stop; \
		$(PY) tools/pgcluster.py stop; fi
	rm -rf $(VENV) $(OLD_VENV) docs/_build .pytest_cache .mypy_cache .hypothesis src/*.egg-info
