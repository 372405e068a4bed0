"""The NDJSON reporter: one JSON object per line, percentages over the command's stages."""

from __future__ import annotations

import io
import json

from actormatte.cli.protocol import Reporter
from actormatte.progress import ProgressEvent


def test_events_are_single_json_lines_and_percent_spans_the_stages():
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out, err, bar=False, stages=("read", "propagate"))
    reporter.emit("start", command="propagate", frames=[1, 2])
    for done in (1, 2):
        reporter.progress(ProgressEvent("read", done, 2, done))
    for done in (1, 2):
        reporter.progress(ProgressEvent("propagate", done, 2, done))
    reporter.warning("careful")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["start"] + ["progress"] * 4 + ["warning"]
    assert lines[1] == {"event": "progress", "stage": "read", "frame": 1, "done": 1, "total": 2}
    percents = [int(x.split()[1].rstrip("%")) for x in err.getvalue().splitlines()
                if x.startswith("Progress:")]
    assert percents == sorted(percents) and percents[-1] == 100 and percents[0] < 20
    assert "warning: careful" in err.getvalue()


def test_bar_mode_redraws_in_place():
    out, err = io.StringIO(), io.StringIO()
    reporter = Reporter(out, err, bar=True, stages=("matte",))
    reporter.progress(ProgressEvent("matte", 1, 4))
    reporter.progress(ProgressEvent("matte", 4, 4))
    reporter.emit("done", command="matte")
    text = err.getvalue()
    assert text.count("\r") == 2 and "100%" in text and "Progress:" not in text
    assert text.endswith("\n")  # the bar line is closed before the next output
