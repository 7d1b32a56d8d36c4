"""The pytest plugin (``pytest11`` entry point): options, the approach hook, parametrization,
engines per worker, the results file and the terminal matrix."""

from __future__ import annotations

import atexit
import contextlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import hooks
from harness.approach import ApproachRegistry
from harness.errors import EngineUnavailable, HarnessError, UnknownId
from harness.families import FAMILIES, Family
from harness.options import Options, add_options, parse
from harness.results import merge_parts, now_iso, run_header, write_part
from scenarios import ScenarioRegistry, default_registry

STASH: pytest.StashKey[CdcSession] = pytest.StashKey()


@dataclass(frozen=True)
class Case:
    """One parameter of the conformance grid: approach × scenario × settings."""

    approach: type
    scenario: str
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        """Stable lowercase test id, e.g. ``delta-cdf-crud`` or ``pg-pgoutput-toast-replica-full``."""
        suffix = "".join(f"-{k.replace('_', '-')}-{v}" for k, v in self.settings)
        return f"{self.approach.name}-{self.scenario}{suffix}".lower()

    @property
    def family(self) -> Family:
        """The approach's engine family."""
        return FAMILIES[self.approach.family]


@dataclass
class CdcSession:
    """Per-session state: options, registries, started server engines, recorded results."""

    options: Options
    approaches: ApproachRegistry
    scenarios: ScenarioRegistry
    run_id: str
    worker: str
    started_at: str
    engines: dict[str, Any] = field(default_factory=dict)
    engine_errors: dict[str, str] = field(default_factory=dict)
    records: list[dict] = field(default_factory=list)
    capabilities: dict[str, dict] = field(default_factory=dict)
    config: Any = None

    def cases(self) -> list[Case]:
        """The selected approach × scenario × settings grid."""
        out: list[Case] = []
        for cls in self.approaches.select(self.options.approaches):
            family = FAMILIES.get(cls.family)
            for name in self.options.scenarios or self.scenarios.names():
                if not self.scenarios.applies(name, cls.family):
                    continue
                for variant in family.variants_for(name) if family else ({},):
                    out.append(Case(cls, name, tuple(sorted(variant.items()))))
        return out

    def engine(self, family: Family) -> Any:
        """The engine for a family: embedded ones fresh per call, servers once per worker."""
        provider = family.engine_provider()
        if family.embedded:
            return provider(family.name, self.options, self.worker, self.run_id)
        if family.name in self.engine_errors:
            raise EngineUnavailable(self.engine_errors[family.name])
        if family.name not in self.engines:
            try:
                self.engines[family.name] = provider(family.name, self.options, self.worker, self.run_id)
            except EngineUnavailable as exc:
                self.engine_errors[family.name] = str(exc)
                raise
        return self.engines[family.name]

    def progress(self, message: str) -> None:
        """Show a long phase's counts and rates in the terminal (quiet under -q)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter") if self.config else None
        if reporter is None or self.config.get_verbosity() < 0:
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            reporter.write_line(f"  [cdc] {message}")

    def stop_engines(self) -> None:
        """Stop every server engine started by this worker (idempotent)."""
        while self.engines:
            _, engine = self.engines.popitem()
            with contextlib.suppress(Exception):
                engine.stop()


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cdc: a conformance test of one approach × scenario")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    options = parse(config)
    approaches = ApproachRegistry()
    config.hook.pytest_cdc_approaches(registry=approaches)
    scenarios = default_registry()
    try:
        approaches.select(options.approaches)
        for name in options.scenarios or []:
            scenarios.get(name)
    except UnknownId as exc:
        raise pytest.UsageError(str(exc)) from None
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput.get("cdc_run_id") if workerinput else uuid.uuid4().hex[:8]
    worker = workerinput["workerid"] if workerinput else "main"
    session = CdcSession(options, approaches, scenarios, run_id, worker, now_iso())
    session.config = config
    config.stash[STASH] = session
    atexit.register(session.stop_engines)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand the controller's run id to each worker."""
    node.workerinput["cdc_run_id"] = node.config.stash[STASH].run_id


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cdc_case" in metafunc.fixturenames:
        session = metafunc.config.stash[STASH]
        cases = session.cases()
        metafunc.parametrize("cdc_case", cases, ids=[c.id for c in cases])


@pytest.fixture(scope="session")
def cdc_session(request: pytest.FixtureRequest) -> CdcSession:
    """The session state (options, registries, engines, results)."""
    return request.config.stash[STASH]


@pytest.fixture
def cdc_engine(cdc_case: Case, cdc_session: CdcSession) -> Any:
    """The engine for this case's family; unavailable engines skip with the fix."""
    try:
        engine = cdc_session.engine(cdc_case.family)
    except HarnessError as exc:
        pytest.skip(f"{cdc_case.family.name} engine unavailable: {exc}")
    yield engine
    if cdc_case.family.embedded:
        engine.stop()


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STASH, None)
    if state is None:
        return
    state.stop_engines()
    path = state.options.results
    if state.records or not hasattr(session.config, "workerinput"):
        write_part(path, state.worker, state.records, state.capabilities)
    if hasattr(session.config, "workerinput"):
        return
    header = run_header(state.run_id, state.started_at, state.options.seed, state.options.scale,
                        state.options.engines)
    doc = merge_parts(path, header)
    session.config.stash[RESULTS] = doc
    if state.options.pushgateway and doc["results"]:
        from reports.pushgateway import push_results

        push_results(state.options.pushgateway, doc)


RESULTS: pytest.StashKey[dict] = pytest.StashKey()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    doc = config.stash.get(RESULTS, None)
    if not doc or not doc["results"]:
        return
    from harness.matrix import render_matrix

    terminalreporter.section("cdc conformance matrix")
    for line in render_matrix(doc):
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"results: {config.stash[STASH].options.results}")
