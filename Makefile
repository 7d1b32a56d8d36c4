# cdc-harness: the two commands of the README are `make run` and `make test`; both set up first.
PYTHON ?= python3
PYTEST ?= $(PYTHON) -m pytest
RESULTS ?= reports/out/results.json
SCALE ?= default
APPROACHES ?=
ENGINE ?=
SELECT = $(if $(APPROACHES),--cdc-approaches=$(APPROACHES),)
STAMP = .cache/setup.stamp

.PHONY: setup run test bench report clean

$(STAMP): pyproject.toml package.json scripts/setup-postgres.sh scripts/setup-reports.sh
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[all]'
	bash scripts/setup-postgres.sh
	bash scripts/setup-reports.sh
	mkdir -p .cache && touch $(STAMP)

setup: $(STAMP)  ## install Python packages, PostgreSQL 15 + wal2json, pushgateway, promtool, chromium, Allure

run: setup  ## the main job: the conformance suite on every available engine, matrix + results JSON + HTML
	$(PYTEST) suites/test_conformance.py --cdc-scale=$(SCALE) --cdc-results=$(RESULTS) $(SELECT) \
		--alluredir=allure-results --clean-alluredir -q
	$(PYTHON) -m reports.html $(RESULTS) -o reports/out/report.html

test: setup  ## the harness's own tests and the conformance suite (as CI runs them)
	$(PYTEST) tests suites --cdc-scale=$(SCALE) --cdc-results=$(RESULTS) $(SELECT) \
		--alluredir=allure-results --clean-alluredir

bench: setup  ## benchmarks with figures in extra_info (compare runs with pytest-benchmark compare)
	$(PYTEST) suites --benchmark-only --benchmark-autosave $(SELECT)

report:  ## HTML matrix and Allure report from the last run
	$(PYTHON) -m reports.html $(RESULTS) -o reports/out/report.html
	bash scripts/allure-report.sh

clean:
	rm -rf .cache allure-results allure-report reports/out .benchmarks
