"""Damaged work folders are repaired, a full disk is exit 2 (issue 15, items 5 and 6).

- A truncated final ID map is recomposed from the pass's own map (no XMem step);
- a truncated pass map is recomputed from the last good checkpoint before it, bit-identically;
- an unreadable checkpoint falls back to the one before;
- ``run`` after a truncated mask repairs it (from the pass's map, before matting reads it) and
  mattes the missing frame instead of exiting 2;
- ``ENOSPC`` while writing a checkpoint exits 2 naming the folder, no temporary file left
  (injected, and for real on a 1 MiB tmpfs when the tests run as root).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte import checkpoints, pipeline
from actormatte.cli.main import main
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig
from actormatte.jobs import WorkFolder
from actormatte.propagate_passes import id_map_intact

from .test_driver_corrections import XMEM, assert_same, masks_of, propagate


def truncate(path: Path) -> None:
    """Cut a file to half its size (what a full disk or a killed copy leaves)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_damaged_masks_are_recomputed_from_the_last_good_checkpoint(tmp_path, make_shot,
                                                                    models_dir):
    shot = make_shot(10, width=64, height=64)
    work = tmp_path / "work"
    propagate(shot, work, (str(shot.ids),), models_dir)
    good = masks_of(work, 1001, 1010)
    own = work / "passes" / "forward-1001" / "masks"

    truncate(work / "masks" / "1005.png")
    repaired = propagate(shot, work, (str(shot.ids),), models_dir)
    assert (repaired.frames_propagated, repaired.frames_resumed) == (0, 10)
    assert_same(good, masks_of(work, 1001, 1010))

    # The pass's own map of 1005 (step 4) too: resume after the checkpoint of step 2 (the
    # checkpoints sit before the even frames: after steps 0, 2, 4, 6, 8).
    truncate(work / "masks" / "1005.png")
    truncate(own / "1005.png")
    recomputed = propagate(shot, work, (str(shot.ids),), models_dir)
    assert (recomputed.frames_propagated, recomputed.frames_resumed) == (7, 3)
    assert_same(good, masks_of(work, 1001, 1010))

    # ... and that checkpoint unreadable: the one of step 0.
    truncate(work / "masks" / "1005.png")
    (own / "1005.png").unlink()
    truncate(next((work / "checkpoint" / "forward-1001").glob("000002-*.pt")))
    fallback = propagate(shot, work, (str(shot.ids),), models_dir)
    assert (fallback.frames_propagated, fallback.frames_resumed) == (9, 1)
    assert_same(good, masks_of(work, 1001, 1010))


def test_run_repairs_a_truncated_mask_instead_of_exiting_2(tmp_path, make_shot, models_dir):
    shot = make_shot(6, width=64, height=64)
    out = tmp_path / "out"

    def run() -> pipeline.RunResult:
        return pipeline.run(pipeline.RunOptions(
            plate=shot.pattern, out=str(out), masks=MaskConfig(masks=(str(shot.ids),)),
            models=str(models_dir), device="cpu", propagate=XMEM, matte=MatteConfig(size=64)))

    run()
    exr = out / "plate_mattes.1003.exr"
    before = oiio.ImageBuf(str(exr)).get_pixels(oiio.FLOAT)
    exr.unlink()
    work = out / ".actormatte" / "plate_mattes"
    good = (work / "masks" / "1003.png").read_bytes()
    truncate(work / "masks" / "1003.png")
    again = run()  # before: InputError (exit 2) on frame 1003's mask, after writing others
    assert (again.frames_written, again.frames_skipped) == (1, 5)
    assert (work / "masks" / "1003.png").read_bytes() == good
    assert np.array_equal(before, oiio.ImageBuf(str(exr)).get_pixels(oiio.FLOAT))


def _full_disk_save(obj: object, handle) -> None:
    handle.write(b"partial checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")


def _cli_propagate(shot, work: Path, models_dir: Path) -> list[str]:
    return ["propagate", shot.pattern, "--work", str(work), "--masks", str(shot.ids),
            "--models", str(models_dir), "--device", "cpu", "--xmem-size", "-1",
            "--checkpoint-every", "2", "--no-progress-bar"]


def test_disk_full_during_a_checkpoint_exits_2(tmp_path, make_shot, models_dir, monkeypatch,
                                              capsys):
    shot = make_shot(4, width=64, height=64)
    work = tmp_path / "work"
    monkeypatch.setattr(checkpoints.torch, "save", _full_disk_save)
    assert main(_cli_propagate(shot, work, models_dir)) == 2
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert error["event"] == "error" and error["code"] == 2
    assert error["message"] == (f"no space left on {work / 'checkpoint' / 'forward-1001'}: "
                                "free space or use --work on another disk")
    assert not [p for p in work.rglob("*") if p.name.endswith(".tmp")]


def _tiny_tmpfs(path: Path) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
                          capture_output=True, check=False)
    return done.returncode == 0


def test_disk_full_for_real_on_a_tiny_tmpfs(tmp_path, make_shot, models_dir, capsys):
    mount = tmp_path / "tmpfs"
    if not _tiny_tmpfs(mount):
        pytest.skip("needs root and tmpfs mounts to fill a real disk")
    try:
        shot = make_shot(12, width=64, height=64)
        args = _cli_propagate(shot, mount / "work", models_dir) + ["--checkpoint-every", "1"]
        assert main(args) == 2
        error = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert error["message"].startswith(f"no space left on {mount / 'work'}")
        assert not [p for p in mount.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_propagate_config_rejects_keeping_no_checkpoint():
    with pytest.raises(Exception, match="--checkpoint-keep"):
        PropagateConfig(checkpoint_keep=0)


def test_id_map_check_without_decoding(tmp_path):
    ids = np.zeros((48, 64), np.uint16)
    ids[10:30, 5:25] = 1
    WorkFolder(tmp_path).write_mask(1001, ids)
    path = WorkFolder(tmp_path).mask_path(1001)
    assert id_map_intact(path, (64, 48))
    assert not id_map_intact(path, (48, 64))  # another size
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit inside the compressed data
    flipped = tmp_path / "flipped.png"
    flipped.write_bytes(bytes(data))
    assert not id_map_intact(flipped, (64, 48))
    truncate(path)
    assert not id_map_intact(path, (64, 48))
    assert not id_map_intact(tmp_path / "missing.png", (64, 48))
    cv2.imwrite(str(tmp_path / "eight.png"), ids.astype(np.uint8))
    assert not id_map_intact(tmp_path / "eight.png", (64, 48))  # 8-bit is not an ID map
