"""``run`` after a correction re-mattes exactly the frames whose ID maps changed (issue 13).

The matte stage keys each EXR on the bytes of its window's ID maps (actormatte.provenance); the
propagation must therefore rewrite the maps before the matte split reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from actormatte import pipeline
from actormatte.config import MaskConfig, MatteConfig
from actormatte.jobs import WorkFolder

from .test_driver_corrections import XMEM, corrected_ids, masks_of


def test_run_after_a_correction_remattes_the_changed_frames(tmp_path, make_shot, models_dir):
    shot = make_shot(12, width=64, height=64)
    out = tmp_path / "out"
    first = (f"{shot.ids}@1001",)
    key = corrected_ids(shot, tmp_path / "key1010.png")

    def run(masks: tuple[str, ...], where: Path = out) -> pipeline.RunResult:
        return pipeline.run(pipeline.RunOptions(
            plate=shot.pattern, out=str(where), masks=MaskConfig(masks=masks),
            models=str(models_dir), device="cpu", propagate=XMEM, matte=MatteConfig(size=64)))

    full = run(first)
    assert (full.frames_written, full.frames_propagated, full.frames_resumed) == (12, 12, 0)
    work = out / ".actormatte" / "plate_mattes"
    before = masks_of(work, 1001, 1012)
    corrected = run((*first, key))
    after = masks_of(work, 1001, 1012)
    changed = [f for f in before if not np.array_equal(before[f], after[f])]
    assert changed and min(changed) >= 1010
    # Frames whose windows saw no changed map are reused, the others re-matted.
    assert 0 < corrected.frames_written < 12
    assert corrected.frames_written + corrected.frames_skipped == 12
    # XMem: the last checkpoint before 1010 (step 9) is the one right before it (step 8), so
    # 1010-1012 are recomputed.
    assert (corrected.frames_propagated, corrected.frames_resumed) == (3, 9)
    again = run((*first, key))
    assert (again.frames_written, again.frames_skipped) == (0, 12)
    assert (again.frames_propagated, again.frames_resumed) == (0, 12)
    # Same EXRs as a fresh run with both keyframes.
    fresh = run((*first, key), tmp_path / "fresh")
    assert fresh.frames_written == 12
    for frame in range(1001, 1013):
        name = f"plate_mattes.{frame}.exr"
        a = oiio.ImageBuf(str(out / name)).get_pixels(oiio.FLOAT)
        b = oiio.ImageBuf(str(tmp_path / "fresh" / name)).get_pixels(oiio.FLOAT)
        assert np.array_equal(a, b), frame
    assert WorkFolder(work).read_job().keyframes == (1001, 1010)
