# customer_analytics: the commands a newcomer can guess.
#   make demo   sample data -> DuckDB -> dbt build -> what the marts hold
#   make test   the linters, then every test on DuckDB (runner tests, dbt build and its tests)
#   make test-postgres   the same tests on PostgreSQL (CI runs both, and test-spark)
#   make orchestrate   Dagster's UI and daemon: landing folders, daily build, alerts
#   make test-spark   the same sample on Apache Spark (installs pyspark and dbt-spark)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Linting compiles the project against a scratch DuckDB file, never your warehouse.
LINT_DB := $(CURDIR)/.tmp/lint.duckdb

.DEFAULT_GOAL := help
.PHONY: help setup setup-postgres demo demo-attribution test bench lint format docs clean lock
.PHONY: lint-dbt evaluate orchestrate setup-spark test-spark test-postgres demo-spark

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

# pip's own output goes to this file; the terminal gets a count of the packages.
PIP_LOG := .tmp/pip-install.log

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "Python 3.10 or newer is needed (found $$($(PYTHON) --version))."; exit 1; }
	@mkdir -p .tmp && : > $(PIP_LOG)
	@echo "Creating $(VENV) and installing the $$(grep -c '==' requirements.lock) pinned packages of requirements.lock"
	@echo "  (1-3 minutes, mostly downloads; pip's output: $(PIP_LOG))..."
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --upgrade pip >> $(PIP_LOG) 2>&1 \
		|| { tail -n 20 $(PIP_LOG); echo "pip failed: the whole output is in $(PIP_LOG)."; exit 1; }
	@set -o pipefail; live=$$([ -t 1 ] && echo 1 || echo 0); \
	$(BIN)/python -m pip install -r requirements.lock 2>&1 | tee -a $(PIP_LOG) \
	| awk -v total=$$(grep -c '==' requirements.lock) -v live=$$live \
		'/^(Collecting|Requirement already satisfied:) / { n++; \
		  if (live) printf "\r  %d/%d packages", n, total; \
		  else if (n % 25 == 0) printf "  %d/%d packages\n", n, total; fflush() } \
		 END { if (live) printf "\r"; printf "  %d packages installed.\n", total }' \
	|| { tail -n 20 $(PIP_LOG); echo "pip failed: the whole output is in $(PIP_LOG)."; exit 1; }
	@$(BIN)/python -m pip install --no-deps -e . >> $(PIP_LOG) 2>&1 \
		|| { tail -n 20 $(PIP_LOG); echo "pip failed: the whole output is in $(PIP_LOG)."; exit 1; }
	@touch $@

profiles.yml:
	cp profiles.yml.example profiles.yml
	@echo "Created profiles.yml from profiles.yml.example (edit nothing: settings come from the environment)."

setup: $(STAMP) profiles.yml  ## create the virtual environment, install pinned dependencies, put the dbt profile in place

# Spark (the profile's `spark` target): pyspark and dbt-spark, pinned apart from
# requirements.lock (the main install stays without them), installed into the same .venv
# with requirements.lock as constraints, so nothing else in it changes.
SPARK_STAMP := $(VENV)/.installed-spark

$(SPARK_STAMP): requirements-spark.lock $(STAMP)
	@mkdir -p .tmp
	@echo "Installing the $$(grep -c '==' requirements-spark.lock) pinned packages of requirements-spark.lock into $(VENV)"
	@echo "  (pyspark is a 450 MB download; pip's output: $(PIP_LOG))..."
	@$(BIN)/python -m pip install -r requirements-spark.lock -c requirements.lock >> $(PIP_LOG) 2>&1 \
		|| { tail -n 20 $(PIP_LOG); echo "pip failed: the whole output is in $(PIP_LOG)."; exit 1; }
	@command -v java >/dev/null || echo "Warning: no java on the PATH; PySpark needs Java 17 (or 21)."
	@touch $@

setup-spark: setup $(SPARK_STAMP)  ## install pyspark and dbt-spark (requirements-spark.lock) into the venv

# The sample covers 2017-01-01 to 2017-04-30; the demo evaluates the marts at its end.
# The warehouse remembers that date: later builds without the var keep it.
DEMO_AS_OF ?= 2017-04-30
# dbt's per-node lines of every build the demo runs; the terminal gets progress lines.
DEMO_LOG := .tmp/demo-build.log

