"""Is a lock's holder still there: an flock someone holds, a live process started when recorded.

Used by :mod:`actormatte.locks` (its docstring, "Staleness") to tell a held lock from a stale one.
Both probes are local to this host: flock where the file system supports it, ``kill(pid, 0)`` and
``/proc/<pid>/stat`` (state and start time, which tells a reused PID) where there is a ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path

try:  # flock is a POSIX extra; Windows works with exclusive create and heartbeats alone
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]


def flock_held(path: Path) -> bool:
    """Whether some process holds an flock on ``path`` (``False`` where flock is unsupported)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def alive(pid: int, started: str) -> bool:
    """A process ``pid`` that runs (not a zombie) and started at ``started`` (when recorded)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    stat = proc_stat(pid)
    if stat is None:
        return True  # no /proc: trust kill(0)
    if stat[0] == "Z":
        return False
    return not started or stat[1] == started


def proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) from ``/proc/<pid>/stat``, or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return fields[0], fields[19]


def start_time(pid: int) -> str:
    """The process's start time in clock ticks ("" without ``/proc``), recorded in a lock."""
    stat = proc_stat(pid)
    return stat[1] if stat else ""
