"""Late actors are propagated backwards from their first keyframe (issue 13) unless turned off."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from actormatte.cli import options as opts
from actormatte.cli.main import build_parser
from actormatte.config import MaskConfig, PropagateConfig, ReadConfig
from actormatte.errors import CancelledError
from actormatte.jobs import WorkFolder
from actormatte.progress import CancelToken
from actormatte.propagate import make_job, run_propagation, work_state
from actormatte.shot import load_shot_keyframes, open_shot
from support.shots import draw_frame

from .test_driver_corrections import assert_same, masks_of, propagate

BACKFILL = PropagateConfig(size=-1, checkpoint_every=2)
NO_BACKFILL = PropagateConfig(size=-1, checkpoint_every=2, backfill=False)


def late_actor_keyframes(shot, folder) -> tuple[str, ...]:
    """Actor 1 keyed at 1001, actor 2 (on screen from the start) first keyed at 1006."""
    _, ids0 = draw_frame(0, shot.width, shot.height, 2)
    _, ids5 = draw_frame(5, shot.width, shot.height, 2)
    cv2.imwrite(str(folder / "k1001.png"), np.where(ids0 == 1, 1, 0).astype(np.uint16))
    cv2.imwrite(str(folder / "k1006.png"), np.where(ids5 == 2, 2, 0).astype(np.uint16))
    return (f"{folder / 'k1001.png'}@1001", f"{folder / 'k1006.png'}@1006")


def area(ids: np.ndarray, actor: int) -> int:
    """Pixels of one actor."""
    return int((ids == actor).sum())


def test_late_actor_is_filled_before_their_keyframe(tmp_path, make_shot, models_dir):
    shot = make_shot(10, width=64, height=64)
    keys = late_actor_keyframes(shot, tmp_path)
    work = tmp_path / "work"
    full = propagate(shot, work, keys, models_dir, BACKFILL)
    assert (full.frames_propagated, full.frames_resumed) == (10, 0)
    filled = masks_of(work, 1001, 1010)
    # (Generated weights segment nothing meaningful: only presence and the rules are checked.)
    assert all(area(filled[f], 2) > 0 for f in range(1001, 1011))
    assert (work / "passes" / "backfill-1006").is_dir()

    # Switched off: a correction that reuses every pass and only recomposes the maps.
    off = propagate(shot, work, keys, models_dir, NO_BACKFILL)
    assert (off.frames_propagated, off.frames_resumed) == (0, 10)
    empty = masks_of(work, 1001, 1010)
    assert all(area(empty[f], 2) == 0 for f in range(1001, 1006))
    assert all(np.array_equal(empty[f], filled[f]) for f in range(1006, 1011))
    # The backfill only fills background: actor 1's pixels are the same with or without it.
    assert all(np.array_equal(empty[f] == 1, filled[f] == 1) for f in range(1001, 1006))
    assert all(np.array_equal(filled[f][empty[f] == 0] > 0, filled[f][empty[f] == 0] == 2)
               for f in range(1001, 1006))
    assert WorkFolder(work).read_job().xmem_options["backfill"] == 0
    assert not (work / "passes" / "backfill-1006").exists()

    # Back on: only the backfill pass runs again (frames 1001-1005), bit-identical.
    on = propagate(shot, work, keys, models_dir, BACKFILL)
    assert (on.frames_propagated, on.frames_resumed) == (5, 5)
    assert_same(filled, masks_of(work, 1001, 1010))


def test_no_backfill_flag():
    args = build_parser().parse_args(["propagate", "p.####.png", "--work", "w", "--masks",
                                      "ids.png", "--no-backfill", "--checkpoint-keep", "3"])
    config = opts.propagate_from_args(args)
    assert (config.backfill, config.checkpoint_keep) == (False, 3)
    default = opts.propagate_from_args(build_parser().parse_args(
        ["propagate", "p.####.png", "--work", "w", "--masks", "ids.png"]))
    assert (default.backfill, default.checkpoint_keep) == (True, 10)


class _CancelAfter(CancelToken):
    """A token that cancels itself at its ``n``-th check."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def check(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.cancel()
        super().check()


def test_cancel_stops_a_backfill_pass_and_the_rerun_resumes(tmp_path, make_shot, models_dir,
                                                            xmem_net_factory):
    shot = make_shot(8, width=64, height=64)
    keys = late_actor_keyframes(shot, tmp_path)
    opened = open_shot(shot.pattern, None, ReadConfig())
    keyframes = load_shot_keyframes(opened, MaskConfig(masks=keys), models_dir, "cpu")
    job = make_job(opened, keyframes, BACKFILL, "sha")
    work = WorkFolder(tmp_path / "work")
    steps = run_propagation(opened, keyframes, job, work, xmem_net_factory(1), BACKFILL, "cpu",
                            work_state(work, job, False), cancel=_CancelAfter(3))
    with pytest.raises(CancelledError):
        next(steps)  # the backfill pass (1006 -> 1001) yields nothing to the caller
    assert not list((work.root / "masks").glob("*.png"))  # stopped inside the backfill pass
    assert len(list((work.root / "passes" / "backfill-1006" / "masks").glob("*.png"))) == 3
    resumed = list(run_propagation(opened, keyframes, job, work, xmem_net_factory(1), BACKFILL,
                                   "cpu", work_state(work, job, False)))
    assert [f for f, _ in resumed] == list(range(1001, 1009))
    full = propagate(shot, tmp_path / "full", keys, models_dir, BACKFILL)
    assert full.frames_propagated == 8
    assert_same(masks_of(tmp_path / "full", 1001, 1008), masks_of(work.root, 1001, 1008))
