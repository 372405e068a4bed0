"""Thread counts (issue 15, finding 3): CPU results depend on the count, so it is pinned
(``--threads``), recorded (job.json, EXR header) and checked across matte chunks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

CLI = [sys.executable, "-m", "actormatte.cli.main"]


def _cli(argv: list[str], omp: int) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(omp)}
    env.pop("ACTORMATTE_THREADS", None)
    proc = subprocess.run(CLI + argv, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _propagate(shot, work: Path, models: Path, threads: int, omp: int) -> None:
    _cli(["propagate", shot.pattern, "--work", str(work), "--models", str(models), "--masks",
          str(shot.ids), "--xmem-size", "-1", "--no-progress-bar", "--device", "cpu",
          "--threads", str(threads)], omp)


def _matte(work: Path, out: Path, models: Path, frames: str, threads: int,
           omp: int) -> list[dict]:
    return _cli(["matte", "--work", str(work), "--out", str(out), "--models", str(models),
                 "--frames", frames, "--size", "64", "--no-progress-bar", "--device", "cpu",
                 "--threads", str(threads)], omp)


def _masks(work: Path) -> dict[str, np.ndarray]:
    return {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            for p in sorted((work / "masks").glob("*.png"))}


def _exr(path: Path) -> tuple[np.ndarray, str]:
    image = oiio.ImageBuf(str(path))
    return image.get_pixels(oiio.FLOAT), str(image.spec().getattribute("actormatte/threads"))


@pytest.mark.slow
def test_pinned_threads_give_the_same_bits_whatever_the_environment(tmp_path, make_shot,
                                                                    models_dir):
    shot = make_shot(4)
    work_a, work_b = tmp_path / "wa", tmp_path / "wb"
    _propagate(shot, work_a, models_dir, threads=2, omp=1)
    _propagate(shot, work_b, models_dir, threads=2, omp=2)
    masks_a, masks_b = _masks(work_a), _masks(work_b)
    assert len(masks_a) == 4 and all(np.array_equal(masks_a[k], masks_b[k]) for k in masks_a)
    assert json.loads((work_a / "job.json").read_text())["threads"] == 2

    chunked, whole = tmp_path / "chunked", tmp_path / "whole"
    _matte(work_a, chunked, models_dir, "1001-1002", threads=2, omp=1)
    events = _matte(work_a, chunked, models_dir, "1003-1004", threads=1, omp=1)
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("1 CPU threads" in w and "--threads 2" in w for w in warnings), warnings
    _matte(work_a, whole, models_dir, "1001-1004", threads=2, omp=2)
    for frame in (1001, 1002):
        pixels, recorded = _exr(chunked / f"plate_mattes.{frame}.exr")
        reference, _ = _exr(whole / f"plate_mattes.{frame}.exr")
        assert recorded == "2" and np.array_equal(pixels, reference)
    assert _exr(chunked / "plate_mattes.1003.exr")[1] == "1"


def test_farm_tasks_pin_the_thread_count(tmp_path, make_shot, capsys):
    from actormatte.cli.main import main

    shot = make_shot(4)
    models = tmp_path / "models"
    models.mkdir()
    argv = ["farm", shot.pattern, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"),
            "--job-dir", str(tmp_path / "jobs"), "--masks", str(shot.ids), "--models",
            str(models), "--actormatte", "/farm/bin/actormatte", "--engine", "deadline"]
    assert main(argv) == 0
    capsys.readouterr()
    text = "\n".join(p.read_text() for p in (tmp_path / "jobs").rglob("*") if p.is_file())
    assert text.count("--threads 8") >= 2  # propagate and matte
    assert main([*argv, "--threads", "3", "--engine", "openjd"]) == 0
    template = json.loads((tmp_path / "jobs" / "openjd" / "template.json").read_text())
    commands = {step["name"]: step["script"]["actions"]["onRun"]["args"]
                for step in template["steps"]}
    qc = commands.pop("qc")  # QC is numpy over the EXRs: no torch, no thread-dependent result
    assert "--threads" not in qc
    assert all(args[args.index("--threads") + 1] == "3" for args in commands.values()), commands
