"""Bad input: each case exits 2 (or 4 for weights) with a message naming the problem and writes
nothing. The CLI runs in-process (``main(argv)``) to keep these fast."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from actormatte.cli.main import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    errors = [e for e in events if e["event"] == "error"]
    assert errors, f"no error event in {out!r}"
    return code, errors[-1], err


def _run_args(shot, out: Path, models: Path, *extra: str) -> list[str]:
    return ["run", shot.pattern, "--out", str(out), "--models", str(models), "--masks",
            str(shot.ids), "--size", "64", "--xmem-size", "-1", "--no-progress-bar", *extra]


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*"))


@pytest.fixture
def shot(make_shot: Callable[..., object]):
    return make_shot(3)


def _write_exr_plate(folder: Path, frames: int, width: int = 96, height: int = 64) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        pixels = np.full((height, width, 3), 0.2 + 0.1 * index, np.float32)
        spec = oiio.ImageSpec(width, height, 3, oiio.HALF)
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(folder / f"plate.{1001 + index}.exr"))
        out.open(str(folder / f"plate.{1001 + index}.exr"), spec)
        out.write_image(pixels)
        out.close()
    ids = np.zeros((height, width), np.uint16)
    ids[20:40, 30:60] = 1
    cv2.imwrite(str(folder / "ids.png"), ids)
    return str(folder / "plate.####.exr")


def test_missing_plate(capsys, tmp_path, models_dir, shot):
    out = tmp_path / "out"
    args = _run_args(shot, out, models_dir)
    args[1] = str(tmp_path / "nowhere" / "plate.####.png")
    code, error, _ = _cli(capsys, *args)
    assert code == 2 and "nowhere" in error["message"]
    assert _nothing_written(out)


def test_gap_in_frame_range(capsys, tmp_path, models_dir, make_shot):
    gappy = make_shot(4)
    (gappy.folder / "plate.1002.png").unlink()
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(gappy, out, models_dir))
    assert code == 2 and "1002" in error["message"] and "--frames" in error["message"]
    assert _nothing_written(out)


def test_frame_of_another_size(capsys, tmp_path, models_dir, shot):
    cv2.imwrite(str(shot.folder / "plate.1003.png"), np.zeros((32, 48, 3), np.uint8))
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, models_dir))
    assert code == 2 and "plate.1003.png" in error["message"]
    assert _nothing_written(out)


def test_truncated_exr(capsys, tmp_path, models_dir):
    pattern = _write_exr_plate(tmp_path / "exr", 3)
    victim = tmp_path / "exr" / "plate.1002.exr"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, "run", pattern, "--out", str(out), "--models", str(models_dir),
                          "--masks", str(tmp_path / "exr" / "ids.png"), "--size", "64",
                          "--xmem-size", "-1")
    assert code == 2 and "1002" in error["message"]
    assert _nothing_written(out)


def test_mask_of_another_size(capsys, tmp_path, models_dir, shot):
    small = tmp_path / "small_ids.png"
    cv2.imwrite(str(small), np.ones((32, 48), np.uint16))
    out = tmp_path / "out"
    args = _run_args(shot, out, models_dir)
    args[args.index("--masks") + 1] = str(small)
    code, error, _ = _cli(capsys, *args)
    assert code == 2 and "small_ids.png" in error["message"]
    assert _nothing_written(out)


def test_empty_actor_mask(capsys, tmp_path, models_dir, shot):
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.zeros((64, 96), np.uint8))
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, models_dir, "--actor-mask",
                                             f"bob={empty}"))
    assert code == 2 and "empty" in error["message"] and "bob" in error["message"]
    assert _nothing_written(out)


def test_keyframe_outside_range(capsys, tmp_path, models_dir, shot):
    out = tmp_path / "out"
    args = _run_args(shot, out, models_dir)
    args[args.index("--masks") + 1] = f"{shot.ids}@2000"
    code, error, _ = _cli(capsys, *args)
    assert code == 2 and "2000" in error["message"]
    assert _nothing_written(out)


@pytest.mark.parametrize("names, word", [("bob,bob", "bob"), ("rgba,ann", "rgba"),
                                         ("123,ann", "123")])
def test_bad_actor_names(capsys, tmp_path, models_dir, shot, names, word):
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, models_dir, "--names", names))
    assert code == 2 and word in error["message"]
    assert _nothing_written(out)


def test_unwritable_output_folder(capsys, tmp_path, models_dir, shot):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code, error, _ = _cli(capsys, *_run_args(shot, blocker / "out", models_dir))
    assert code == 2 and "--out" in error["message"] and "a_file" in error["message"]
    assert blocker.read_text() == "not a folder"


def test_output_collides_with_plate(capsys, tmp_path, models_dir):
    pattern = _write_exr_plate(tmp_path / "exr", 2)
    before = sorted(p.name for p in (tmp_path / "exr").iterdir())
    code, error, _ = _cli(capsys, "run", pattern, "--out", str(tmp_path / "exr"), "--name",
                          "plate", "--models", str(models_dir), "--masks",
                          str(tmp_path / "exr" / "ids.png"))
    assert code == 2 and "--name" in error["message"]
    assert sorted(p.name for p in (tmp_path / "exr").iterdir()) == before


def test_missing_weights(capsys, tmp_path, shot):
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, tmp_path / "no_models"))
    assert code == 4 and "weights install" in error["message"]
    assert _nothing_written(out)


def test_weights_with_wrong_keys(capsys, tmp_path, models_dir, shot):
    broken = tmp_path / "models"
    shutil.copytree(models_dir, broken, symlinks=True)
    video = broken / "maggie-video" / "model.safetensors"
    video.unlink()
    video.symlink_to((models_dir / "maggie-image" / "model.safetensors").resolve())
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, broken))
    assert code == 4 and "model.safetensors" in error["message"]
    assert _nothing_written(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(capsys, tmp_path, models_dir, shot):
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, models_dir, "--device", "cuda"))
    assert code == 2 and "--device cuda" in error["message"]
    assert _nothing_written(out)


def test_frames_outside_plate(capsys, tmp_path, models_dir, shot):
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, *_run_args(shot, out, models_dir, "--frames", "990-1002"))
    assert code == 2 and "--frames" in error["message"] and "1001-1003" in error["message"]
    assert _nothing_written(out)


def test_matte_without_propagation(capsys, tmp_path, models_dir):
    out = tmp_path / "out"
    code, error, _ = _cli(capsys, "matte", "--work", str(tmp_path / "work"), "--out", str(out),
                          "--models", str(models_dir))
    assert code == 2 and "actormatte propagate" in error["message"]
    assert _nothing_written(out)


def test_detect_without_detector_weights(capsys, tmp_path, models_dir, shot):
    out = tmp_path / "out"
    args = [a for a in _run_args(shot, out, models_dir) if a != str(shot.ids) and a != "--masks"]
    code, error, _ = _cli(capsys, *args, "--detect")
    assert code == 4 and "MaskRCNN-10.onnx" in error["message"]
    assert _nothing_written(out)
