# The README's two commands: `make run` and `make test`. Everything else is a step under them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST_ARGS ?=
# manage.py, Celery and wsgi default to production settings; local work names its own.
LOCAL := DJANGO_SETTINGS_MODULE=$${DJANGO_SETTINGS_MODULE:-config.settings.local}

.PHONY: run test install lint migrate check peers

include make/contracts.mk
include make/bench.mk
include make/system.mk

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Local peers the tests and `make run` start: anvil (npm). localstripe comes with the venv.
node_modules/.bin/anvil: package.json
	npm install --no-audit --no-fund --package-lock=false --loglevel=error
	touch $@

peers: node_modules/.bin/anvil

migrate: install
	$(LOCAL) $(PY) manage.py migrate --noinput

# The whole system on embedded defaults: var/local.env points every process at the local
# peers (localstripe unless STRIPE_SECRET_KEY is set, anvil unless CHAIN_RPC_URL is set);
# honcho runs the Procfile (anvil, localstripe, setup, web, worker, beat); Ctrl-C stops all.
run: install peers system
	$(LOCAL) $(PY) -m devtools.peers env
	$(LOCAL) $(PY) manage.py migrate --noinput
	$(LOCAL) $(PY) manage.py createcachetable
	$(LOCAL) $(PY) manage.py setup_periodic_tasks
	$(LOCAL) $(PY) manage.py setup_demo
	$(LOCAL) $(VENV)/bin/honcho start -f Procfile

test: install peers system
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

check: install
	$(LOCAL) $(PY) manage.py makemigrations --check --dry-run
