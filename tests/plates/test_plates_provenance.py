"""Provenance-aware resume (actormatte/provenance.py): stale frames recomputed, others reused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actormatte import pipeline
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig
from actormatte.jobs import WorkFolder
from actormatte.provenance import FrameProvenance, recorded_key, split_frames

SMALL = MatteConfig(size=64)
PLATE_XMEM = PropagateConfig(size=-1, checkpoint_every=4)


def test_key_depends_on_window_masks_and_options(tmp_path: Path) -> None:
    for frame in range(4):
        (tmp_path / f"{frame}.png").write_bytes(bytes([frame]))

    def make(options: dict[str, str]) -> FrameProvenance:
        return FrameProvenance(options, lambda f: [f, f + 1] if f < 3 else [f],
                               lambda f: tmp_path / f"{f}.png")

    base = make({"a": "1"})
    keys = [base.key(f) for f in range(4)]
    assert len(set(keys)) == 4 and make({"a": "1"}).key(0) == keys[0]
    assert make({"a": "2"}).key(0) != keys[0]
    (tmp_path / "3.png").write_bytes(b"changed")
    again = make({"a": "1"})
    assert [again.key(f) == k for f, k in enumerate(keys)] == [True, True, False, False]


class _Writer:
    def __init__(self, folder: Path, complete: set[int]) -> None:
        self.folder, self.complete = folder, complete

    def is_complete(self, frame: int) -> bool:
        return frame in self.complete

    def path_for(self, frame: int) -> Path:
        return self.folder / f"{frame}.exr"


def test_split_without_recorded_key_is_stale(tmp_path: Path, caplog) -> None:
    provenance = FrameProvenance({}, lambda f: [f], lambda f: tmp_path / "none.png")
    with caplog.at_level(logging.WARNING):  # the stale count is reported
        split = split_frames(range(1, 4), provenance, _Writer(tmp_path, {1, 2}), False)
    assert (split.todo, split.reused, split.stale) == ([1, 2, 3], [], [1, 2])
    assert "2 frame(s)" in caplog.text
    forced = split_frames(range(1, 4), provenance, _Writer(tmp_path, {1, 2}), True)
    assert forced.todo == [1, 2, 3] and not forced.stale


@pytest.mark.slow
def test_rerun_recomputes_only_changed_frames(tmp_path: Path, make_shot, models_dir) -> None:
    shot = make_shot(7)
    out = tmp_path / "out"

    first = pipeline.run(pipeline.RunOptions(
        plate=shot.pattern, out=str(out), masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu", propagate=PLATE_XMEM, matte=SMALL))
    assert (first.frames_written, first.frames_skipped) == (7, 0)
    key = recorded_key(out / "plate_mattes.1001.exr")
    assert key and len(key) == 64
    # Re-propagation changed frame 1007's ID map: only the frames of its window are recomputed
    # (7 frames, windows 1001-1005 and 1003-1007; frames 1005-1007 are owned by the second).
    work = WorkFolder(first.work)
    labels = work.read_mask(1007, (shot.width, shot.height)).copy()
    labels[:4, :4] = 1
    work.write_mask(1007, labels)
    again = pipeline.matte(pipeline.MatteOptions(work=first.work, out=str(out),
                                                 models=str(models_dir), device="cpu",
                                                 matte=SMALL))
    assert (again.frames_written, again.frames_skipped) == (3, 4)
    assert recorded_key(out / "plate_mattes.1001.exr") == key
