"""Writer locks: one writer per work folder and per output frame range, also on shared storage.

Taken by :mod:`actormatte.pipeline` before anything is written: ``propagate`` and ``run`` lock the
work folder, ``matte`` and ``run`` lock the output pattern for their frame range (farm chunks of
one shot write disjoint ranges side by side; overlapping ranges conflict). A second writer gets
:class:`LockedError` (exit code 2) naming the holder's host, PID and command.

A lock is a small JSON file created with ``O_CREAT | O_EXCL`` (atomic on local file systems and
on NFSv3+), holding host, PID, the process start time, the command, a creation stamp and a random
token. What the module relies on (docs/FARM.md, "Locks"):

- **Exclusive create** of the lock file; the only primitive needed for mutual exclusion.
- **flock** on the open lock file where the file system supports it: the kernel drops it when the
  holder dies, so a lock whose flock can be taken is not held by a live process on this host.
  It is an extra signal, never the only one (NFS may emulate or ignore it).
- **Staleness**: a lock from this host is stale when its PID is gone, a zombie, or a process
  started at another time (PID reuse). A lock from another host is stale when its heartbeat (the
  file's mtime, refreshed every :data:`HEARTBEAT_S` seconds by the holder) is older than
  ``ACTORMATTE_LOCK_STALE_S`` seconds (default :data:`STALE_AFTER_S`).
- **Take-over** of a stale lock happens under a short-lived breaker file (exclusive create too):
  the breaker re-reads the lock, checks it is still the same stale one (token), removes it and
  creates its own. Two processes breaking the same stale lock cannot both win.

Range locks of one pattern are separate files (``.<name>.<first>-<last>.lock``); after creating
its own, a writer looks for live overlapping ones and the younger one (by creation stamp, then
token) gives way, so of two racing writers exactly one proceeds.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from actormatte.errors import InputError
from actormatte.liveness import alive, flock_held, start_time

try:  # flock is a POSIX extra; Windows works with exclusive create and heartbeats alone
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

HOST = socket.gethostname()
#: Seconds between two heartbeats (mtime refreshes) of a held lock.
HEARTBEAT_S = 30.0
#: A lock of another host whose heartbeat is older than this is stale.
STALE_AFTER_S = 300.0
_BREAKER_STALE_S = 60.0
_P = ParamSpec("_P")
_R = TypeVar("_R")
#: Locks taken inside the innermost :func:`releases_locks` call.
_SCOPE: contextvars.ContextVar[list[Lock] | None] = contextvars.ContextVar("locks", default=None)


class LockedError(InputError):
    """Another live process writes the same work folder or output frames (exit code 2)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file records it."""

    host: str
    pid: int
    started: str
    command: str
    created_ns: int
    token: str
    frames: tuple[int, int] | None

    @classmethod
    def me(cls, command: str, frames: tuple[int, int] | None) -> Holder:
        """This process."""
        return cls(HOST, os.getpid(), start_time(os.getpid()), command, time.time_ns(),
                   secrets.token_hex(8), frames)

    def to_json(self) -> dict[str, Any]:
        """The lock file's object."""
        return {"host": self.host, "pid": self.pid, "started": self.started,
                "command": self.command, "created_ns": self.created_ns, "token": self.token,
                "frames": list(self.frames) if self.frames else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Holder:
        """Parse a lock file's object (KeyError/TypeError/ValueError on a malformed one)."""
        frames = data.get("frames")
        return cls(str(data["host"]), int(data["pid"]), str(data.get("started", "")),
                   str(data.get("command", "")), int(data["created_ns"]), str(data["token"]),
                   (int(frames[0]), int(frames[1])) if frames else None)

    def describe(self) -> str:
        """``host <h>, PID <p> (<command>)``."""
        return f"host {self.host}, PID {self.pid} ({self.command or 'actormatte'})"

    def order(self) -> tuple[int, str]:
        """Older locks sort first; the token breaks ties."""
        return self.created_ns, self.token


class Lock:
    """One held lock file; :meth:`release` removes it (also called by the context manager)."""

    def __init__(self, path: Path, holder: Holder, fd: int) -> None:
        self.path = path
        self.holder = holder
        self._fd = fd
        #: Folders made for the lock, removed on release when still empty (deepest first).
        self.made_dirs: list[Path] = []
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      name=f"lock-heartbeat {path.name}")
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Remove the lock file if it is still ours; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        current = _read_holder(self.path)
        if current is not None and current.token == self.holder.token:
            with contextlib.suppress(OSError):
                self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        for folder in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: nothing else was written there

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def releases_locks(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: release the locks a call of ``func`` took when it returns or raises.

    Locks taken by :func:`lock_work` / :func:`lock_output` during the call are the ones released.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        held: list[Lock] = []
        token = _SCOPE.set(held)
        try:
            return func(*args, **kwargs)
        finally:
            _SCOPE.reset(token)
            for lock in reversed(held):
                lock.release()

    return wrapper


def _scoped(lock: Lock) -> Lock:
    held = _SCOPE.get()
    if held is not None:
        held.append(lock)
    return lock


def work_lock_path(work: Path) -> Path:
    """The lock of a work folder: ``<work>/.actormatte.lock``."""
    return work / ".actormatte.lock"


def output_lock_path(out_dir: Path, name: str, frames: tuple[int, int]) -> Path:
    """The lock of output frames ``first..last`` of ``<out>/<name>.####.exr``."""
    return out_dir / f".{name}.{frames[0]}-{frames[1]}.lock"


def lock_work(work: Path, command: str) -> Lock:
    """Lock a work folder (created if missing) for ``command``.

    Inside a :func:`releases_locks` call the lock is released when that call ends; otherwise
    the caller releases it (``with lock_work(...):``).

    Raises:
        LockedError: A live process holds it (names its host and PID).
    """
    made = _make_dirs(work)
    lock = acquire(work_lock_path(work), command, what=f"--work {work}", made_dirs=made)
    return _scoped(lock)


def lock_output(out_dir: Path, name: str, frames: tuple[int, int], command: str) -> Lock:
    """Lock frames ``first..last`` of one output pattern (created folder if missing).

    Raises:
        LockedError: A live process writes an overlapping range of the same pattern.
    """
    made = _make_dirs(out_dir)
    path = output_lock_path(out_dir, name, frames)
    what = f"{out_dir / name}.* frames {frames[0]}-{frames[1]}"
    lock = acquire(path, command, what=what, frames=frames, made_dirs=made)
    try:
        _check_overlaps(lock, out_dir, name, what)
    except BaseException:
        lock.release()
        raise
    return _scoped(lock)


def check_work_unlocked(work: Path) -> None:
    """Raise :class:`LockedError` if a live process is propagating into ``work`` right now."""
    path = work_lock_path(work)
    holder = _read_holder(path)
    if holder is not None and not _is_stale(path, holder):
        raise LockedError(f"--work {work} is being propagated by {holder.describe()}; wait "
                          "for it to finish, then run matte")


def acquire(path: Path, command: str, *, what: str, frames: tuple[int, int] | None = None,
            made_dirs: list[Path] | None = None) -> Lock:
    """Create the lock file ``path`` for this process, taking over a stale one.

    Args:
        path: The lock file.
        command: What this process does (shown to a refused writer).
        what: The locked thing, for messages.
        frames: The locked output frames, or ``None``.
        made_dirs: Folders created for the lock: removed again when empty on release or refusal.

    Raises:
        LockedError: A live process holds ``path``.
    """
    holder = Holder.me(command, frames)
    made = made_dirs or []
    try:
        for _ in range(5):
            fd = _create(path, holder)
            if fd is not None:
                lock = Lock(path, holder, fd)
                lock.made_dirs = made
                return lock
            current = _read_holder(path)
            if current is None and path.exists() and _age_s(path) < 5.0:
                time.sleep(0.05)  # being written right now
                continue
            if current is not None and not _is_stale(path, current):
                raise _locked(what, current, path)
            _break(path, current)
        raise _locked(what, _read_holder(path), path)
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _make_dirs(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created, outermost first."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _locked(what: str, holder: Holder | None, path: Path) -> LockedError:
    who = holder.describe() if holder else "another process"
    return LockedError(f"{what} is being written by {who}; wait for it to finish or stop it, "
                       f"or write elsewhere. If that process is gone for good, delete {path}")


def _create(path: Path, holder: Holder) -> int | None:
    """Exclusively create and fill the lock file; ``None`` when it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
    except FileExistsError:
        return None
    except PermissionError as exc:
        raise InputError(f"cannot create the lock file {path} (permission denied); make its "
                         "folder writable for this user (chmod g+w, or run as its owner)") from exc
    try:
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, (json.dumps(holder.to_json()) + "\n").encode("utf-8"))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return fd


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _is_stale(path: Path, holder: Holder) -> bool:
    """Whether ``holder`` is gone (module docstring, "Staleness")."""
    if flock_held(path):
        return False
    if holder.host == HOST:
        return not alive(holder.pid, holder.started)
    return _age_s(path) > float(os.environ.get("ACTORMATTE_LOCK_STALE_S", STALE_AFTER_S))


def _break(path: Path, seen: Holder | None) -> None:
    """Remove the stale lock ``seen`` at ``path`` under a breaker file (module docstring)."""
    breaker = path.with_name(path.name + ".break")
    if _age_s(breaker) > _BREAKER_STALE_S:
        with contextlib.suppress(OSError):
            breaker.unlink()
    try:
        fd = os.open(breaker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        time.sleep(0.05)
        return
    try:
        current = _read_holder(path)
        same = (current is None and seen is None) or (
            current is not None and seen is not None and current.token == seen.token)
        if same:
            logger.warning("taking over the stale lock %s (%s is gone)", path,
                           seen.describe() if seen else "an unreadable holder")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            breaker.unlink()


def _range_locks(out_dir: Path, name: str) -> Iterator[Path]:
    prefix = f".{name}."
    for path in out_dir.glob(f".{name}.*.lock"):
        middle = path.name[len(prefix):-len(".lock")]
        head, sep, tail = middle.partition("-")
        if sep and head.lstrip("-").isdigit() and tail.lstrip("-").isdigit():
            yield path


def _check_overlaps(lock: Lock, out_dir: Path, name: str, what: str) -> None:
    """Give way to an older live lock on an overlapping range of the same pattern."""
    mine = lock.holder
    assert mine.frames is not None
    for path in _range_locks(out_dir, name):
        if path == lock.path:
            continue
        other = _read_holder(path)
        if other is None or other.frames is None:
            continue
        if other.frames[1] < mine.frames[0] or other.frames[0] > mine.frames[1]:
            continue
        if _is_stale(path, other):
            continue
        if other.order() < mine.order():
            raise _locked(what, other, path)