demo: export RUNNER_DBT_LOG := $(DEMO_LOG)
demo: setup  ## load the bundled sample into DuckDB, build everything, print what the marts hold
	@mkdir -p .tmp && : > $(DEMO_LOG)
	@echo "Loading the bundled sample (data/sample/) into warehouse.duckdb..."
	@$(BIN)/runner load web-events data/sample/web_events.jsonl
	@# full customer extracts, oldest first, each dated by the YYYY-MM-DD of its file name
	@for file in data/sample/store_customers_*.csv; do \
		$(BIN)/runner load store-customers "$$file" || exit 1; \
	done
	@$(BIN)/runner load store-sales data/sample/store_sales.csv
	@$(BIN)/runner load crm-customers data/sample/crm_customers.csv
	@$(BIN)/runner load crm-interactions data/sample/crm_interactions.csv
	@$(BIN)/runner load crm-products data/sample/crm_products.csv
	@$(BIN)/runner load app-sessions data/sample/app_sessions.jsonl
	@$(BIN)/runner load app-purchases data/sample/app_purchases.csv
	@$(BIN)/runner load app-contacts data/sample/app_contacts.csv
	@$(BIN)/runner load marketing data/sample/marketing
	@echo "Building the warehouse: every model, snapshot, seed and test (about a minute)..."
	@$(BIN)/runner build -- --vars '{as_of_date: $(DEMO_AS_OF)}'
	@echo "The two warnings are expected on the sample, which holds bad records on purpose:"
	@echo "  assert_no_app_events_after_as_of_date: 2 app events are dated after $(DEMO_AS_OF),"
	@echo "    so the engagement window leaves them out;"
	@echo "  quarantined_share_below: 2 of the 5 crm_products rows are quarantined, more than"
	@echo "    the 5% of the var quarantine_warn_share (the table below has the reasons)."
	@$(MAKE) --no-print-directory demo-attribution
	@echo
	@$(BIN)/runner summary
	@echo
	@echo "Next: 'source $(VENV)/bin/activate' puts runner and dbt on your PATH (the README's"
	@echo "commands are typed that way); then e.g. 'runner top-ltv 10', or the API on your"
	@echo "machine alone with no key: 'runner serve --no-auth' (README: The API, for keys)."
	@echo "A later 'runner build' or 'dbt build' keeps as_of_date $(DEMO_AS_OF) (the warehouse"
	@echo "remembers it); add --vars '{as_of_date: today}' to use the calendar again."

# make demo on Spark (the profile's `spark` target: local PySpark, its metastore and
# tables in SPARK_DATA_DIR, default .tmp/spark). Each runner command starts its own
# Spark session (about 20 s). No snapshot on Spark: the store customer history is
# rebuilt from the extracts in the build, and no attribution (README: Apache Spark).
DEMO_SPARK_LOG := .tmp/demo-spark-build.log

demo-spark: export RUNNER_DBT_LOG := $(DEMO_SPARK_LOG)
demo-spark: setup-spark  ## make demo on Apache Spark (local PySpark; installs pyspark and dbt-spark)
	@mkdir -p .tmp && : > $(DEMO_SPARK_LOG)
	@echo "Loading the bundled sample (data/sample/) into Spark ($${SPARK_DATA_DIR:-.tmp/spark})..."
	@$(BIN)/runner load web-events data/sample/web_events.jsonl --target spark
	@for file in data/sample/store_customers_*.csv; do \
		$(BIN)/runner load store-customers "$$file" --target spark || exit 1; \
	done
	@$(BIN)/runner load store-sales data/sample/store_sales.csv --target spark
	@$(BIN)/runner load crm-customers data/sample/crm_customers.csv --target spark
	@$(BIN)/runner load crm-interactions data/sample/crm_interactions.csv --target spark
	@$(BIN)/runner load crm-products data/sample/crm_products.csv --target spark
	@$(BIN)/runner load app-sessions data/sample/app_sessions.jsonl --target spark
	@$(BIN)/runner load app-purchases data/sample/app_purchases.csv --target spark
	@$(BIN)/runner load app-contacts data/sample/app_contacts.csv --target spark
	@$(BIN)/runner load marketing data/sample/marketing --target spark
	@echo "Building on Spark: every model, seed and test (a few minutes)..."
	@$(BIN)/runner build --target spark -- --vars '{as_of_date: $(DEMO_AS_OF)}'
	@echo "The two warnings are expected on the sample (see make demo)."
	@$(MAKE) --no-print-directory demo-attribution ATTRIBUTE_TARGET=spark
	@echo
	@$(BIN)/runner summary --target spark

