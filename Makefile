# Two commands: `make run` (set up, load the demo data, start the dashboard) and
# `make test` (set up, run the whole suite). Set-up installs requirements.txt and then the
# project itself, editable (`mgi_core` and the `mgi` command in .venv/bin), and is skipped
# when neither requirements.txt nor pyproject.toml changed.
# `make run` listens on 127.0.0.1 only; `make run ADDRESS=0.0.0.0` serves the network (put
# sign-in or an authenticating proxy in front first: README, "Deploying for a team").
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)
PORT    ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: setup run test lint demo-data bench bench-train

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[app,test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

demo-data: setup
	$(VENV)/bin/mgi load-demo

run: demo-data
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT)

test: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) bench/ingest.py

bench-train: setup
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(PY) bench/train.py
