"""The CLI's side of the progress protocol: NDJSON events on stdout, human progress on stderr.

Every line on stdout is one JSON object with an ``"event"`` key (``docs/CLI.md``). Hosts parse only
those lines; farm log parsers read ``Progress: N%`` lines on stderr, and a person at a terminal
sees a one-line bar instead. The sub-command modules own a :class:`Reporter` and hand its
:meth:`Reporter.progress` to the pipeline as the progress callback. Core code never prints.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from actormatte.progress import STAGES, ProgressEvent

#: How much of the whole job each stage weighs in the overall percentage.
_STAGE_WEIGHTS = {"read": 0.05, "propagate": 0.35, "matte": 0.55, "write": 0.05}
_BAR_WIDTH = 30


class Reporter:
    """Writes protocol events to stdout and an overall percentage to stderr.

    Args:
        stdout: Stream for the NDJSON events (flushed after every line).
        stderr: Stream for ``Progress: N%`` lines, or a bar when ``bar`` is true.
        bar: Draw a bar that redraws in place instead of printing ``Progress:`` lines; ``None``
            means "when stderr is a terminal".
        stages: Stages this command runs, in order; the percentage spans them.
    """

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None,
                 bar: bool | None = None, stages: tuple[str, ...] = STAGES) -> None:
        self._out = stdout if stdout is not None else sys.stdout
        self._err = stderr if stderr is not None else sys.stderr
        self._bar = self._err.isatty() if bar is None else bar
        total_weight = sum(_STAGE_WEIGHTS[s] for s in stages) or 1.0
        self._weights = {s: _STAGE_WEIGHTS[s] / total_weight for s in stages}
        self._stage_order = stages
        self._stage_fraction: dict[str, float] = {}
        self._last_percent = -1
        self._bar_open = False

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event line on stdout."""
        self._end_bar()
        line = json.dumps({"event": event, **fields}, separators=(", ", ": "), default=str)
        self._out.write(line + "\n")
        self._out.flush()

    def progress(self, event: ProgressEvent) -> None:
        """The pipeline's progress callback: one JSON line and, when it moved, the percentage."""
        line = json.dumps(event.to_json(), separators=(", ", ": "))
        self._out.write(line + "\n")
        self._out.flush()
        if event.stage in self._weights and event.total > 0:
            self._stage_fraction[event.stage] = min(1.0, event.done / event.total)
        self._show_percent()

    def warning(self, message: str) -> None:
        """A ``warning`` event, also shown on stderr."""
        self.emit("warning", message=message)
        self._err.write(f"warning: {message}\n")
        self._err.flush()

    def finish(self) -> None:
        """Close the bar line (if any) so later stderr output starts on a fresh line."""
        self._end_bar()

    def percent(self) -> int:
        """The overall percentage over this command's stages."""
        total = 0.0
        for stage in self._stage_order:
            total += self._weights[stage] * self._stage_fraction.get(stage, 0.0)
        return min(100, int(total * 100 + 1e-9))

    def _show_percent(self) -> None:
        percent = self.percent()
        if percent == self._last_percent:
            return
        self._last_percent = percent
        if self._bar:
            filled = _BAR_WIDTH * percent // 100
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            self._err.write(f"\r[{bar}] {percent:3d}%")
            self._bar_open = True
        else:
            self._err.write(f"Progress: {percent}%\n")
        self._err.flush()

    def _end_bar(self) -> None:
        if self._bar_open:
            self._err.write("\n")
            self._err.flush()
            self._bar_open = False
