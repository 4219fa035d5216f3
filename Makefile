# Relief — two commands for a fresh machine:
#   make run    set everything up and start the dashboard (with demo data on first start)
#   make test   set everything up (Python packages, chromium, PostgreSQL) and run all tests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
ADDRESS ?= 127.0.0.1
ARGS   ?=

.PHONY: setup system-deps run test bench validate samples clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	bash scripts/system_deps.sh --base
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

system-deps:
	bash scripts/system_deps.sh

run: setup
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) --server.headless true \
		--browser.gatherUsageStats false $(ARGS)

test: setup system-deps
	bash scripts/run_tests.sh

bench: setup
	$(PY) -m analyzer.bench

validate: setup
	$(PY) -m analyzer.validate

samples: setup
	$(PY) -m analyzer.synth --samples sample_images

clean:
	rm -rf $(VENV) .pytest_cache
