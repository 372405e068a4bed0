"""Two signals 50-90 ms apart always end with exit code 5 (issue 15, finding 6): never a
``CancelledError`` traceback (exit 1), never death by the signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

CLI = [sys.executable, "-m", "actormatte.cli.main"]

#: (event to wait for, or seconds after start; first signal; second signal; gap in s)
CASES = [
    (1.0, signal.SIGTERM, signal.SIGTERM, 0.05),   # during start-up imports
    ("start", signal.SIGINT, signal.SIGINT, 0.06),
    ("start", signal.SIGTERM, signal.SIGINT, 0.09),
    ("progress", signal.SIGTERM, signal.SIGTERM, 0.07),
    ("frame", signal.SIGTERM, signal.SIGTERM, 0.05),
    ("frame", signal.SIGINT, signal.SIGTERM, 0.08),
    ("frame", signal.SIGTERM, signal.SIGTERM, 0.065),
    ("frame", signal.SIGINT, signal.SIGINT, 0.09),
]


def _wait_for(proc: subprocess.Popen[str], trigger: float | str) -> None:
    if isinstance(trigger, float):
        time.sleep(trigger)
        return
    assert proc.stdout is not None
    for line in proc.stdout:
        if json.loads(line)["event"] == trigger:
            return
    raise AssertionError("the CLI ended before the trigger event")


@pytest.mark.slow
def test_two_signals_close_together_always_exit_5(tmp_path, make_shot, models_dir):
    shot = make_shot(9)
    outcomes = []
    for index, (trigger, first, second, gap) in enumerate(CASES):
        proc = subprocess.Popen(
            CLI + ["run", shot.pattern, "--out", str(tmp_path / f"out{index}"), "--models",
                   str(models_dir), "--masks", str(shot.ids), "--size", "64", "--xmem-size",
                   "-1", "--no-progress-bar", "--device", "cpu"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(proc, trigger)
        proc.send_signal(first)
        time.sleep(gap)
        proc.send_signal(second)
        out, err = proc.communicate(timeout=300)
        outcomes.append((trigger, proc.returncode, "Traceback" in err, err[-600:]))
    bad = [o for o in outcomes if o[1] != 5 or o[2]]
    assert not bad, bad
