"""Bad real-plate input through the CLI (in-process): exit 2, an error event, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from plate_files import write_exr

from actormatte.cli.main import main


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, next(e for e in events if e["event"] == "error")


def test_movie_negative_start_frame_exits_2(tmp_path: Path, capsys, models_dir: Path) -> None:
    movie = tmp_path / "m.avi"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"MJPG"), 24, (32, 32))
    for _ in range(3):
        writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.release()
    cv2.imwrite(str(tmp_path / "ids.png"), np.ones((32, 32), np.uint16))
    out = tmp_path / "out"
    code, error = _error(capsys, "run", str(movie), "--start-frame=-5", "--out", str(out),
                         "--models", str(models_dir), "--masks", str(tmp_path / "ids.png"),
                         "--no-progress-bar")
    assert code == 2 and "-001 with 0000" in error["message"]
    assert not out.exists() or not any(out.rglob("*"))


def test_frames_outside_a_negative_plate_exit_2(tmp_path: Path, capsys, models_dir: Path) -> None:
    for frame in (-2, -1, 0):
        write_exr(tmp_path / f"p.{frame:04d}.exr", np.zeros((16, 16, 3), np.float32))
    write_exr(tmp_path / "ids.exr", np.ones((16, 16, 1), np.float32), channels=("Y",))
    out = tmp_path / "out"
    code, error = _error(capsys, "run", str(tmp_path / "p.####.exr"), "--frames=-5:-1",
                         "--out", str(out), "--models", str(models_dir), "--masks",
                         f"{tmp_path / 'ids.exr'}@-1", "--no-progress-bar")
    assert code == 2 and "-2-0" in error["message"]
    assert not out.exists() or not any(out.rglob("*"))
