"""The JVM jars' freshness check: jars resolved from another pom or set-up script are refused with "make setup"
(a jar added since, e.g. Spark's Kafka source, would otherwise be missing only inside a run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from containers.jvm import PROJECT, RESOLVED_FROM, check_jars_current, jars_hash
from harness.errors import EngineUnavailable


def test_the_stamp_is_the_one_the_set_up_writes() -> None:
    """Same hash as ``scripts/setup-jvm.sh`` computes (``sha256sum pom script | sha256sum``)."""
    if shutil.which("sha256sum") is None:
        pytest.skip("no sha256sum (coreutils) to compute the set-up's stamp with; fix: apt-get install coreutils")
    script = f"sha256sum {' '.join(RESOLVED_FROM)} | sha256sum | cut -c1-16"
    out = subprocess.run(["bash", "-c", script], cwd=PROJECT, check=True, capture_output=True, text=True).stdout
    assert jars_hash() == out.strip()


def _project(tmp_path: Path, pom: str) -> Path:
    for name in RESOLVED_FROM:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(pom if name.endswith("pom.xml") else "#!/bin/bash\n")
    return tmp_path


def test_jars_of_this_pom_pass_and_of_another_fail(tmp_path: Path) -> None:
    project = _project(tmp_path / "checkout", "<project>with the Kafka source</project>")
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / ".stamp").write_text(f"{jars_hash(project)}\n")
    check_jars_current(jars, project)
    (project / RESOLVED_FROM[0]).write_text("<project>a jar more</project>")
    with pytest.raises(EngineUnavailable, match="out of date.*fix: make setup"):
        check_jars_current(jars, project)


def test_jars_without_a_stamp_are_taken_as_they_are(tmp_path: Path) -> None:
    check_jars_current(tmp_path, _project(tmp_path / "checkout", "<project/>"))
