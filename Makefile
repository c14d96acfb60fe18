# Two commands: `make run` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/chatd.yaml

.PHONY: run test lint format check-python certs typecheck bench clean install check-unit tls-check screenshot irctest

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "chatd needs Python 3.11 or newer; set PYTHON=python3.11")'

$(BIN)/python: | check-python
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

certs/server.crt: | $(VENV)/.installed
	$(BIN)/chatctl gen-certs --out certs

certs: certs/server.crt

run: $(VENV)/.installed certs/server.crt
	$(BIN)/chatd --config $(CONFIG)

test: $(VENV)/.installed lint
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest

# ruff: lint rules and the formatter, as pyproject.toml sets them (`make format` applies the formatter).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.installed
	$(BIN)/python -m mypy

# Install as a systemd service (root): see docs/operations.md.
install:
	bash scripts/install.sh

# systemd-analyze verify + security on the unit (also part of `make test`).
check-unit: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests/unit/test_systemd_unit.py

# sslyze against Mozilla's "intermediate" profile (downloads sslyze into .venv-sslyze).
tls-check: $(VENV)/.installed certs/server.crt
	bash scripts/tls-check.sh

# docs/img/chatd-web.png for README: a throwaway chatd with demo content, in Debian's
# Chromium (apt-get install chromium); SCHEME=dark for the dark one.
screenshot: $(VENV)/.installed certs/server.crt
	$(BIN)/python scripts/screenshot.py

# The benchmark (not part of `make test`): see bench/README.md.
bench: $(VENV)/.installed certs/server.crt
	$(BIN)/python -m bench

# irctest, the IRC conformance suite, against the IRC listener over TLS (tests/irc/run.sh):
# 0 failed and every id of ../shared/irc/must-pass.txt passed. irctest is read from
# IRCTEST_DIR (default ../shared/irctest) into .venv-irctest; ~5 minutes with two workers.
irctest: $(VENV)/.installed
	bash tests/irc/run.sh

clean:
	rm -rf $(VENV) .venv-irctest .irctest-results.xml .pytest_cache .mypy_cache .hypothesis
