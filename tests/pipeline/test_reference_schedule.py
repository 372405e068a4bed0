"""``--schedule reference`` equals the official 3-frame loop (``official_video_loop``)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from actormatte import pipeline
from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig
from actormatte.export import read_matte_exr
from actormatte.jobs import WorkFolder
from actormatte.matting.loading import load_maggie
from actormatte.matting.reference import (
    official_video_loop,
    preprocess_official,
    reverse_official,
)


def test_reference_schedule_equals_official_loop(tmp_path, make_shot, models_dir):
    shot = make_shot(5, width=80, height=64)  # size 64 keeps 64x80: reverse is crop + identity
    work = tmp_path / "work"
    pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=str(work), masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu", propagate=PropagateConfig(size=-1)))
    result = pipeline.matte(pipeline.MatteOptions(
        work=str(work), out=str(tmp_path / "out"), models=str(models_dir), device="cpu",
        matte=MatteConfig(size=64, schedule="reference"), export=ExportConfig(half=False)))
    assert result.frames_written == 5

    frames = np.stack([cv2.imread(str(shot.folder / f"plate.{f}.png"))[:, :, ::-1]
                       for f in range(1001, 1006)])  # (T, H, W, 3) uint8 RGB
    ids = np.stack([WorkFolder(work).read_mask(f, (80, 64)) for f in range(1001, 1006)])
    masks = np.stack([(ids == actor) for actor in (1, 2)], axis=1).astype(np.uint8) * 255
    image, mask, info = preprocess_official(frames, masks, short_side=64)
    # preprocess_official's image is channels-last in memory (a permute without a copy), which
    # makes torch pick other conv kernels (differences ~4e-6); the pipeline's frames are
    # contiguous, so compare on contiguous input.
    image = image.contiguous()
    net = load_maggie(models_dir / "maggie-video", "video")
    with torch.inference_mode():
        official = official_video_loop(net, image, mask)  # (T, N, Hp, Wp), snapped
    expected = reverse_official(official, info).numpy()  # (T, N, H, W)
    for index, frame in enumerate(range(1001, 1006)):
        alphas, _ = read_matte_exr(tmp_path / "out" / f"plate_mattes.{frame}.exr")
        got = np.stack([alphas["actor_01"], alphas["actor_02"]])
        np.testing.assert_array_equal(got, expected[index], err_msg=f"frame {frame}")
