"""The CLI as a process: the NDJSON protocol, ``info --json``, kill -9 and SIGTERM mid-matting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from actormatte.cli.main import main

CLI = [sys.executable, "-m", "actormatte.cli.main"]


def _args(shot, out: Path, models: Path) -> list[str]:
    return ["run", shot.pattern, "--out", str(out), "--models", str(models), "--masks",
            str(shot.ids), "--size", "64", "--xmem-size", "-1", "--no-progress-bar",
            "--device", "cpu"]


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(CLI + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _read_until_frame(proc: subprocess.Popen[str]) -> list[dict]:
    """Read NDJSON events up to (and including) the first ``frame`` event."""
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "frame":
            return events
    raise AssertionError(f"the CLI ended before writing a frame: {events}")


def _pixels(path: Path) -> np.ndarray:
    return oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)


def test_info_json():
    proc = subprocess.run(CLI + ["info", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["versions"]["actormatte"] == "0.1.0"
    assert {"torch", "numpy", "OpenImageIO", "OpenColorIO", "onnxruntime", "cv2", "spconv"} \
        <= set(report["versions"])
    assert report["devices"]["cpu"] is True
    assert set(report["models"]) >= {"maggie-video", "xmem"}


def test_kill9_during_matting_then_rerun_equals_uninterrupted(tmp_path, make_shot, models_dir,
                                                              capsys):
    shot = make_shot(9)  # three windows: the kill lands while later windows are computed
    assert main(_args(shot, tmp_path / "a", models_dir)) == 0
    capsys.readouterr()

    proc = _start(_args(shot, tmp_path / "b", models_dir))
    events = _read_until_frame(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert events[0]["event"] == "start"
    # Whatever landed is whole: every final file decodes (temp files are hidden names).
    for path in (tmp_path / "b").glob("plate_mattes.*.exr"):
        assert oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT) is not None

    assert main(_args(shot, tmp_path / "b", models_dir)) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    done = lines[-1]
    assert done["event"] == "done" and done["frames_skipped"] >= 1
    assert done["frames_written"] >= 1  # the kill interrupted the matting
    assert done["frames_written"] + done["frames_skipped"] == 9
    assert not [p for p in os.listdir(tmp_path / "b") if p.endswith(".tmp.exr")]
    for frame in range(1001, 1010):
        name = f"plate_mattes.{frame}.exr"
        assert np.array_equal(_pixels(tmp_path / "a" / name), _pixels(tmp_path / "b" / name))


def test_sigterm_cancels_after_the_current_frame(tmp_path, make_shot, models_dir):
    shot = make_shot(6)
    proc = _start(_args(shot, tmp_path / "out", models_dir))
    _read_until_frame(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 5, err
    last = json.loads(out.splitlines()[-1])
    assert last == {"event": "error", "code": 5, "message": last["message"]}
    assert "cancelled" in last["message"]
    written = sorted((tmp_path / "out").glob("plate_mattes.*.exr"))
    assert 1 <= len(written) < 6
    assert "Progress:" in err
    assert not [p for p in os.listdir(tmp_path / "out") if p.endswith(".tmp.exr")]


def test_protocol_lines(tmp_path, make_shot, models_dir, capsys):
    shot = make_shot(3)
    assert main(_args(shot, tmp_path / "out", models_dir)) == 0
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[0]["pattern"] == str(tmp_path / "out" / "plate_mattes.####.exr")
    assert events[0]["frames"] == [1001, 1003]
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert stages.index("read") < stages.index("propagate") < stages.index("matte")
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["frame"] for e in frames] == [1001, 1002, 1003]
    percents = [int(line.split()[1].rstrip("%")) for line in captured.err.splitlines()
                if line.startswith("Progress:")]
    assert percents == sorted(percents) and percents[-1] == 100
