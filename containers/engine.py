"""The one Engine interface every backend (local process, Docker, external URL, embedded) implements."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

BACKENDS = ("auto", "local", "docker", "external")


@runtime_checkable
class Engine(Protocol):
    """A running engine the source writes to and approaches read from.

    Contract: ``start()`` returns when the engine answers (bounded by a timeout) or raises
    ``EngineUnavailable``/``EngineMisconfigured`` with the fix; ``stop()`` is idempotent and
    leaves nothing running and no slot/publication behind; ``kill()`` is abrupt (immediate
    shutdown / SIGKILL) and ``restart()`` brings it back with its data. ``url`` is how clients
    connect; ``backend`` is ``local|docker|external|embedded``; ``log_path`` is the server log.
    """

    family: ClassVar[str]
    backend: str
    url: str

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self) -> None: ...
    def log_path(self) -> Path | None: ...


def private_dir(prefix: str) -> Path:
    """A fresh 0700 temp directory for one engine's data."""
    path = Path(tempfile.mkdtemp(prefix=f"cdc-{prefix}-"))
    os.chmod(path, 0o700)
    return path


class EmbeddedEngine:
    """An embedded table-format engine: a private warehouse folder, no server (Delta, Iceberg)."""

    backend = "embedded"

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

    def log_path(self) -> Path | None:
        return None
