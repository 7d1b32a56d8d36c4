"""The pytest plugin (``pytest11`` entry point): options, hooks, parametrization, the results
file and the terminal matrix. The fixtures live in ``fixtures/`` and are registered from here."""

from __future__ import annotations

import atexit
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures import session as fixture_module
from fixtures.session import STASH, CdcSession
from harness import hooks, lifecycle
from harness.approach import ApproachRegistry
from harness.errors import InvalidPlugin, UnknownId
from harness.families import FamilyRegistry, register_builtin
from harness.options import HEAVY_ROLES, add_options, parse
from harness.results import check_writable, merge_parts, now_iso, run_header, write_part
from scenarios import ScenarioRegistry, register_builtin_scenarios


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cdc_approaches(registry: ApproachRegistry) -> None:
    """Register the built-in approaches (those whose modules import here)."""
    from harness.approaches import builtin

    for cls in builtin.approach_classes():
        registry.register(cls)


@pytest.hookimpl(tryfirst=True)
def pytest_cdc_families(registry: FamilyRegistry) -> None:
    """Register the built-in families and engine roles."""
    register_builtin(registry)


@pytest.hookimpl(tryfirst=True)
def pytest_cdc_scenarios(registry: ScenarioRegistry) -> None:
    """Register the built-in scenarios."""
    register_builtin_scenarios(registry)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cdc: a conformance test of one approach × scenario")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "jvm_containers: starts Kafka/Connect JVMs of its own (in containers); "
                            "make test-docker runs it, make test leaves it out (one JVM per engine per session)")
    options = parse(config)
    approaches, families, scenarios = ApproachRegistry(), FamilyRegistry(), ScenarioRegistry()
    try:
        config.hook.pytest_cdc_families(registry=families)
        config.hook.pytest_cdc_scenarios(registry=scenarios)
        config.hook.pytest_cdc_approaches(registry=approaches)
        for cls in approaches.select(None):
            families.validate(cls)
        approaches.select(options.approaches)
        for name in options.scenarios or []:
            scenarios.get(name)
        for family in options.engine_urls:
            if family not in families.roles:
                raise UnknownId(f"--cdc-engine-url names {family!r}, which is no engine role; "
                                f"known: {', '.join(sorted(families.roles))}")
        from containers.docker_api import IMAGES

        with_image = sorted(set(families.roles) & set(IMAGES))
        for family in options.images:
            if family not in with_image:
                raise UnknownId(f"--cdc-image names {family!r}, which has no Docker backend here; "
                                f"known: {', '.join(with_image)}")
    except (UnknownId, InvalidPlugin) as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput.get("cdc_run_id") if workerinput else uuid.uuid4().hex[:8]
    worker = workerinput["workerid"] if workerinput else "main"
    session = CdcSession(options, approaches, scenarios, families, run_id, worker, now_iso())
    session.config = config
    config.stash[STASH] = session
    if not config.pluginmanager.is_registered(fixture_module):
        config.pluginmanager.register(fixture_module, "cdc_fixtures")
    if not config.pluginmanager.is_registered(lifecycle):  # leftovers, explicit engines, masked reports
        config.pluginmanager.register(lifecycle, "cdc_lifecycle")
    previous = lifecycle.install_sigterm()  # SIGTERM ends the session like Ctrl-C
    config.add_cleanup(lambda: lifecycle.restore_sigterm(previous))
    atexit.register(session.stop_engines)
    if workerinput is None:
        config.stash[LOAD_AT_START] = os.getloadavg()[0]  # for the results history


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's run id to each worker."""
    node.workerinput["cdc_run_id"] = node.config.stash[STASH].run_id


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: take a finished worker's engine versions and backends (for the environment report)."""
    state = node.config.stash.get(STASH, None)
    engines = getattr(node, "workeroutput", {}).get(WORKER_ENGINES)
    if state is not None and engines:
        state.engine_versions.update(engines["versions"])
        for role, backend in engines["backends"].items():
            state.engine_backends.setdefault(role, backend)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Give a conformance case its place in Allure (family → approach → scenario) before its
    fixtures run, so a case skipped in set-up is in the tree too."""
    case = getattr(item, "callspec", None) and item.callspec.params.get("cdc_case")
    if case is None or not item.config.getoption("allure_report_dir", None):
        return
    from reports.allure_tree import label_case

    state = item.config.stash[STASH]
    label_case(case, state.scenarios.kind(case.scenario), state.options.seed, state.options.scale_for(case.roles))


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Title a conformance case in Allure (after set-up, where allure-pytest names the test)."""
    case = getattr(item, "callspec", None) and item.callspec.params.get("cdc_case")
    if case is not None and item.config.getoption("allure_report_dir", None):
        from reports.allure_tree import title_case

        title_case(case)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cdc_case" in metafunc.fixturenames:
        session = metafunc.config.stash[STASH]
        cases = session.cases()
        metafunc.parametrize("cdc_case", [pytest.param(c, id=c.id, marks=_group(c)) for c in cases])


