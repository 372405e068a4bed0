"""Run the ActorMatte core CLI and follow its NDJSON progress, for the Blender extension.

The extension never imports the core (Blender's Python has no torch): it starts ``actormatte run``
from the core's venv as a subprocess and reads one JSON object per stdout line (``docs/CLI.md``).
This module is pure Python on purpose (no ``bpy``): ``operators.py`` drives it from a modal timer
or, in background mode, synchronously, and the core venv's tests exercise it directly.

Threads: :class:`CliJob` starts two daemon threads, one parsing stdout into a ``queue.Queue`` and
one keeping the tail of stderr. The caller drains the queue from Blender's main thread; nothing
here touches Blender data.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import locate

EXIT_MEANINGS = {
    1: "internal error",
    2: "bad input or usage",
    3: "out of GPU memory: lower the processing size or use the CPU",
    4: "missing or wrong model weights: run `actormatte weights install` (or install.py)",
    5: "cancelled",
}
# Share of the whole run each stage stands for, for one overall progress bar.
STAGE_WEIGHTS = {"read": 0.05, "propagate": 0.35, "matte": 0.5, "write": 0.1}


@dataclass(frozen=True)
class ActorMask:
    """One ``--actor-mask NAME=PATH[@FRAME]`` argument."""

    name: str
    path: str
    frame: int | None = None


@dataclass(frozen=True)
class RunRequest:
    """Everything ``actormatte run`` needs, as plain values mapped from the node's properties.

    Attributes:
        plate: Image-sequence pattern (``shot.####.exr``) or movie path.
        out: Output (cache) folder.
        id_map: Keyframe instance-ID map, or None.
        id_map_frame: Keyframe of the ID map; None means the first frame of the range.
        names: Actor names of the ID map in id order (empty: the CLI's defaults).
        actor_masks: Per-actor binary keyframe masks.
        detect: Detect people automatically.
        frames: ``(first, last)`` or None for the plate's range.
        start_frame: First frame number of a movie (None: the CLI's default, 1).
        size: Matting short side, or None for the CLI's default.
        xmem_size: Propagation short side (-1: the plate's), or None for the CLI's default.
        device: ``auto``, ``cpu`` or ``cuda``.
        input_colorspace: OCIO colour space of the plate, or None for the CLI's default.
        models: Models folder, or None for the CLI's default.
        overwrite: Recompute frames already in the cache.
        mask_layers: Pre-rendered layered keyframe EXRs (``PATH@FRAME``, ``--mask-layers``).
        preview: Also write the overlay preview (``--preview``).
    """

    plate: str
    out: str
    id_map: str | None = None
    id_map_frame: int | None = None
    names: tuple[str, ...] = ()
    actor_masks: tuple[ActorMask, ...] = ()
    detect: bool = False
    frames: tuple[int, int] | None = None
    start_frame: int | None = None
    size: int | None = None
    xmem_size: int | None = None
    device: str = "auto"
    input_colorspace: str | None = None
    models: str | None = None
    overwrite: bool = False
    mask_layers: tuple[str, ...] = ()
    preview: bool = False


def _at_frame(path: str, frame: int | None) -> str:
    return path if frame is None else f"{path}@{frame}"


def _mask_args(request: RunRequest) -> list[str]:
    args = []
    if request.id_map:
        args += ["--masks", _at_frame(request.id_map, request.id_map_frame)]
    if request.names:
        args += ["--names", ",".join(request.names)]
    for mask in request.actor_masks:
        args += ["--actor-mask", f"{mask.name}={_at_frame(mask.path, mask.frame)}"]
    for item in request.mask_layers:
        args += ["--mask-layers", item]
    if request.detect:
        args.append("--detect")
    return args


def _option_args(request: RunRequest) -> list[str]:
    args = []
    if request.frames is not None:
        args += ["--frames", f"{request.frames[0]}-{request.frames[1]}"]
    optional = (("--start-frame", request.start_frame), ("--size", request.size),
                ("--xmem-size", request.xmem_size), ("--device", request.device),
                ("--input-colorspace", request.input_colorspace or None),
                ("--models", request.models or None))
    for flag, value in optional:
        if value is not None:
            args += [flag, str(value)]
    if request.overwrite:
        args.append("--overwrite")
    if request.preview:
        args.append("--preview")
    return args


def build_run_command(cli: Sequence[str], request: RunRequest) -> list[str]:
    """The argument vector of ``actormatte run`` for a request.

    Args:
        cli: The command that starts the CLI (usually one path; a test may pass an interpreter
            and a script).
        request: What to run.

    Returns:
        The full argument list for :class:`subprocess.Popen`.

    Raises:
        ValueError: The request names no keyframe masks and does not ask for detection.
    """
    if not (request.id_map or request.actor_masks or request.mask_layers or request.detect):
        raise ValueError("no keyframe masks: set an ID map, actor masks or 'Detect people'")
    return [*cli, "run", request.plate, "--out", request.out, "--no-progress-bar",
            *_mask_args(request), *_option_args(request)]


_HASHES = re.compile(r"#+|@+")
_PRINTF = re.compile(r"%0?(\d*)d")
_LAST_DIGITS = re.compile(r"(\d+)(?=\D*$)")


def frame_path(pattern: str, frame: int) -> str:
    """One frame's file of a sequence pattern (``####``/``@@@@`` one digit each, or ``%04d``)."""
    head, tail = os.path.split(pattern)
    if _HASHES.search(tail):
        tail = _HASHES.sub(lambda m: f"{frame:0{len(m.group())}d}", tail, count=1)
    else:
        tail = _PRINTF.sub(lambda m: f"{frame:0{int(m.group(1) or 0)}d}", tail, count=1)
    return os.path.join(head, tail)


def sequence_pattern(path: str) -> str:
    """The ``####`` pattern of the sequence one frame's file belongs to.

    Blender stores an image sequence as the path of one frame (``shot.1001.exr``); the last run
    of digits in the file name is the frame number (``shot.####.exr``). A path that already is a
    pattern is returned unchanged.

    Raises:
        ValueError: The file name has no digits, so it cannot be part of a sequence.
    """
    head, tail = os.path.split(path)
    if _HASHES.search(tail) or _PRINTF.search(tail):
        return path
    match = _LAST_DIGITS.search(tail)
    if match is None:
        raise ValueError(f"{path!r} has no frame number; an image sequence needs files "
                         "named like shot.1001.exr")
    start, end = match.span(1)
    return os.path.join(head, tail[:start] + "#" * (end - start) + tail[end:])


def parse_line(line: str) -> dict[str, Any] | None:
    """One stdout line of the CLI as an event, or None when it is not a protocol line.

    A protocol line is a JSON object with a string ``"event"`` key; anything else (a stray
    print from a library, an empty line) is ignored, as the contract asks hosts to do.
    """
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        return None
    return obj


class RunMonitor:
    """Folds protocol events into what a host shows: overall fraction, status line, outcome."""

    def __init__(self) -> None:
        self.start: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.warnings: list[str] = []
        self.frames_written = 0
        self.frames_skipped = 0
        self.status = "starting ActorMatte"
        self._stage_fraction: dict[str, float] = {}

    def feed(self, event: Mapping[str, Any]) -> None:
        """Take one event; unknown events and keys are ignored."""
        kind = event.get("event")
        if kind == "start":
            self.start = dict(event)
        elif kind == "progress":
            self._progress(event)
        elif kind == "frame":
            if event.get("skipped"):
                self.frames_skipped += 1
            else:
                self.frames_written += 1
        elif kind == "warning":
            self.warnings.append(str(event.get("message", "")))
        elif kind == "done":
            self.done = dict(event)
            self.status = "ActorMatte finished"
        elif kind == "error":
            self.error = dict(event)

    def _progress(self, event: Mapping[str, Any]) -> None:
        stage = str(event.get("stage", ""))
        done, total = event.get("done"), event.get("total")
        if not isinstance(done, int) or not isinstance(total, int) or total <= 0:
            return
        self._stage_fraction[stage] = min(1.0, max(0.0, done / total))
        frame = event.get("frame")
        at = f" (frame {frame})" if isinstance(frame, int) else ""
        self.status = f"ActorMatte {stage}: {done}/{total}{at}"

    @property
    def fraction(self) -> float:
        """Overall progress in [0, 1], weighting each stage by :data:`STAGE_WEIGHTS`."""
        if self.done is not None:
            return 1.0
        weighted = sum(STAGE_WEIGHTS.get(stage, 0.0) * value
                       for stage, value in self._stage_fraction.items())
        return min(1.0, weighted / sum(STAGE_WEIGHTS.values()))


def failure_message(returncode: int | None, monitor: RunMonitor, stderr_tail: str) -> str:
    """What to tell the user about a run that did not succeed."""
    if monitor.error is not None and monitor.error.get("message"):
        code = monitor.error.get("code", returncode)
        return f"ActorMatte failed (exit {code}): {monitor.error['message']}"
    meaning = EXIT_MEANINGS.get(returncode or 1, "failed")
    detail = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else "no message"
    return f"ActorMatte failed (exit {returncode}, {meaning}): {detail}"


class CliJob:
    """One running CLI process with reader threads.

    Events land in :attr:`events` (a ``queue.Queue`` of dicts); ``None`` marks the end of
    stdout. Use :meth:`drain` from the host's main thread, :meth:`cancel` to stop the process.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.command = list(command)
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.cancelled = False
        self.stdout_closed = False
        self._stop_requested_at: float | None = None
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace", bufsize=1,
            env=locate.child_environment(env), cwd=cwd)
        self._threads = [
            threading.Thread(target=self._read_stdout, name="actormatte-stdout", daemon=True),
            threading.Thread(target=self._read_stderr, name="actormatte-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        """Process id of the CLI."""
        return self._process.pid

    def _read_stdout(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            event = parse_line(line)
            if event is not None:
                self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr_tail.append(line.rstrip("\n"))

    def drain(self, timeout: float = 0.0) -> Iterator[dict[str, Any]]:
        """Yield the events queued so far; wait up to ``timeout`` s for the first one."""
        block = timeout > 0
        while not self.stdout_closed:
            try:
                event = self.events.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                return
            block = False
            if event is None:
                self.stdout_closed = True
                return
            yield event

    def poll(self) -> int | None:
        """The exit code once the process ended and its output was read, else None."""
        if not self.stdout_closed:
            return None
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end (after the caller drained stdout) and return its code."""
        code = self._process.wait(timeout)
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    @property
    def stderr_tail(self) -> str:
        """The last lines the CLI wrote to stderr."""
        return "\n".join(self._stderr_tail)

    def request_stop(self) -> None:
        """Ask the CLI to stop (SIGTERM; it exits 5 after the frame in hand) without waiting."""
        self.cancelled = True
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        if self._process.poll() is None:
            if os.name == "nt":
                self._process.terminate()
            else:
                self._process.send_signal(signal.SIGTERM)

    def kill_if_overdue(self, grace: float = 20.0) -> None:
        """Kill the CLI if it is still running ``grace`` s after :meth:`request_stop`."""
        started = self._stop_requested_at
        if started is not None and self._process.poll() is None \
                and time.monotonic() - started > grace:
            self._process.kill()

    def cancel(self, grace: float = 20.0) -> int:
        """Stop the CLI and wait for it: SIGTERM, then a kill after ``grace`` seconds.

        Frames are renamed into place only when complete, so even the kill leaves complete
        frames only. Returns the exit code.
        """
        self.request_stop()
        try:
            self._process.wait(grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
        return self.wait()
