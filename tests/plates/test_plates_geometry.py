"""Plate geometry: overscan, bbox masks, pixel aspect and header attributes in the outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plate_files import read_spec, timecode, write_exr

from actormatte.errors import InputError
from actormatte.export import MatteWriter
from actormatte.io import open_plate
from actormatte.io.geometry import PlateGeometry, PlateSpace, Window
from actormatte.masks.mask_files import read_actor_mask, read_id_map

DISPLAY = (0, 0, 64, 48)


def _overscan_plate(folder: Path, frames: range = range(1, 3)) -> str:
    """64x48 display, data window 80x56 at (-8, -4), 2:1 pixels, a timecode per frame."""
    for frame in frames:
        pixels = np.zeros((56, 80, 3), np.float32)
        pixels[:, :8] = 0.25  # overscan columns left of the display window
        pixels[20:30, 30:40] = 1.0
        write_exr(folder / f"o.{frame:04d}.exr", pixels, origin=(-8, -4), display=DISPLAY,
                  pixel_aspect=2.0, attributes={"smpte:TimeCode": timecode(frame),
                                                "FramesPerSecond": ("rational", (24, 1))})
    return str(folder / "o.####.exr")


def test_overscan_plate_reads_its_whole_data_window(tmp_path: Path) -> None:
    plate = open_plate(_overscan_plate(tmp_path))
    assert plate.geometry == PlateGeometry(Window(-8, -4, 80, 56), Window(*DISPLAY), 2.0)
    assert (plate.width, plate.height) == (80, 56) and plate.pixel_aspect == 2.0
    frame = plate.read(1)
    assert frame.shape == (56, 80, 3)
    assert np.allclose(frame[:, :8], 0.25) and np.allclose(frame[20:30, 30:40], 1.0)


def test_writer_keeps_windows_pixel_aspect_and_timecode(tmp_path: Path) -> None:
    plate = open_plate(_overscan_plate(tmp_path))
    writer = MatteWriter(tmp_path / "out", "m", ["bob"], plate.width, plate.height,
                         geometry=plate.geometry, plate_attributes=plate.carried_attributes)
    plate.read(2)
    path = writer.write(2, {"bob": np.ones((56, 80), np.float32)})
    spec = read_spec(path)
    assert (spec.x, spec.y, spec.width, spec.height) == (-8, -4, 80, 56)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == DISPLAY
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert tuple(spec.getattribute("smpte:TimeCode")) == timecode(2)[1]
    assert tuple(spec.getattribute("FramesPerSecond")) == (24, 1)
    assert writer.is_complete(2)
    square = MatteWriter(tmp_path / "out", "m", ["bob"], 80, 56)
    assert not square.is_complete(2)  # windows differ: resume rewrites it


def _space(data: Window) -> PlateSpace:
    return PlateSpace(PlateGeometry(data, Window(*DISPLAY)))


def test_bbox_roto_mask_is_placed_in_plate_space(tmp_path: Path) -> None:
    mask = np.ones((16, 20, 1), np.float32)
    write_exr(tmp_path / "roto.exr", mask, origin=(10, 12), display=DISPLAY, channels=("A",))
    full = read_actor_mask(tmp_path / "roto.exr", _space(Window(*DISPLAY)))
    expected = np.zeros((48, 64), bool)
    expected[12:28, 10:30] = True
    np.testing.assert_array_equal(full, expected)
    overscan = read_actor_mask(tmp_path / "roto.exr", _space(Window(-8, -4, 80, 56)))
    assert overscan.shape == (56, 80)
    np.testing.assert_array_equal(overscan[4:52, 8:72], expected)
    assert not overscan[:4].any() and not overscan[:, :8].any()


def test_id_map_at_display_or_data_size_and_wrong_size(tmp_path: Path) -> None:
    ids = np.zeros((48, 64, 1), np.float32)
    ids[5:9, 6:10] = 2
    write_exr(tmp_path / "ids.exr", ids, display=DISPLAY, channels=("Y",))
    placed = read_id_map(tmp_path / "ids.exr", _space(Window(-8, -4, 80, 56)))
    assert placed.shape == (56, 80) and (placed[9:13, 14:18] == 2).all() and placed.sum() == 32
    with_overscan = np.zeros((56, 80, 1), np.float32)
    write_exr(tmp_path / "big.exr", with_overscan, channels=("Y",))
    assert read_id_map(tmp_path / "big.exr", _space(Window(-8, -4, 80, 56))).shape == (56, 80)
    write_exr(tmp_path / "bad.exr", np.zeros((30, 40, 1), np.float32), channels=("Y",))
    with pytest.raises(InputError, match="40x30 but the plate is 64x48"):
        read_id_map(tmp_path / "bad.exr", _space(Window(*DISPLAY)))


def test_plain_tuple_plate_size_still_works(tmp_path: Path) -> None:
    ids = np.zeros((48, 64, 1), np.float32)
    write_exr(tmp_path / "ids.exr", ids, channels=("Y",))
    assert read_id_map(tmp_path / "ids.exr", (64, 48)).shape == (48, 64)


def test_layered_mask_exr_lands_in_the_overscan_working_window(tmp_path: Path) -> None:
    from actormatte.masks.mask_layers import read_mask_layers

    write_exr(tmp_path / "layers.exr", np.ones((16, 20, 1), np.float32), origin=(10, 12),
              display=DISPLAY, channels=("bob.A",))
    masks = read_mask_layers(tmp_path / "layers.exr", _space(Window(-8, -4, 80, 56)))
    expected = np.zeros((56, 80), bool)
    expected[16:32, 18:38] = True
    np.testing.assert_array_equal(masks["bob"], expected)