def _group(case: Any) -> tuple[Any, ...]:
    """xdist: the cases on heavy engines (one JVM per engine and worker) form groups, so that
    under ``--dist loadgroup`` a single worker starts those engines: Kafka + Connect cases in
    ``heavy-engines``, Spark-only cases in ``spark-engine`` (the two groups may run side by side).
    A case on Kafka/Connect *and* Spark (``pg-kafka-iceberg-spark``) goes with Kafka's: one Spark
    JVM more on that worker, instead of a broker and a Connect worker more on the Spark one."""
    heavy = set(case.roles) & HEAVY_ROLES
    if not heavy:
        return ()
    return (pytest.mark.xdist_group("spark-engine" if heavy == {"spark"} else "heavy-engines"),)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, not after the last test, when the results file cannot be written."""
    state = session.config.stash.get(STASH, None)
    if state is None or hasattr(session.config, "workerinput"):
        return
    path = state.options.results
    why = check_writable(path)
    if why:
        raise pytest.UsageError(f"cannot write the results file {path}: {why}; "
                                "fix: pass --cdc-results=PATH (or ini cdc_results) in a writable directory")
    history = state.options.history
    why = check_writable(history) if history else None
    if why:
        raise pytest.UsageError(f"cannot write the results history {history}: {why}; "
                                "fix: pass --cdc-history=PATH in a writable directory, or --cdc-history=off")


def _interrupted(session: pytest.Session, exitstatus: int, state: CdcSession) -> str | None:
    """Why the run was cut short (Ctrl-C, SIGTERM, a stop or -x), or None when it ran to its end."""
    for reason in (getattr(state, "interrupted", None), session.shouldstop, session.shouldfail):
        if reason:
            return reason if isinstance(reason, str) else "stopped"
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        return "KeyboardInterrupt: Ctrl-C, SIGTERM or pytest.exit"
    return None


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(STASH, None)
    if state is None:
        return
    state.stop_engines()
    path = state.options.results
    if hasattr(session.config, "workerinput"):
        if state.records:
            write_part(path, state.run_id, state.worker, state.records, state.capabilities)
        session.config.workeroutput[WORKER_ENGINES] = {"versions": state.engine_versions,
                                                       "backends": state.engine_backends}
        return
    header = run_header(state.run_id, state.started_at, state.options.seed, state.options.scale,
                        state.options.engines, _interrupted(session, exitstatus, state))
    try:
        doc, notes = merge_parts(path, header, state.records, state.capabilities)
    except OSError as exc:
        doc, notes = None, [f"results not written to {path}: {exc}"]
    session.config.stash[RESULTS] = doc
    session.config.stash[NOTES] = (header, notes)
    alluredir = session.config.getoption("allure_report_dir", None)
    if alluredir:
        _write_allure_run(Path(alluredir), header, state)
    if state.options.pushgateway and doc:
        from reports.pushgateway import push_results

        push_results(state.options.pushgateway, doc)
    if state.options.history:
        session.config.stash[HISTORY_NOTE] = _append_history(session.config, state, header, doc)


def _append_history(config: pytest.Config, state: CdcSession, header: dict, doc: dict | None) -> str | None:
    """Once per session (the controller): append the run's results and pytest-benchmark's figures
    (its session, in this process: stats are computed before this hook) to the DuckDB history.
    Returns the line for the terminal; a failure is a line too, never an error of the run."""
    from reports.history_store import HistoryError, record_session

    bench_session = getattr(config, "_benchmarksession", None)
    benchmarks = [b.as_dict(include_data=False) for b in getattr(bench_session, "benchmarks", []) if b]
    t0 = time.perf_counter()
    try:
        line = record_session(state.options.history, header, doc, benchmarks,
                              engine_versions=state.engine_versions, engine_backends=state.engine_backends,
                              heavy_scale=state.options.heavy_scale, load_start=config.stash.get(LOAD_AT_START, None),
                              git_dir=Path(__file__).resolve().parents[1])
    except (HistoryError, OSError) as exc:
        return f"history: not written: {exc}"
    return line and f"{line}, {1000 * (time.perf_counter() - t0):.0f} ms"


def _write_allure_run(alluredir: Path, header: dict, state: CdcSession) -> None:
    """Once per session (the controller): Allure's categories, environment and executor for this run."""
    from reports.allure_categories import write_categories
    from reports.allure_environment import environment, executor, write_environment, write_executor

    try:
        write_categories(alluredir)
        write_environment(alluredir, environment(header, state.engine_versions, state.engine_backends,
                                                 state.options.heavy_scale))
        write_executor(alluredir, executor(state.run_id))
    except OSError as exc:
        state.progress(f"Allure categories/environment not written to {alluredir}: {exc}")


#: xdist: the key of a worker's engine versions and backends in its ``workeroutput``
WORKER_ENGINES = "cdc_engines"
RESULTS: pytest.StashKey[dict | None] = pytest.StashKey()
NOTES: pytest.StashKey[tuple[dict, list[str]]] = pytest.StashKey()
HISTORY_NOTE: pytest.StashKey[str | None] = pytest.StashKey()
LOAD_AT_START: pytest.StashKey[float] = pytest.StashKey()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    doc = config.stash.get(RESULTS, None)
    header, notes = config.stash.get(NOTES, ({}, []))
    history = config.stash.get(HISTORY_NOTE, None)
    if not doc and not notes:
        if history:  # a benchmark-only run: no results file, its benchmarks are in the history
            terminalreporter.write_line(history)
        return  # no cdc test ran: say nothing (and nothing was written)
    from harness.matrix import render_matrix

    terminalreporter.section("cdc conformance matrix")
    for line in render_matrix(doc or {"run": header, "results": []}):
        terminalreporter.write_line(line)
    for line in notes:
        terminalreporter.write_line(line)
    path = config.stash[STASH].options.results
    terminalreporter.write_line(f"results: {path}" if doc else f"results: none recorded; {path} left as it was")
    if history:
        terminalreporter.write_line(history)