# Attribution: the real IHC API when IHC_API_KEY is set, else the demo's own local
# emulator, on any free port (EMULATOR_PORT=N: on port N). The emulator checks that it
# is the one answering at its URL before `runner attribute` is run against it; a failed
# or incomplete attribution fails the demo.
IHC_CONV_TYPE_ID ?= default
export IHC_CONV_TYPE_ID
ATTRIBUTE_TARGET ?=
ATTRIBUTE := $(BIN)/runner attribute$(if $(ATTRIBUTE_TARGET), --target $(ATTRIBUTE_TARGET))
EMULATOR_LOG ?= .tmp/ihc-emulator.log

demo-attribution: setup
	@if [ -n "$${IHC_API_KEY:-}" ]; then \
		echo "IHC_API_KEY is set: attributing with the IHC API at $${IHC_API_URL:-https://api.ihc-attribution.com}."; \
		$(ATTRIBUTE); \
	else \
		echo "No IHC_API_KEY set: attributing with the local IHC emulator (runner ihc-emulator,"; \
		echo "a transparent stand-in model, not the real service; its log: $(EMULATOR_LOG))."; \
		mkdir -p "$(dir $(EMULATOR_LOG))"; \
		$(BIN)/runner ihc-emulator --log-file "$(EMULATOR_LOG)" -- $(ATTRIBUTE); \
	fi

setup-postgres: setup  ## create the BI role (bi_reader) on the PostgreSQL of the PG* variables
	$(BIN)/runner setup-postgres --target postgres

lint: setup  ## ruff, mypy (strict on runner/ and orchestration/), SQLFluff and the dbt metadata linter (dbt-score)
	$(BIN)/ruff check runner devtools orchestration python_tests
	$(BIN)/ruff format --check runner devtools orchestration python_tests
	$(BIN)/mypy
	@# the landing-table macro is generated from runner/sources.py: is it current?
	$(BIN)/python -m runner.sources --check
	@mkdir -p .tmp
	DUCKDB_PATH=$(LINT_DB) $(BIN)/sqlfluff lint models $(SQL_TESTS) snapshots --processes 2
	$(BIN)/sqlfluff lint $(SQL_MACROS) $(SQLFLUFF_MACRO_OPTIONS)
	@$(MAKE) --no-print-directory lint-dbt

