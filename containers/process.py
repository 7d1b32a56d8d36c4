"""Child server processes that cannot outlive the harness: the parent-death guard and a
mirakuru executor with a real readiness probe, shared by every local engine."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.lifecycle import pid_alive

_PR_SET_PDEATHSIG = 1


def parent_death_guard(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn``: a new session (as mirakuru does) + ``PR_SET_PDEATHSIG`` = ``sig``, or
    plain ``os.setsid`` off Linux.

    The kernel sends ``sig`` when the *thread* that forked dies, so the guard is only set when
    starting from the main thread (the one pytest runs in); engines started elsewhere rely on the
    next session's leftover sweep. It runs after Popen switched user (a uid change would clear
    it) and checks that the parent did not die before it was set.
    """
    if threading.current_thread() is not threading.main_thread():
        return os.setsid
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return os.setsid
    parent = os.getpid()

    def guard() -> None:
        os.setsid()
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the guard was in place
            os._exit(1)

    return guard


def probed_executor(command: list[str], ready: Callable[[], bool], *, timeout: float,
                    death_signal: int = signal.SIGKILL, stop_signal: int = signal.SIGTERM,
                    popen_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A mirakuru ``Executor`` whose start waits for ``ready()`` (a real request, not an open
    port) and whose process gets ``death_signal`` when the harness dies."""
    from mirakuru import Executor

    class ProbedExecutor(Executor):
        def pre_start_check(self) -> bool:
            return ready()

        def after_start_check(self) -> bool:
            return ready()

        @property
        def _popen_kwargs(self) -> dict[str, Any]:
            out = super()._popen_kwargs
            out["preexec_fn"] = parent_death_guard(death_signal)
            return out

    return ProbedExecutor(command, timeout=timeout, sleep=0.05, stop_signal=stop_signal,
                          popen_kwargs=popen_kwargs or {}, **kwargs)


def stop_pid_file(pid_file: Path, argument: str, label: str) -> list[str]:
    """Stop the process whose pid is in ``pid_file`` when one of its command-line arguments is
    ``argument`` (a dead session's server): SIGTERM, SIGKILL after 10 s. Returns what stopped."""
    try:
        pid = int(Path(pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    if not pid_alive(pid):
        return []
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    if argument not in args:
        return []
    return terminate(pid, signal.SIGTERM, label)


def terminate(pid: int, first: int, label: str) -> list[str]:
    """Send ``first`` to ``pid``, SIGKILL if it is still there after 10 s; ``["<label> (pid N)"]``
    once it is gone, ``[]`` if it would not go."""
    for sig, wait_s in ((first, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return [f"{label} (pid {pid})"]
    return []
