# Escrow contracts: compile with the pinned Vyper and write the committed artifacts.
# Included by the main Makefile; PY is the project's virtualenv python.
PY ?= .venv/bin/python

.PHONY: contracts contracts-check anvil-install

contracts:
	$(PY) -m devtools.contracts.build

contracts-check:
	$(PY) -m devtools.contracts.build --check

# the anvil binary for the integration tests (node_modules/.bin/anvil, from package.json)
anvil-install:
	npm install --no-audit --no-fund --package-lock=false