# SQLFluff's dbt templater lints models and singular tests but skips files of macros
# (macros/, tests/generic/): their SQL is linted where a model calls them. A second
# pass reads those files with the jinja templater: tag spacing, line length,
# whitespace (layout.indent off: it wants Jinja blocks indented, the style does not).
SQL_TESTS = $(wildcard tests/*.sql)
SQL_MACROS = macros tests/generic
SQLFLUFF_MACRO_OPTIONS = --templater jinja --exclude-rules LT02
# The manifest the metadata linter reads, parsed against the scratch LINT_DB, in full
# (a partial parse once kept a stale snapshot and failed on a valid project).
LINT_TARGET := $(CURDIR)/.tmp/lint-target

lint-dbt: profiles.yml  ## the dbt metadata linter alone: dbt parse, then dbt-score (rules: pyproject.toml)
	@mkdir -p .tmp
	DUCKDB_PATH=$(LINT_DB) $(BIN)/dbt parse --quiet --no-partial-parse --project-dir $(CURDIR) --target duckdb --target-path $(LINT_TARGET)
	$(BIN)/dbt-score lint --manifest $(LINT_TARGET)/manifest.json

format: setup  ## fix what ruff and SQLFluff can fix
	$(BIN)/ruff check --fix runner devtools orchestration python_tests
	$(BIN)/ruff format runner devtools orchestration python_tests
	@mkdir -p .tmp
	DUCKDB_PATH=$(LINT_DB) $(BIN)/sqlfluff fix models $(SQL_TESTS) snapshots
	$(BIN)/sqlfluff fix $(SQL_MACROS) $(SQLFLUFF_MACRO_OPTIONS)

# The tests run once per warehouse (python_tests/conftest.py: TARGETS); pytest marks
# the PostgreSQL runs `postgres` and the Spark ones `spark`. `make test` runs the DuckDB
# runs and the tests of no warehouse; CI also runs test-postgres and test-spark, each
# its own step (.ci/run).
test: lint  ## the linters, then every test on DuckDB: runner tests, dbt build with every data and unit test
	$(BIN)/pytest -m 'not postgres and not spark'

test-postgres: setup  ## every test on PostgreSQL (a throwaway database on the server of the PG* variables)
	$(BIN)/pytest -m postgres

# The Spark tests alone (pytest marker `spark`, left out of `make test`), one process:
# the embedded metastore takes one Spark session at a time.
test-spark: setup-spark  ## the sample on Apache Spark, compared with DuckDB (python_tests/test_spark.py)
	$(BIN)/pytest -n 0 -m spark python_tests/test_spark.py

# Benchmarks: figures beside their references, written to BENCHMARKS.md. The default
# size fits in 15 minutes on 2 cores (9 more with pyspark installed: section 9, Spark);
# BENCH_SCALE=large adds 10M events (about an hour).
BENCH_SCALE ?= default

bench: setup  ## run the benchmarks and write BENCHMARKS.md (BENCH_SCALE=small|default|large)
	$(BIN)/python -m devtools.bench --scale $(BENCH_SCALE)

# Dagster (orchestration/; README: "Run it every day"): the web UI and the daemon on
# 127.0.0.1:DAGSTER_PORT, its SQLite storage in .tmp/dagster/home, sensors and schedules on.
# DuckDB by default (the runner's DUCKDB_PATH); DBT_TARGET=postgres for PostgreSQL (PG*).
# Files dropped into LANDING_DIR/<runner load subcommand>/ (default .tmp/landing/) land
# and build what depends on them. Attribution uses the IHC API when IHC_API_KEY is set,
# else the local emulator (as make demo does; its log: .tmp/ihc-emulator.log).
DAGSTER_PORT ?= 3000
DAGSTER_HOME_DIR := $(CURDIR)/.tmp/dagster/home

orchestrate: setup  ## Dagster's UI and daemon on http://127.0.0.1:3000 (DAGSTER_PORT=..., DBT_TARGET=postgres)
	@mkdir -p $(DAGSTER_HOME_DIR) && cp orchestration/dagster.yaml $(DAGSTER_HOME_DIR)/dagster.yaml
	@export DAGSTER_HOME=$(DAGSTER_HOME_DIR) DBT_TARGET=$${DBT_TARGET:-duckdb}; \
	dev="$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p $(DAGSTER_PORT)"; \
	echo "Dagster on http://127.0.0.1:$(DAGSTER_PORT), target $$DBT_TARGET; drop files into" \
		"$${LANDING_DIR:-.tmp/landing}/<runner load subcommand>/ (Ctrl-C stops it)."; \
	if [ -n "$${IHC_API_KEY:-}" ]; then exec $$dev; \
	else exec $(BIN)/runner ihc-emulator --log-file "$(EMULATOR_LOG)" -- $$dev; fi

# The docs site: lineage (sources, models, exposures) and the DuckDB warehouse's catalog.
DOCS_PORT ?= 8080

docs: setup  ## generate the dbt docs site and serve it on http://localhost:8080 (DOCS_PORT=...)
	$(BIN)/dbt docs generate --target duckdb
	$(BIN)/dbt docs serve --target duckdb --host 127.0.0.1 --port $(DOCS_PORT)

# dbt-project-evaluator, the yardstick for the conventions (README: "dbt-project-evaluator"),
# from local checkouts, since the dbt package hub may be unreachable; on a scratch copy.
EVALUATOR_DIR ?=
DBT_UTILS_DIR ?=

evaluate: setup  ## dbt-project-evaluator's checks on a scratch copy (EVALUATOR_DIR=... DBT_UTILS_DIR=...)
	$(BIN)/python -m devtools.evaluate --evaluator-dir "$(EVALUATOR_DIR)" --dbt-utils-dir "$(DBT_UTILS_DIR)"

lock:  ## re-pin every dependency after changing pyproject.toml
	rm -rf .tmp/lockenv && $(PYTHON) -m venv .tmp/lockenv
	.tmp/lockenv/bin/python -m pip install --quiet --upgrade pip
	.tmp/lockenv/bin/python -m pip install --quiet -e '.[dev]'
	{ echo "# Exact versions of every package, for identical installs everywhere (make setup)."; \
	  echo "# Regenerate after changing pyproject.toml: make lock"; \
	  .tmp/lockenv/bin/python -m pip freeze --exclude-editable; } > requirements.lock
	rm -rf .tmp/lockenv

clean:  ## remove build artefacts and the local warehouse (keeps the virtual environment)
	rm -rf target logs .tmp .pytest_cache .ruff_cache warehouse.duckdb warehouse.duckdb.wal warehouse.duckdb.serving
