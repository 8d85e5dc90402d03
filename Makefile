# decaylab: every target installs into .venv first (idempotent: re-installs only when pyproject.toml changes).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export RAY_USAGE_STATS_ENABLED := 0
export TUNE_DISABLE_AUTO_CALLBACK_LOGGERS := 1

.PHONY: install run serve compare reproduce test test-fast bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: install
	$(PY) -m service.client.quickstart

serve: install
	$(VENV)/bin/decaylab serve

compare: install
	$(PY) -m workers.compare

reproduce: install
	$(PY) -m service.client.reproduce

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

bench: install
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: install
	$(VENV)/bin/ruff check service workers studies tests bench
	$(VENV)/bin/ruff format --check service workers studies tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .decaylab .pytest_cache .mypy_cache .ruff_cache
