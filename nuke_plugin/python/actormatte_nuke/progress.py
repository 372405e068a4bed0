"""Run one ``actormatte run`` job and report its progress the way Nuke wants.

Called by ``actormatte_nuke.run``. With the GUI, :meth:`Job.start` runs :meth:`Job.run` on a
``threading.Thread``: it drives a ``nuke.ProgressTask`` (``setMessage``/``setProgress``; its
Cancel button -> ``isCancelled()`` -> the CLI is terminated) and hands the result to the main
thread with ``nuke.executeInMainThread`` -- the worker never touches a node (Nuke's Threading
guide; ``nuke.thisNode()`` is undefined there, so the node is known by the name captured before the
thread started). In ``nuke -t`` (``nuke.env['gui']`` False) :meth:`Job.run` blocks and prints.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any, Callable

import nuke

from .cli_client import CliProcess
from .knobs import progress_percent

STAGE_LABELS = {"read": "Reading the plate", "propagate": "Propagating masks",
                "matte": "Matting", "write": "Writing EXRs"}
POLL_SECONDS = 0.2


class JobResult:
    """How a job ended.

    ``ok``, ``cancelled``, the CLI's exit ``code``, a ``message`` for the user, the ``done`` event
    (None unless ok) and the CLI's warnings.
    """

    def __init__(self, node_name: str, ok: bool, cancelled: bool, code: int | None,
                 message: str, done: dict[str, Any] | None, warnings: list[str]) -> None:
        self.node_name, self.ok, self.cancelled, self.code = node_name, ok, cancelled, code
        self.message, self.done, self.warnings = message, done, warnings


class _TaskReporter:
    """Progress into a ``nuke.ProgressTask`` (GUI); created on the worker thread."""

    def __init__(self, title: str) -> None:
        self._task: Any = nuke.ProgressTask(title)
        self._percent = 0

    def update(self, percent: int, message: str) -> None:
        self._percent = max(self._percent, int(percent))   # never step back
        self._task.setMessage(message)
        self._task.setProgress(self._percent)

    def cancelled(self) -> bool:
        return bool(self._task.isCancelled())

    def close(self) -> None:
        self._task = None   # Nuke closes the task when the object goes away


class _PrintReporter:
    """Progress as text lines on stdout (``nuke -t``, farm logs)."""

    def __init__(self, title: str) -> None:
        self._title, self._last = title, ""

    def update(self, percent: int, message: str) -> None:
        line = f"{self._title}: {percent:3d}% {message}"
        if line != self._last:
            print(line)
            sys.stdout.flush()
            self._last = line

    def cancelled(self) -> bool:
        return False

    def close(self) -> None:
        pass


class Job:
    """One CLI run for one node, known by its full name."""

    def __init__(self, argv: list[str], node_name: str, gui: bool,
                 on_finish: Callable[[JobResult], None], terminate_grace: float = 20.0) -> None:
        self.argv, self.node_name, self.gui = list(argv), node_name, gui
        self.on_finish = on_finish
        self.terminate_grace = terminate_grace
        self.result: JobResult | None = None
        self.process: CliProcess | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the job has started and not yet finished."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run on a worker thread (GUI)."""
        self._thread = threading.Thread(target=self.run, name=f"ActorMatte {self.node_name}",
                                        daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop; the worker terminates the CLI."""
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread."""
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> JobResult:
        """Start the CLI, follow it to the end, deliver the result; returns it too."""
        title = f"ActorMatte {self.node_name}"
        reporter = _TaskReporter(title) if self.gui else _PrintReporter(title)
        try:
            result = self._follow(reporter)
        except Exception as exc:  # noqa: BLE001 - a worker must always deliver a result
            result = JobResult(self.node_name, False, False, None,
                               f"ActorMatte could not run the core: {exc}", None, [])
        finally:
            reporter.close()
        self.result = result
        if self.gui:
            nuke.executeInMainThread(self.on_finish, (result,))
        else:
            self.on_finish(result)
        return result

    def _follow(self, reporter: Any) -> JobResult:
        reporter.update(0, "starting the ActorMatte core")
        self.process = process = CliProcess(self.argv)
        state: dict[str, Any] = {"error": None, "done": None, "warnings": [], "percent": 0}
        cancelled = False
        while True:
            if self._cancel.is_set() or reporter.cancelled():
                cancelled = True
                code = process.terminate(self.terminate_grace)
                break
            try:
                event = process.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            except KeyboardInterrupt:   # ^C in nuke -t
                self._cancel.set()
                continue
            if event is None:
                code = process.wait()
                break
            self._handle(event, state, reporter)
        return self._outcome(code, cancelled, state, list(process.stderr_tail))

    @staticmethod
    def _handle(event: dict[str, Any], state: dict[str, Any], reporter: Any) -> None:
        kind = event.get("event")
        if kind == "start":
            actors = event.get("actors") or []
            reporter.update(0, f"{len(actors)} actor(s), frames {event.get('frames')}")
        elif kind == "progress":
            stage = str(event.get("stage", ""))
            done, total = int(event.get("done", 0)), int(event.get("total", 0))
            label = STAGE_LABELS.get(stage, stage)
            frame = f"frame {event['frame']} " if "frame" in event else ""
            # EXR writes finish behind the matting (write-behind) and the preview comes last:
            # the bar shows the furthest point reached so it never steps back.
            state["percent"] = max(int(state.get("percent", 0)),
                                   progress_percent(stage, done, total))
            reporter.update(state["percent"], f"{label}: {frame}({done}/{total})")
        elif kind == "warning":
            state["warnings"].append(str(event.get("message", "")))
        elif kind == "error":
            state["error"] = event
        elif kind == "done":
            state["done"] = event
            reporter.update(100, f"done: {event.get('frames_written', 0)} frame(s) written")

    def _outcome(self, code: int, cancelled: bool, state: dict[str, Any],
                 stderr_tail: list[str]) -> JobResult:
        done, error = state["done"], state["error"]
        if cancelled:
            message = "cancelled; frames already written stay in the cache (Run resumes)"
            return JobResult(self.node_name, False, True, code, message, None, state["warnings"])
        if code == 0 and done is not None:
            return JobResult(self.node_name, True, False, 0, "", done, state["warnings"])
        if error is not None:
            message = str(error.get("message", "")) or f"exit code {code}"
        else:
            tail = "\n".join(stderr_tail[-6:])
            message = f"the ActorMatte core exited with code {code}"
            message += f":\n{tail}" if tail else ""
        return JobResult(self.node_name, False, code == 5, code, message, None, state["warnings"])
