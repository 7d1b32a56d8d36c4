"""Errors users can hit, each carrying the fix; the suite turns them into skips or usage errors."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class EngineUnavailable(HarnessError):
    """An engine cannot be started or reached here; the suite skips with this message."""


class MissingDependency(EngineUnavailable):
    """An optional Python package is missing."""

    def __init__(self, package: str, extra: str | None = None) -> None:
        hint = f"pip install -e '.[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"Python package '{package}' is not installed; fix: {hint}")


class EngineMisconfigured(HarnessError):
    """An engine answers but a setting makes CDC impossible (e.g. wal_level)."""


class Unsupported(HarnessError):
    """A step the engine or approach cannot do; the verdict is ``unsupported`` with this reason."""


class UnknownId(HarnessError):
    """An approach or scenario id that is not registered."""


class InvalidPlugin(HarnessError):
    """A plugin registered something malformed (no ``name``, an unknown family, ...)."""


class ReaderFailed(HarnessError):
    """The approach kept failing to (re)start within the run's timeout."""


class CaptureEnded(HarnessError):
    """Raised by an approach's ``poll``/``caught_up`` when what feeds it has stopped for good (a
    Debezium connector's task FAILED): restarting the reader cannot help, so the capture ends at
    once (``CaptureLoop.failed`` says why) and what was not delivered is lost."""
