"""Corrections re-propagate only what they change, bit-identically to a full run (issue 13).

Tiny shots (64x64, 14 frames) with the generated XMem weights, XMem at plate size, a checkpoint
before every even frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from actormatte import pipeline
from actormatte.checkpoints import CheckpointStore
from actormatte.cli.main import main
from actormatte.config import MaskConfig, PropagateConfig
from actormatte.jobs import WorkFolder

XMEM = PropagateConfig(size=-1, checkpoint_every=2)


def propagate(shot, work: Path, masks: tuple[str, ...], models: Path,
              config: PropagateConfig = XMEM) -> pipeline.PropagateResult:
    """Propagate ``masks`` (``--masks`` values) over ``shot`` into ``work``."""
    return pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=str(work), masks=MaskConfig(masks=masks), models=str(models),
        device="cpu", propagate=config))


def masks_of(work: Path, first: int, last: int) -> dict[int, np.ndarray]:
    """The final ID maps of a work folder."""
    return {f: cv2.imread(str(WorkFolder(work).mask_path(f)), cv2.IMREAD_UNCHANGED)
            for f in range(first, last + 1)}


def assert_same(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> None:
    """Every frame's ID map is bit-identical."""
    for frame in a:
        assert a[frame].dtype == np.uint16 and np.array_equal(a[frame], b[frame]), frame


def corrected_ids(shot, path: Path) -> str:
    """An ID map for frame 1010: the first keyframe's, actor 1 shifted right by 3 pixels."""
    ids = cv2.imread(str(shot.ids), cv2.IMREAD_UNCHANGED)
    moved = np.where(np.roll(ids == 1, 3, axis=1), 1, np.where(ids == 1, 0, ids))
    cv2.imwrite(str(path), moved.astype(np.uint16))
    return f"{path}@1010"


def test_correction_resumes_before_its_frame_and_equals_a_full_run(tmp_path, make_shot,
                                                                   models_dir, capsys):
    shot = make_shot(14, width=64, height=64)
    first = (f"{shot.ids}@1001",)
    key = corrected_ids(shot, tmp_path / "key1010.png")
    work = tmp_path / "work"
    base = propagate(shot, work, first, models_dir)
    assert (base.frames_propagated, base.frames_resumed) == (14, 0)
    original = masks_of(work, 1001, 1014)
    # Checkpoints stay after the run: after steps 0, 2, ..., 12 of the forward pass, i.e.
    # right before each even frame (1002, ..., 1014).
    store = CheckpointStore(work / "checkpoint", 10)
    assert sorted(store.positions("forward-1001")) == [0, 2, 4, 6, 8, 10, 12]

    # Adding a keyframe at 1010 (step 9) resumes after step 8: frames 1001-1009 are reused;
    # the CLI's done event reports both counts.
    assert main(["propagate", shot.pattern, "--work", str(work), "--masks", first[0],
                 "--masks", key, "--models", str(models_dir), "--device", "cpu",
                 "--xmem-size", "-1", "--checkpoint-every", "2", "--no-progress-bar"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["event"] == "done"
    assert (done["frames_propagated"], done["frames_resumed"]) == (5, 9)
    full = propagate(shot, tmp_path / "full", (*first, key), models_dir)
    assert full.frames_propagated == 14
    assert_same(masks_of(tmp_path / "full", 1001, 1014), masks_of(work, 1001, 1014))
    assert WorkFolder(work).read_job().complete
    assert WorkFolder(work).read_job().keyframes == (1001, 1010)

    # Removing it again: the same reuse, and the original masks come back bit for bit.
    removed = propagate(shot, work, first, models_dir)
    assert (removed.frames_propagated, removed.frames_resumed) == (5, 9)
    assert_same(original, masks_of(work, 1001, 1014))

    # Unchanged keyframes: nothing to do.
    again = propagate(shot, work, first, models_dir)
    assert (again.frames_propagated, again.frames_resumed) == (0, 14)


def test_correction_in_the_backward_range_keeps_the_forward_pass(tmp_path, make_shot,
                                                                 models_dir):
    shot = make_shot(10, width=64, height=64)
    work = tmp_path / "work"
    ids = f"{shot.ids}@1005"
    first = propagate(shot, work, (ids,), models_dir)
    assert (first.frames_propagated, first.frames_resumed) == (10, 0)
    # A keyframe at the first frame changes the first keyframe: every pass starts over.
    moved = propagate(shot, work, (f"{shot.ids}@1001", ids), models_dir)
    assert moved.frames_propagated == 10
    full = propagate(shot, tmp_path / "full", (f"{shot.ids}@1001", ids), models_dir)
    assert_same(masks_of(tmp_path / "full", 1001, 1010), masks_of(work, 1001, 1010))
    assert not (work / "checkpoint" / "backward-1005").exists()
    assert not (work / "passes" / "forward-1005").exists()
    assert full.frames_propagated == 10


def test_checkpoints_are_thinned_far_from_the_end_first(tmp_path, make_shot, models_dir):
    shot = make_shot(12, width=64, height=64)
    work = tmp_path / "work"
    config = PropagateConfig(size=-1, checkpoint_every=1, checkpoint_keep=4)
    propagate(shot, work, (str(shot.ids),), models_dir, config)
    positions = sorted(CheckpointStore(work / "checkpoint", 4).positions("forward-1001"))
    # The newest stays; the gaps shrink towards the pass's end (4, 4, 2, 1 steps).
    assert positions == [3, 7, 9, 10]
