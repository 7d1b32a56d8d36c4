# cdc-harness: the two commands of the README are `make run` and `make test`; both set up first.
# `make setup` makes a project virtualenv (.venv) from PYTHON and installs the project into it;
# every target runs the virtualenv's Python, nothing goes into the system Python.
PYTHON ?= python3
VENV ?= .venv
VPYTHON = $(VENV)/bin/python
PYTEST ?= $(VPYTHON) -m pytest
RESULTS ?= reports/out/results.json
SCALE ?= default
APPROACHES ?=
ENGINE ?=
SELECT = $(if $(APPROACHES),--cdc-approaches=$(APPROACHES),)
# two xdist workers; the cases on JVM engines (Kafka, Connect) stay together on one of them
XDIST ?= -n 2 --dist loadgroup
# CI runs the JVM engines' cases at smoke scale (one JVM per engine, shared by the cases)
HEAVY_SCALE ?= smoke
STAMP = .cache/setup.stamp
# Inside the virtualenv (deleting .venv re-runs the set-up); it holds the PYTHON it was made with:
# another PYTHON re-runs the set-up, and scripts/setup-venv.sh re-makes .venv if the interpreter differs.
VENV_STAMP = $(VENV)/.setup.stamp
ifneq ($(shell cat $(VENV_STAMP) 2>/dev/null),$(PYTHON))
VENV_REDO = FORCE
endif

.PHONY: setup venv run test bench report clean FORCE

$(VENV_STAMP): pyproject.toml scripts/setup-venv.sh $(VENV_REDO)
	PYTHON='$(PYTHON)' VENV='$(VENV)' bash scripts/setup-venv.sh
	echo '$(PYTHON)' >$@

$(STAMP): $(VENV_STAMP) package.json package-lock.json scripts/setup-postgres.sh scripts/setup-mariadb.sh \
		scripts/setup-reports.sh scripts/setup-jvm.sh containers/jvm/pom.xml
	bash scripts/setup-postgres.sh
	bash scripts/setup-mariadb.sh
	bash scripts/setup-reports.sh
	bash scripts/setup-jvm.sh
	mkdir -p .cache && touch $(STAMP)

venv: $(VENV_STAMP)  ## only the virtualenv and the Python packages (no apt, no npm)

setup: $(STAMP)  ## virtualenv + Python packages, PostgreSQL 15 + wal2json, MariaDB, pushgateway, promtool, chromium, Java, Allure, Kafka/Connect/Debezium jars

run: setup  ## the main job: the conformance suite on every available engine, matrix + results JSON + HTML
	$(PYTEST) suites/test_conformance.py --cdc-scale=$(SCALE) --cdc-results=$(RESULTS) $(SELECT) $(XDIST) \
		--alluredir=allure-results --clean-alluredir -q
	$(VPYTHON) -m reports.html $(RESULTS) -o reports/out/report.html

test: setup  ## the harness's own tests and the conformance suite (as CI runs them)
	$(PYTEST) tests suites --cdc-scale=$(SCALE) --cdc-heavy-scale=$(HEAVY_SCALE) --cdc-results=$(RESULTS) \
		$(SELECT) $(XDIST) --alluredir=allure-results --clean-alluredir

bench: setup  ## benchmarks with figures in extra_info (compare runs with pytest-benchmark compare)
	$(PYTEST) suites --benchmark-only --benchmark-autosave $(SELECT)

report: setup  ## HTML matrix and Allure report from the last run (Allure's trend: on the previous report's history)
	$(VPYTHON) -m reports.html $(RESULTS) -o reports/out/report.html
	bash scripts/allure-report.sh
	-$(VPYTHON) -m reports.allure_shot allure-report/index.html -o reports/out

clean:
	rm -rf .cache allure-results allure-report reports/out .benchmarks
