"""End to end through pipeline.run on real-plate features: overscan, 2:1 pixels, a bbox roto
mask, timecode, frames -2..0 named as Nuke does; tiny sizes (64-px matting, plate-size XMem)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from plate_files import read_spec, timecode, write_exr

from actormatte import pipeline, propagate
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig
from actormatte.errors import InputError
from actormatte.export import read_matte_exr
from actormatte.jobs import WorkFolder

DISPLAY = (0, 0, 64, 48)
SMALL = MatteConfig(size=64)
PLATE_XMEM = PropagateConfig(size=-1, checkpoint_every=2)


def _plate(folder: Path, frames: range) -> tuple[str, Path]:
    """80x56 data window at (-8,-4) over a 64x48 display, 2:1 pixels, an actor box."""
    yy, xx = np.mgrid[0:56, 0:80].astype(np.float32)
    for index, frame in enumerate(frames):
        rgb = np.stack([(xx * 3 + index) % 64, (yy * 5) % 64, (xx + yy) % 64], -1) / 255.0
        rgb[16:36, 30 + index:44 + index] = (0.9, 0.3, 0.1)
        write_exr(folder / f"p.{frame:04d}.exr", rgb.astype(np.float32), origin=(-8, -4),
                  display=DISPLAY, pixel_aspect=2.0,
                  attributes={"smpte:TimeCode": timecode(abs(frame)),
                              "FramesPerSecond": ("rational", (25, 1))})
    roto = np.ones((20, 14, 1), np.float32)  # the box, as a Nuke bbox render (display coords)
    write_exr(folder / "roto.exr", roto, origin=(22, 12), display=DISPLAY, channels=("A",))
    return str(folder / "p.####.exr"), folder / "roto.exr"


def test_overscan_anamorphic_negative_frames_end_to_end(tmp_path: Path, models_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pattern, roto = _plate(tmp_path, range(-2, 1))
    seen: list[tuple[int, ...]] = []  # what XMem is given: the squared picture
    prepare = propagate.prepare_xmem_frame

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        image = prepare(*args, **kwargs)
        seen.append(tuple(image.shape))
        return image

    monkeypatch.setattr(propagate, "prepare_xmem_frame", spy)
    assert (tmp_path / "p.-002.exr").is_file() and (tmp_path / "p.0000.exr").is_file()
    masks = MaskConfig(actor_masks=(f"bob={roto}@-2",))
    options = pipeline.RunOptions(plate=pattern, out=str(tmp_path / "out"), masks=masks,
                                  models=str(models_dir), device="cpu", propagate=PLATE_XMEM,
                                  matte=SMALL)
    events: list[tuple[str, dict]] = []
    result = pipeline.run(options, events=lambda name, fields: events.append((name, fields)))
    assert (result.first, result.last, result.frames_written) == (-2, 0, 3)
    start = events[0][1]
    assert start["frames"] == [-2, 0] and start["input_colorspace"] == "lin_rec709"
    assert "float" in start["input_colorspace_reason"]
    names = sorted(p.name for p in (tmp_path / "out").glob("*.exr"))
    assert names == ["p_mattes.-001.exr", "p_mattes.-002.exr", "p_mattes.0000.exr"]
    for frame in (-2, -1, 0):
        path = tmp_path / "out" / f"p_mattes.{frame:04d}.exr"
        spec = read_spec(path)
        assert (spec.x, spec.y, spec.width, spec.height) == (-8, -4, 80, 56)
        assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == DISPLAY
        assert spec.get_float_attribute("PixelAspectRatio") == 2.0
        assert tuple(spec.getattribute("smpte:TimeCode")) == timecode(abs(frame))[1]
        alpha, metadata = read_matte_exr(path)
        assert alpha["bob"].shape == (56, 80) and np.isfinite(alpha["bob"]).all()
        assert metadata["processing_size"] == "182x64"  # 160x56 square pixels to short side 64
    # XMem saw 160x56 square pixels (80 plate pixels of 2:1), and the job says so.
    assert seen and set(seen) == {(3, 56, 160)}
    work = WorkFolder(result.work)
    assert work.read_job().xmem_options["pixel_aspect"] == 2.0
    # The bbox roto (display 22,12) lands at data-window pixel (30, 16): the plate's box.
    ids = work.read_mask(-2, (80, 56))
    expected = np.zeros((56, 80), bool)
    expected[16:36, 30:44] = True
    np.testing.assert_array_equal(ids > 0, expected)


def test_bad_mask_format_exits_2_with_nothing_written(tmp_path: Path, models_dir: Path) -> None:
    pattern, _ = _plate(tmp_path, range(1, 4))
    write_exr(tmp_path / "small.exr", np.ones((30, 40, 1), np.float32), channels=("A",))
    out = tmp_path / "out"
    options = pipeline.RunOptions(plate=pattern, out=str(out), device="cpu",
                                  masks=MaskConfig(actor_masks=(f"bob={tmp_path / 'small.exr'}",)),
                                  models=str(models_dir), propagate=PLATE_XMEM, matte=SMALL)
    with pytest.raises(InputError, match="40x30 but the plate is 64x48"):
        pipeline.run(options)
    assert not list(out.rglob("*.exr")) and not list(out.rglob("*.png"))
