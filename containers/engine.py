"""The one Engine interface every backend (local process, Docker, external URL, embedded) implements."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from harness.errors import Unsupported

BACKENDS = ("auto", "local", "docker", "external")


@runtime_checkable
class Engine(Protocol):
    """A running engine the source writes to and approaches read from (Jepsen's db + nemesis).

    Contract: ``start()`` returns when the engine answers (bounded by a timeout) or raises
    ``EngineUnavailable``/``EngineMisconfigured`` with the fix; ``stop()`` is idempotent and
    leaves nothing running and no slot/publication behind; ``kill()`` is abrupt (immediate
    shutdown / SIGKILL) and ``restart()`` brings it back with its data. ``url`` is how clients
    connect; ``backend`` is ``local|docker|external|embedded``; ``log_path`` is the server log.

    ``faults`` is the set of fault kinds the engine can inject (empty for an external engine:
    the harness never kills what it does not own); ``inject(kind, point, names)`` injects one,
    touching only objects named with the run's prefix ``names``, and raises ``Unsupported`` for
    a kind it does not declare. A scenario needing an undeclared fault is ``unsupported``
    before anything is written.
    """

    family: ClassVar[str]
    backend: str
    url: str
    faults: frozenset[str]

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def inject(self, kind: str, point: str, names: str) -> None: ...
    def log_path(self) -> Path | None: ...


def log_tail(path: Path | None, lines: int = 3) -> str:
    """The last ``lines`` lines of a server log on one line (for start-up errors)."""
    if path is None or not path.exists():
        return "(no log)"
    return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def private_dir(prefix: str) -> Path:
    """A fresh 0700 temp directory for one engine's data, marked with its owner process so the
    next session's leftover sweep removes it if this one is killed (``harness.lifecycle``)."""
    from harness.lifecycle import write_owner

    path = Path(tempfile.mkdtemp(prefix=f"cdc-{prefix}-"))
    os.chmod(path, 0o700)
    write_owner(path)
    return path


class EmbeddedEngine:
    """An embedded table-format engine: a private warehouse folder, no server (Delta, Iceberg).

    It declares no fault: nothing runs that could be killed (a reader crash is the capture
    loop's fault, not the engine's).
    """

    backend = "embedded"
    faults: frozenset[str] = frozenset()

    def __init__(self, family: str, root: Path | None = None) -> None:
        self.family = family
        self.root = root or private_dir(family)
        self._owns_root = root is None
        self.url = self.root.as_uri()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Nothing runs: an embedded engine cannot be killed (its writers can)."""

    def restart(self) -> None:
        """Nothing runs: the folder is the engine."""

    def inject(self, kind: str, point: str, names: str) -> None:
        raise Unsupported(f"embedded {self.family} engine declares no fault (asked for {kind!r})")

    def log_path(self) -> Path | None:
        return None


class DeltaWarehouse(EmbeddedEngine):
    """A folder of Delta tables read and written with delta-rs."""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__("delta", root)

    def table_path(self, table: str) -> Path:
        """Where ``table`` lives (what sources write and approaches read)."""
        return Path(self.root) / "delta" / table


class IcebergWarehouse(EmbeddedEngine):
    """A folder of Iceberg tables under a pyiceberg SQLite catalog.

    The catalog's name is unique per warehouse (``catalog_name``): Spark registers each
    warehouse as a catalog of that name in one shared session, and the SQLite catalog records
    it in every row, so pyiceberg and Spark must use the same one.
    """

    namespace = "cdc"

    def __init__(self, root: Path | None = None) -> None:
        super().__init__("iceberg", root)
        self.catalog_name = "cdc_" + "".join(c if c.isalnum() else "_" for c in Path(self.root).name).lower()

    def catalog(self):  # noqa: ANN201 - pyiceberg is optional at import time
        """The warehouse's SQLite-backed catalog (a new client each call: processes do not share)."""
        from pyiceberg.catalog.sql import SqlCatalog

        from harness.pyiceberg_memo import install

        install()  # commits that do not slow down with the table's history
        return SqlCatalog(self.catalog_name, uri=f"sqlite:///{self.root}/catalog.db",
                          warehouse=Path(self.root).as_uri())

    def identifier(self, table: str) -> str:
        """The catalog identifier of ``table``."""
        return f"{self.namespace}.{table}"
