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
# the PostgreSQL and MariaDB cells `make test` also runs on the Docker backend (podman here), at
# smoke scale: the faults (source-restart: kill + restart through the container API; net-drop;
# net-partition: the container off its network and back, which only a container can do) and
# what depends on the image's server build (types, TOAST, generated columns: the Docker backend's
# MariaDB is 11.8, the local one 10.11); `make test DOCKER_SCENARIOS=` runs all of them. One
# process: with two xdist workers each starts its own podman service and container (41 s vs 58 s)
DOCKER_SCENARIOS ?= crud,types,toast,source-restart,net-drop,net-partition,generated-columns
DOCKER_RESULTS ?= reports/out/results-docker.json
DOCKER_SELECT = --cdc-engines=docker --cdc-approaches=pg-pgoutput,pg-wal2json,mysql-binlog \
	$(if $(DOCKER_SCENARIOS),--cdc-scenarios=$(DOCKER_SCENARIOS),) -k '$(DOCKER_DESELECT)'
# net-partition waits out a half-open stream (15 s a cell): make test keeps one PostgreSQL cell
# (pg-wal2json shares pg-pgoutput's reader code) and mysql-binlog's; `DOCKER_DESELECT=` runs all
DOCKER_DESELECT ?= not (net-partition and (wal2json or replica-identity-default))
SELECT = $(if $(APPROACHES),--cdc-approaches=$(APPROACHES),)
# two xdist workers; the cases on JVM engines (Kafka, Connect) stay together on one of them
XDIST ?= -n 2 --dist loadgroup
# CI runs the JVM engines' cases at smoke scale (one JVM per engine, shared by the cases)
HEAVY_SCALE ?= smoke
# make test runs the light engines' cells at smoke scale too (its 20-minute budget); make run at SCALE
TEST_SCALE ?= smoke
# and in core breadth (harness/breadth.py: interop and delivery variants sampled); HEAVY_CELLS=all for every cell
HEAVY_CELLS ?= core
STAMP = .cache/setup.stamp
# Inside the virtualenv (deleting .venv re-runs the set-up); it holds the PYTHON it was made with:
# another PYTHON re-runs the set-up, and scripts/setup-venv.sh re-makes .venv if the interpreter differs.
VENV_STAMP = $(VENV)/.setup.stamp
ifneq ($(shell cat $(VENV_STAMP) 2>/dev/null),$(PYTHON))
VENV_REDO = FORCE
endif

.PHONY: setup setup-docker venv run test test-docker bench ladder report clean FORCE
DOCKER_RECIPES = scripts/setup-docker.sh $(wildcard containers/images/*/*) containers/jvm/log4j2.properties

$(VENV_STAMP): pyproject.toml scripts/setup-venv.sh $(VENV_REDO)
	PYTHON='$(PYTHON)' VENV='$(VENV)' bash scripts/setup-venv.sh
	echo '$(PYTHON)' >$@

$(STAMP): $(VENV_STAMP) package.json package-lock.json scripts/setup-postgres.sh scripts/setup-mariadb.sh \
		scripts/setup-reports.sh scripts/setup-jvm.sh containers/jvm/pom.xml $(DOCKER_RECIPES)
	bash scripts/setup-postgres.sh
	bash scripts/setup-mariadb.sh
	bash scripts/setup-reports.sh
	bash scripts/setup-jvm.sh
	bash scripts/setup-docker.sh
	mkdir -p .cache && touch $(STAMP)

venv: $(VENV_STAMP)  ## only the virtualenv and the Python packages (no apt, no npm)

setup: $(STAMP)  ## virtualenv + Python packages, PostgreSQL 15 + wal2json, MariaDB, pushgateway, promtool, chromium, Java, Allure, Kafka/Connect/Debezium jars, podman + engine images

setup-docker:  ## only the Docker backend: podman, the base image and the engine images (rebuilt when a recipe changed)
	bash scripts/setup-docker.sh

run: setup  ## the main job: the conformance suite on every available engine, matrix + results JSON + HTML
	$(PYTEST) suites/test_conformance.py --cdc-scale=$(SCALE) --cdc-results=$(RESULTS) $(SELECT) $(XDIST) \
		--alluredir=allure-results --clean-alluredir -q
	$(VPYTHON) -m reports.html $(RESULTS) -o reports/out/report.html

test: setup  ## the harness's own tests and the conformance suite (as CI runs them)
	$(PYTEST) tests suites -m "not jvm_containers" --cdc-scale=$(TEST_SCALE) --cdc-heavy-scale=$(HEAVY_SCALE) --cdc-heavy-cells=$(HEAVY_CELLS) --cdc-results=$(RESULTS) \
		$(SELECT) $(XDIST) --alluredir=allure-results --clean-alluredir
	$(PYTEST) suites/test_conformance.py $(DOCKER_SELECT) --cdc-scale=smoke --cdc-results=$(DOCKER_RESULTS) -q

test-docker: setup  ## every PostgreSQL and MariaDB cell, Debezium's too (Kafka + Connect containers), and the Spark readers over a Spark Connect container, on the Docker backend (podman's service when no Docker daemon answers)
	$(PYTEST) suites/test_conformance.py --cdc-engines=docker \
		--cdc-approaches=pg-pgoutput,pg-wal2json,mysql-binlog,pg-debezium,mariadb-debezium,delta-cdf-spark,iceberg-changelog-spark \
		--cdc-scale=$(SCALE) --cdc-heavy-scale=$(HEAVY_SCALE) --cdc-heavy-cells=$(HEAVY_CELLS) \
		--cdc-results=$(DOCKER_RESULTS) $(XDIST) -q
	$(PYTEST) tests/test_docker_backend.py -m jvm_containers -q

bench: setup  ## benchmarks with figures in extra_info (compare runs with pytest-benchmark compare)
	$(PYTEST) suites --benchmark-only --benchmark-autosave $(SELECT)

ladder: setup  ## the rate ladder: lag vs offered rate for every approach (--cdc-approaches via SELECT; ~15 min), figures in reports/out/ladder.json, charts in the HTML report beside the last run's results
	mkdir -p reports/out
	$(PYTEST) suites/test_rate_ladder.py --benchmark-only --benchmark-json=reports/out/ladder.json $(SELECT)
	-$(VPYTHON) -m reports.html $(RESULTS) -o reports/out/report.html --benchmark-json=reports/out/ladder.json

report: setup  ## HTML matrix and Allure report from the last run (Allure's trend: on the previous report's history)
	$(VPYTHON) -m reports.html $(RESULTS) -o reports/out/report.html
	bash scripts/allure-report.sh
	-$(VPYTHON) -m reports.allure_shot allure-report/index.html -o reports/out

clean:
	rm -rf .cache allure-results allure-report reports/out .benchmarks
