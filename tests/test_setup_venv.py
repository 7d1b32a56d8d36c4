"""The README's set-up works with Debian's own interpreter and installs nothing into it.

Debian 12 and Ubuntu >= 23.04 refuse `pip install` into the system Python (PEP 668,
externally-managed-environment), so a set-up that installs system-wide fails here. In a throwaway
clone, `make venv PYTHON=/usr/bin/python3` (the set-up's Python part: the project virtualenv and
`pip install -e '.[all]'` into it, no apt or npm) must give a `.venv` built on that interpreter
that imports the harness and its engines' libraries, while the system Python's installed
distributions stay exactly as they were. The clone takes the set-up files (Makefile,
pyproject.toml, scripts/) from the working tree, so uncommitted set-up changes are what is tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
SETUP_FILES = ("Makefile", "pyproject.toml", "scripts")
# Every installed distribution of an interpreter, user site included: name, version and location.
LIST_DISTRIBUTIONS = (
    "import importlib.metadata as m\n"
    "for d in sorted(m.distributions(), key=lambda d: str(getattr(d, '_path', ''))):\n"
    "    print(d.metadata['Name'], d.version, getattr(d, '_path', ''))\n"
)

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """The caller's environment without what would leak an outer make, venv or Python into the set-up."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
            "PYTHONUSERBASE", "PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_BREAK_SYSTEM_PACKAGES"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # The outer virtualenv's bin/ first on PATH would shadow the system's tools for the set-up.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not Path(p, "activate").is_file())
    return env


def run(cmd: list[str], cwd: Path | None = None, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=clean_env() | env, capture_output=True, text=True, timeout=timeout)


def system_distributions() -> str:
    out = run([str(SYSTEM_PYTHON), "-c", LIST_DISTRIBUTIONS])
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_setup_makes_a_venv_from_debians_python(tmp_path: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no {SYSTEM_PYTHON} (not a Debian/Ubuntu system interpreter): nothing to check")
    for tool in ("git", "make"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}: apt-get install -y {tool}")
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout: nothing to clone")
    has_venv = run([str(SYSTEM_PYTHON), "-c", "import venv, ensurepip"]).returncode == 0
    if not has_venv and os.geteuid() != 0:
        pytest.skip(f"{SYSTEM_PYTHON} has no venv module and we are not root: apt-get install -y python3-venv")
    old = run([str(SYSTEM_PYTHON), "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode != 0

    clone = tmp_path / "clone"
    # The checkout may belong to another user (CI containers): git refuses to clone it unless it is a
    # safe.directory, which git 2.39 takes only from the system or global config. This clone only reads it.
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[safe]\n\tdirectory = *\n")
    cloned = run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], GIT_CONFIG_GLOBAL=str(gitconfig))
    assert cloned.returncode == 0, cloned.stderr
    for name in SETUP_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, clone / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, clone / name)

    before = system_distributions()
    try:
        # PIP_COMPILE=0: pip skips byte-compiling what it installs (half of the time); nothing else changes.
        made = run(["make", "venv", f"PYTHON={SYSTEM_PYTHON}"], cwd=clone, timeout=900, PIP_COMPILE="0")
        log = f"make venv PYTHON={SYSTEM_PYTHON}:\n{made.stdout}\n{made.stderr}"
        if old:
            # Debian 11 and older: the set-up refuses in one line, naming what to install.
            assert made.returncode != 0, log
            assert "3.11" in made.stderr, log
            return
        assert made.returncode == 0, log
        venv_python = clone / ".venv" / "bin" / "python"
        imported = run([str(venv_python), "-c", "import harness, polars, deltalake, pyiceberg, psycopg; "
                        "import sys; print(sys.base_prefix)"])
        assert imported.returncode == 0, imported.stderr
        # Built on the interpreter asked for, not on whatever python3 is first on PATH.
        base = run([str(SYSTEM_PYTHON), "-c", "import sys; print(sys.base_prefix)"]).stdout
        assert imported.stdout == base, (imported.stdout, base)
        # The harness imported from the clone (editable install), not from the checkout running this test.
        where = run([str(venv_python), "-c", "import harness; print(harness.__file__)"], cwd=tmp_path)
        assert where.stdout.startswith(str(clone)), where.stdout

        # Nothing installed into (or removed from) the system Python, user site included.
        assert system_distributions() == before
        assert run([str(SYSTEM_PYTHON), "-c", "import harness"], cwd=tmp_path).returncode != 0

        # Every target runs the virtualenv's Python.
        for target in ("run", "test", "bench", "report"):
            dry = run(["make", "-n", target, f"PYTHON={SYSTEM_PYTHON}"], cwd=clone)
            assert dry.returncode == 0, dry.stderr
            lines = [ln for ln in dry.stdout.splitlines() if " -m pytest" in ln or " -m reports" in ln]
            assert lines, f"make -n {target}: no pytest or reports command in\n{dry.stdout}"
            for line in lines:
                assert line.lstrip().startswith(".venv/bin/python -m "), f"make {target} runs: {line}"

        # Idempotent: nothing to do a second time.
        again = run(["make", "venv", f"PYTHON={SYSTEM_PYTHON}"], cwd=clone)
        assert again.returncode == 0, again.stderr
        assert "setup-venv" not in again.stdout + again.stderr, again.stdout + again.stderr
    finally:
        # A virtualenv with pyarrow, polars and deltalake weighs ~1 GB: don't keep it in pytest's tmp dirs.
        shutil.rmtree(clone, ignore_errors=True)
