"""Where a conformance case sits in Allure: suite tree, behaviors, title and readable parameters.

Suites tab: ``parentSuite`` = engine family (``pipeline`` for a whole pipeline under test),
``suite`` = approach with its settings (``pg-pgoutput · replica_identity=full``, as a matrix row),
``subSuite`` = scenario. Behaviors tab: epic = family, feature = approach, story = what the
scenario exercises (``ScenarioRegistry.kind``). The raw ``cdc_case`` parameter (a Python repr) is
hidden and kept out of the history id; the approach, scenario, settings, seed and scale are the
readable parameters that identify a result across runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    import allure
    from allure_commons.types import ParameterMode
except ImportError:  # pragma: no cover - allure-pytest is a dependency
    allure = None

#: the engine role that makes a case a whole pipeline under test (source → Kafka → sink)
PIPELINE_ROLE = "sink"
SEP = " · "


@dataclass(frozen=True)
class CasePlace:
    """A case's Allure labels, title and identifying parameters (pure data, for tests and tools)."""

    parent_suite: str
    suite: str
    sub_suite: str
    epic: str
    feature: str
    story: str
    title: str
    tags: tuple[str, ...]
    parameters: tuple[tuple[str, Any], ...]


def family_of(case: Any) -> str:
    """The top of the tree: the case's engine family, or ``pipeline`` for a pipeline approach."""
    return "pipeline" if PIPELINE_ROLE in case.roles else case.family.name


def suite_name(approach: str, settings: tuple[tuple[str, Any], ...]) -> str:
    """``approach · k=v · k=v`` (settings sorted as the case holds them)."""
    return SEP.join([approach, *(f"{k}={v}" for k, v in settings)])


def place(case: Any, kind: str, seed: int, scale: str) -> CasePlace:
    """Where ``case`` goes; ``kind`` is its scenario's kind (``ScenarioRegistry.kind``)."""
    family = family_of(case)
    suite = suite_name(case.approach.name, case.settings)
    # the engines the approach or writer adds (kafka, connect, spark) are tags
    extra = tuple(r for r in case.roles if r not in case.family.roles)
    params = (("approach", case.approach.name), ("scenario", case.scenario),
              *((str(k), v) for k, v in case.settings), ("seed", seed), ("scale", scale))
    return CasePlace(parent_suite=family, suite=suite, sub_suite=case.scenario, epic=family,
                     feature=case.approach.name, story=kind, title=f"{suite}{SEP}{case.scenario}",
                     tags=extra, parameters=params)


def label_case(case: Any, kind: str, seed: int, scale: str) -> CasePlace:
    """Put the running test in its place (call while it runs, before its fixtures: a skip in
    set-up keeps the labels); a no-op without allure-pytest."""
    where = place(case, kind, seed, scale)
    if allure is None:
        return where
    dyn = allure.dynamic
    # named like the pytest parameter, so allure-pytest does not add the repr; kept out of the history id
    dyn.parameter("cdc_case", case.id, excluded=True, mode=ParameterMode.HIDDEN)
    dyn.parent_suite(where.parent_suite)
    dyn.suite(where.suite)
    dyn.sub_suite(where.sub_suite)
    dyn.epic(where.epic)
    dyn.feature(where.feature)
    dyn.story(where.story)
    dyn.label("approach", case.approach.name)
    dyn.label("scenario", case.scenario)
    if where.tags:
        dyn.tag(*where.tags)
    for name, value in where.parameters:
        dyn.parameter(name, value)
    return where


def title_case(case: Any) -> None:
    """Name the running test ``approach · settings · scenario`` (call after its set-up:
    allure-pytest names the test when set-up ends); a no-op without allure-pytest."""
    if allure is not None:
        allure.dynamic.title(f"{suite_name(case.approach.name, case.settings)}{SEP}{case.scenario}")
