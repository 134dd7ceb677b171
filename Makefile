# hush: PGXS build. `make` assembles build/hush--$(EXTVERSION).sql (and the update scripts
# to it) from sql/ and plpython/; `make install` installs it into the server found by pg_config.
# `make demo` and `make test` are the README's two commands: each installs what
# it needs (apt packages, a virtualenv in .venv) and runs on a throwaway cluster.

EXTENSION  = hush
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" hush.control)
# The server the tests and the demo run (PostgreSQL 15), else whatever pg_config is on PATH.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
# The client/test Python (PGXS sets PYTHON to the server's build Python).
HUSH_PYTHON ?= python3
VENV        ?= .venv
# `make install` writes into the server's share directory: root or sudo.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# The install script and the update scripts from each release that began sql/incremental/
# (0.4.0 onward) to this version, generated together by tools/build_sql.py from
# sql/incremental/ (DDL run once per database), sql/idempotent/ (re-created by every install
# and update) and plpython/; its docstring describes the layout. releases/ holds what earlier
# versions shipped, frozen and checked against releases/manifest.json: their update scripts
# are installed so older databases chain up; their install scripts only by the upgrade tests
# (tests/conftest.py, released_versions).
BUILT_SQL  = build/hush--$(EXTVERSION).sql
UPDATE_SQL = $(filter-out $(BUILT_SQL),$(addprefix build/,$(shell $(HUSH_PYTHON) tools/build_sql.py --version $(EXTVERSION) --list)))
DATA_built = $(BUILT_SQL) $(UPDATE_SQL)
DATA       = $(wildcard releases/hush--*--*.sql)
EXTRA_CLEAN = build

# `all` must come before the PGXS include, or its first target becomes the default.
all: $(BUILT_SQL) $(UPDATE_SQL)

SQL_SOURCES = hush.control tools/build_sql.py tools/sql_layout.py releases/manifest.json \
              $(sort $(wildcard sql/incremental/*.sql sql/idempotent/*.sql sql/idempotent/*/*.sql)) \
              $(wildcard plpython/hush_plpy/*.py releases/*.sql)

# One run writes them all (a grouped target).
$(BUILT_SQL) $(UPDATE_SQL) &: $(SQL_SOURCES)
	@mkdir -p build
	$(HUSH_PYTHON) tools/build_sql.py --version $(EXTVERSION) --outdir build

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

.PHONY: deps venv install-ext demo test bench keygen

# The Debian packages in tools/debian-packages.txt (the server, its headers,
# PL/Python, PyNaCl for the server's Python, pg_cron...); only those missing.
deps:
	@tools/install-deps.sh

$(VENV)/.installed: requirements-dev.txt python_client/pyproject.toml
	$(HUSH_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

install-ext: all
	$(SUDO) $(MAKE) --no-print-directory install

demo: deps venv install-ext
	$(VENV)/bin/python demo/demo.py $(DEMO_ARGS)

# The 25 slowest tests are listed at the end: the suite has a budget of 12 minutes on 2 cores.
test: deps venv install-ext
	$(VENV)/bin/python -m pytest --durations=25 $(PYTEST_ARGS)

# Not part of the tests: hush against plain-SQL baselines, printed side by side.
bench: deps venv install-ext
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

# Print a new root key line (append it to a keyring file with mode 0600).
keygen:
	@$(HUSH_PYTHON) tools/keygen.py
