# hush: PGXS build. `make` assembles build/hush--$(EXTVERSION).sql from sql/ and
# plpython/; `make install` installs it into the server found by pg_config.
# `make demo` and `make test` are the README's two commands: each installs what
# it needs (apt packages, a virtualenv in .venv) and runs on a throwaway cluster.

EXTENSION  = hush
EXTVERSION = $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" hush.control)
PG_CONFIG ?= pg_config
PYTHON    ?= python3
VENV      ?= .venv

BUILT_SQL  = build/hush--$(EXTVERSION).sql
DATA_built = $(BUILT_SQL)
DATA       = $(wildcard sql/updates/hush--*--*.sql)
EXTRA_CLEAN = build

# `all` must come before the PGXS include, or its first target becomes the default.
all: $(BUILT_SQL)

$(BUILT_SQL): hush.control tools/build_sql.py $(sort $(wildcard sql/*.sql sql/*/*.sql)) $(wildcard plpython/hush_plpy/*.py)
	@mkdir -p build
	$(PYTHON) tools/build_sql.py --version $(EXTVERSION) --output $@

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

.PHONY: deps venv demo test keygen

# System packages (PostgreSQL 15 server, headers, PL/Python, PyNaCl for the
# server's Python); skipped when already installed.
deps:
	@tools/install-deps.sh

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	@touch $@

venv: $(VENV)/.installed

demo: deps venv
	$(MAKE) --no-print-directory install
	$(VENV)/bin/python demo/demo.py

test: deps venv
	$(MAKE) --no-print-directory install
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Print a new root key line (append it to a keyring file with mode 0600).
keygen:
	@$(PYTHON) tools/keygen.py
