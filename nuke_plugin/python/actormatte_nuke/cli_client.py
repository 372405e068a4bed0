"""Start the ``actormatte`` CLI and read its NDJSON progress lines (docs/CLI.md).

Used by ``progress.py``; no ``nuke`` import. The core lives in its own venv (torch and friends
never enter Nuke's Python): :func:`find_cli` locates the program, :class:`CliProcess` runs it with
a clean environment and turns stdout into a queue of events, keeping the tail of stderr for error
messages when the program dies without an ``error`` event.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from typing import Any

RECORD_NAME = "actormatte-install.json"
# Nuke sets these for its own interpreter; inherited, they would point the core's Python at
# Nuke's standard library and site-packages.
_SCRUBBED_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE",
                 "PYTHONNOUSERSITE", "PYTHONEXECUTABLE")
_PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CliNotFoundError(RuntimeError):
    """No ``actormatte`` program was found; the message says how to point the node at one."""


def _from_record(venv: str) -> str | None:
    record = os.path.join(venv, RECORD_NAME)
    if not os.path.isfile(record):
        return None
    try:
        with open(record, encoding="utf-8") as f:
            cli = json.load(f).get("cli")
    except (OSError, ValueError):
        return None
    return cli if cli and os.path.isfile(cli) else None


def find_cli(knob_value: str = "") -> str:
    """The ``actormatte`` program to run.

    Order: the node's ``core CLI`` knob, ``$ACTORMATTE_CLI``, the path recorded by install.py in
    ``$ACTORMATTE_VENV/actormatte-install.json`` or in the repository's ``.venv`` next to this
    plugin, then ``actormatte`` on ``PATH``.

    Raises:
        CliNotFoundError: Nothing found, or an explicit path that does not exist.
    """
    for source, path in (("the node's 'core CLI' knob", knob_value),
                         ("$ACTORMATTE_CLI", os.environ.get("ACTORMATTE_CLI", ""))):
        path = os.path.expanduser(path.strip())
        if path:
            if not os.path.isfile(path):
                raise CliNotFoundError(f"{source} points at {path}, which does not exist")
            return path
    venvs = [os.environ.get("ACTORMATTE_VENV", ""), os.path.join(_PLUGIN_ROOT, ".venv")]
    for venv in venvs:
        found = _from_record(venv) if venv else None
        if found:
            return found
    on_path = shutil.which("actormatte")
    if on_path:
        return on_path
    raise CliNotFoundError(
        "cannot find the ActorMatte core: run `python3 install.py` in the ActorMatte repository, "
        "then set $ACTORMATTE_CLI (or the node's 'core CLI' knob) to <venv>/bin/actormatte")


def child_environment() -> dict[str, str]:
    """The environment for the CLI: Nuke's own, without its Python variables."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class CliProcess:
    """One running ``actormatte`` command.

    ``events`` receives each JSON object printed on stdout, then ``None`` at end of output.
    Lines that are not JSON objects with an ``"event"`` key are ignored (the protocol says hosts
    ignore what they do not know).
    """

    def __init__(self, argv: list[str], stderr_lines: int = 40) -> None:
        self.argv = list(argv)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        self._proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=child_environment(), universal_newlines=True, encoding="utf-8",
            errors="replace", bufsize=1, **kwargs)
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        """The process id."""
        return self._proc.pid

    def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            event = parse_event(line)
            if event is not None:
                self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._proc.poll()

    def terminate(self, grace: float = 20.0) -> int:
        """Stop the CLI (SIGTERM: it ends after the current frame); kill it after ``grace``."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        return self.wait()

    def wait(self) -> int:
        """Wait for the process and its output readers; returns the exit code."""
        code = self._proc.wait()
        for reader in self._readers:
            reader.join(5.0)
        return code


def parse_event(line: str) -> dict[str, Any] | None:
    """One protocol line -> its event object, or None for anything else."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None
