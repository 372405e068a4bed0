"""Late actors are propagated backwards from their first keyframe (issue 13) unless turned off."""

from __future__ import annotations

import cv2
import numpy as np

from actormatte.cli import options as opts
from actormatte.cli.main import build_parser
from actormatte.config import PropagateConfig
from actormatte.jobs import WorkFolder
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
