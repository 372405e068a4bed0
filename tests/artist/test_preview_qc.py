"""``actormatte preview`` and QC: overlay PNGs, H.264 MP4, contact sheet, qc.json and its flags.

A synthetic shot (64x48, 8 frames) where ``bob`` vanishes at 1005 and ``alice`` grows by half
at 1004 is written as matte EXRs with the writer's metadata, next to a plate and a work folder
of propagated ID maps; the preview files are decoded back and their sizes checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from actormatte.cli.main import main
from actormatte.export import MatteWriter
from actormatte.qc import QCReport

W, H, FIRST, COUNT = 64, 48, 1001, 8


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def shot_mattes(frame: int) -> dict[str, np.ndarray]:
    """bob: a 10x16 box until 1004, then gone; alice: 10x12, 10x18 from 1004 (+50 %)."""
    bob = box(6, 10, 16, 26) if frame < 1005 else np.zeros((H, W), np.float32)
    alice = box(40, 10, 50, 22) if frame < 1004 else box(40, 10, 50, 28)
    return {"bob": bob, "alice": alice}


def test_qc_flags_a_vanishing_and_a_jumping_actor() -> None:
    report = QCReport(["bob", "alice"])
    for frame in range(FIRST, FIRST + COUNT):
        mattes = shot_mattes(frame)
        alphas = np.stack([mattes["bob"], mattes["alice"]])
        propagated = alphas > 0.5
        if frame == 1007:   # XMem put alice somewhere else: the matte disagrees
            propagated[1] = np.roll(propagated[1], 20, axis=1)
        report.add(frame, alphas, propagated)
    messages = [flag.message for flag in report.flags]
    assert messages == ["alice area +50% at 1004: consider a keyframe", "bob lost at 1005",
                        "alice low propagation confidence 0.00 at 1007: consider a keyframe"]
    assert report.flagged_frames() == [1004, 1005, 1007]
    figures = report.frames
    assert figures[1001]["bob"]["change"] is None
    assert figures[1002]["bob"] == {"area": 160 / (W * H), "change": 0.0, "confidence": 1.0}
    assert figures[1005]["bob"]["change"] == 1.0 and figures[1005]["bob"]["area"] == 0.0
    assert figures[1004]["alice"]["change"] == pytest.approx(60 / 180)


def write_synthetic_shot(root: Path, make_shot: Callable[..., Any]) -> Path:
    """Plate PNGs, matte EXRs (with the CLI's metadata) and a work folder of ID maps."""
    shot = make_shot(COUNT, width=W, height=H)
    out = root / "out"
    instances = {"bob": {"name": "bob", "id": 1, "keyframe": FIRST},
                 "alice": {"name": "alice", "id": 2, "keyframe": FIRST}}
    writer = MatteWriter(out, "plate_mattes", ["bob", "alice"], W, H,
                         metadata={"instances": json.dumps(instances), "plate": shot.pattern,
                                   "input_colorspace": "srgb_tx"})
    masks = out / ".actormatte" / "plate_mattes" / "masks"
    masks.mkdir(parents=True)
    for frame in range(FIRST, FIRST + COUNT):
        mattes = shot_mattes(frame)
        writer.write(frame, mattes)
        ids = np.zeros((H, W), np.uint16)
        ids[mattes["bob"] > 0.5] = 1
        ids[mattes["alice"] > 0.5] = 2
        cv2.imwrite(str(masks / f"{frame:04d}.png"), ids)
    return out


def test_preview_command_writes_decodable_files(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path,
                                                make_shot: Callable[..., Any]) -> None:
    out = write_synthetic_shot(tmp_path, make_shot)
    assert main(["preview", "--out", str(out), "--contact-frames", "4", "--fps", "12"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (done,) = [e for e in events if e["event"] == "done"]
    assert done["command"] == "preview" and (done["first"], done["last"]) == (1001, 1008)
    assert done["flagged_frames"] == [1004, 1005] and done["qc_flags_total"] == 2
    assert [f["message"] for f in done["qc_flags"]] == [
        "alice area +50% at 1004: consider a keyframe", "bob lost at 1005"]
    folder = out / "preview" / "plate_mattes"
    pngs = sorted(folder.glob("plate_mattes_preview.*.png"))
    assert len(pngs) == COUNT and done["preview"]["frames"] == str(
        folder / "plate_mattes_preview.####.png")
    first = cv2.imread(str(pngs[0]))[:, :, ::-1]
    assert first.shape == (H, W, 3)
    plate = cv2.imread(str(tmp_path / "shot0" / "plate.1001.png"))[:, :, ::-1]
    background = (slice(35, 45), slice(25, 35))
    assert np.allclose(first[background], plate[background] * 0.35, atol=1.5)  # dimmed
    assert first[15, 10, 0] > first[15, 10, 2] + 60          # bob tinted red
    assert first[15, 45, 2] > first[15, 45, 0] + 60          # alice tinted blue
    _check_movie(Path(done["preview"]["movie"]))
    sheet = cv2.imread(done["preview"]["contact_sheet"])
    assert sheet.shape == (28 + H, 4 * W, 3)                  # 4 tiles in one row + legend
    qc = json.loads((folder / "qc.json").read_text())
    assert qc["actors"] == ["bob", "alice"] and qc["frames"]["1003"]["bob"]["confidence"] == 1.0
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]   # no temp files left


def _check_movie(path: Path) -> None:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    frames = list(reader)
    assert meta["codec"].startswith("h264") and tuple(meta["size"]) == (W, H)
    assert meta["fps"] == 12 and len(frames) == COUNT
    capture = cv2.VideoCapture(str(path))      # OpenCV decodes it too
    ok, image = capture.read()
    capture.release()
    assert ok and image.shape == (H, W, 3)


def test_preview_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["preview", "--out", str(tmp_path / "none")]) == 2
    (tmp_path / "a.1001.exr").touch()
    (tmp_path / "b.1001.exr").touch()
    assert main(["preview", "--out", str(tmp_path)]) == 2
    errors = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert "2 matte sequences (a, b); pick one with --name NAME" in errors[-1]["message"]


def _done(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [e for e in events if e["event"] == "done"]


def test_run_reports_qc_and_writes_the_preview(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, models_dir: Path,
                                               make_shot: Callable[..., Any]) -> None:
    """``run`` always writes qc.json and lists flags in ``done``; ``--preview`` adds pictures."""
    shot = make_shot(3)
    out = tmp_path / "out"
    argv = ["run", shot.pattern, "--out", str(out), "--models", str(models_dir), "--masks",
            str(shot.ids), "--size", "64", "--xmem-size", "-1", "--device", "cpu",
            "--no-progress-bar"]
    assert main(argv) == 0
    (done,) = _done(capsys)
    folder = out / "preview" / "plate_mattes"
    assert done["qc"] == str(folder / "qc.json") and done["preview"] is None
    assert isinstance(done["qc_flags"], list) and done["flagged_frames"] == sorted(
        {f["frame"] for f in done["qc_flags"]})
    qc = json.loads((folder / "qc.json").read_text())
    assert sorted(qc["frames"]) == ["1001", "1002", "1003"]
    assert qc["frames"]["1001"]["actor_01"]["confidence"] is not None   # from the work ID maps
    assert main([*argv, "--preview"]) == 0
    (done,) = _done(capsys)
    assert done["frames_skipped"] == 3 and Path(done["preview"]["movie"]).is_file()
    assert len(list(folder.glob("plate_mattes_preview.*.png"))) == 3
    stamp = (folder / "qc.json").stat().st_mtime_ns
    assert main(argv) == 0          # nothing changed: qc.json is reused, not recomputed
    (again,) = _done(capsys)
    assert (folder / "qc.json").stat().st_mtime_ns == stamp
    assert again["qc_flags"] == done["qc_flags"] and again["preview"] is None
    (folder.parent.parent / "plate_mattes.1002.exr").touch()   # a newer matte: QC again
    assert main(argv) == 0
    _done(capsys)
    assert (folder / "qc.json").stat().st_mtime_ns > stamp
