"""A 300-frame shot keeps memory bounded: frames stream through propagate and matte."""

from __future__ import annotations

import psutil
import pytest

from actormatte import pipeline
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig
from actormatte.progress import ProgressEvent

MB = 1 << 20


@pytest.mark.slow
def test_300_frame_shot_rss_is_bounded(tmp_path, make_shot, models_dir):
    # 128x192 frames: holding every frame would add ~60 MB (float RGB alone) over the shot.
    shot = make_shot(300, width=192, height=128, actors=1)
    process = psutil.Process()
    samples: dict[str, list[int]] = {"propagate": [], "matte": []}

    def sample(event: ProgressEvent) -> None:
        if event.stage in samples:
            samples[event.stage].append(process.memory_info().rss)

    work = str(tmp_path / "work")
    pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=work, masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu",
        propagate=PropagateConfig(size=32, checkpoint_every=100)), progress=sample)
    propagate = samples["propagate"]
    assert len(propagate) == 300
    growth = max(propagate[150:]) - propagate[60]
    assert growth < 30 * MB, f"propagation RSS grew {growth / MB:.1f} MB over 240 frames"

    # Matting cost does not depend on the shot length (stateless windows): a 30-frame chunk in
    # the middle of the 300-frame shot shows the per-window memory is flat.
    pipeline.matte(pipeline.MatteOptions(
        work=work, out=str(tmp_path / "out"), frames=(1136, 1165), models=str(models_dir),
        device="cpu", matte=MatteConfig(size=32)), progress=sample)
    matte = samples["matte"]
    assert len(matte) == 30
    growth = max(matte[10:]) - matte[6]
    assert growth < 30 * MB, f"matting RSS grew {growth / MB:.1f} MB over 24 frames"
