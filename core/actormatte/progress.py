"""Progress events and cancellation shared by the pipeline, the CLI and tests.

Long stages are generators or loops that call a :data:`ProgressCallback` with a
:class:`ProgressEvent` and poll a :class:`CancelToken`. Core code never prints: the CLI turns
events into NDJSON lines on stdout (see ``docs/CLI.md``) and a progress bar on stderr.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actormatte.errors import CancelledError

STAGES = ("read", "propagate", "matte", "write")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long stage.

    Attributes:
        stage: One of :data:`STAGES`.
        done: Units finished in this stage so far.
        total: Units this stage will do in all.
        frame: Plate frame number the step concerns, when there is one.
    """

    stage: str
    done: int
    total: int
    frame: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as the NDJSON object of the progress protocol."""
        event: dict[str, Any] = {"event": "progress", "stage": self.stage}
        if self.frame is not None:
            event["frame"] = self.frame
        event.update(done=self.done, total=self.total)
        return event


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:
    """A progress callback that drops every event."""


class CancelToken:
    """A thread-safe flag a host or a signal handler sets to stop a job between frames."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at the next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`CancelledError` if the job was cancelled."""
        if self._event.is_set():
            raise CancelledError("cancelled; frames already written stay on disk")
