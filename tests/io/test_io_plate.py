"""Image-sequence plates: formats, value scaling, channel layouts, size and corruption errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import InputError
from actormatte.io import ImageSequencePlate, open_plate

H, W = 12, 16


def write_image(path: Path, pixels: np.ndarray, pixel_type: object, **attrs: object) -> None:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], pixel_type)
    spec.attribute("oiio:UnassociatedAlpha", 1)  # store colour as given, not divided by alpha
    for key, value in attrs.items():
        spec.attribute(key, value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(np.ascontiguousarray(pixels)), out.geterror()
    out.close()


def ramp(dtype: type, top: int, channels: int = 3) -> np.ndarray:
    values = np.arange(H * W * channels).reshape(H, W, channels) * 7919 % (top + 1)
    return values.astype(dtype)


def test_png_8_bit_scales_exactly(tmp_path: Path) -> None:
    pixels = ramp(np.uint8, 255)
    write_image(tmp_path / "p.1001.png", pixels, oiio.UINT8)
    with open_plate(tmp_path / "p.####.png") as plate:
        assert (plate.width, plate.height, plate.channels, plate.is_float) == (W, H, 3, False)
        frame = plate.read(1001)
    assert frame.dtype == np.float32 and frame.shape == (H, W, 3)
    np.testing.assert_allclose(frame, pixels / 255.0, atol=1e-7)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_scales_by_65535(tmp_path: Path, ext: str) -> None:
    pixels = ramp(np.uint16, 65535)
    write_image(tmp_path / f"p.0001.{ext}", pixels, oiio.UINT16)
    plate = open_plate(tmp_path / f"p.%04d.{ext}")
    np.testing.assert_allclose(plate.read(1), pixels / 65535.0, atol=1e-7)
    assert not plate.is_float


def test_tiff_8_bit_and_float(tmp_path: Path) -> None:
    pixels = ramp(np.uint8, 255)
    write_image(tmp_path / "a.0001.tif", pixels, oiio.UINT8)
    np.testing.assert_allclose(open_plate(tmp_path / "a.####.tif").read(1), pixels / 255.0,
                               atol=1e-7)
    floats = np.linspace(-0.5, 4.0, H * W * 3, dtype=np.float32).reshape(H, W, 3)
    write_image(tmp_path / "f.0001.tif", floats, oiio.FLOAT)
    plate = open_plate(tmp_path / "f.####.tif")
    assert plate.is_float
    np.testing.assert_array_equal(plate.read(1), floats)


def test_dpx_10_bit(tmp_path: Path) -> None:
    pixels = np.full((H, W, 3), 0.5, dtype=np.float32)
    pixels[:, :, 1] = 0.25
    write_image(tmp_path / "d.1001.dpx", pixels, oiio.UINT16, **{"oiio:BitsPerSample": 10})
    plate = open_plate(tmp_path / "d.@@@@.dpx")
    assert not plate.is_float
    np.testing.assert_allclose(plate.read(1001)[0, 0], [0.5, 0.25, 0.5], atol=1.5 / 1023)


def test_jpeg_is_close(tmp_path: Path) -> None:
    pixels = np.full((H, W, 3), (200, 100, 30), dtype=np.uint8)
    write_image(tmp_path / "j.0001.jpg", pixels, oiio.UINT8)
    frame = open_plate(tmp_path / "j.####.jpg").read(1)
    np.testing.assert_allclose(frame, pixels / 255.0, atol=4 / 255)


@pytest.mark.parametrize("pixel_type", [oiio.HALF, oiio.FLOAT])
def test_exr_values_as_stored(tmp_path: Path, pixel_type: object) -> None:
    pixels = np.linspace(-1.0, 30.0, H * W * 3, dtype=np.float32).reshape(H, W, 3)
    pixels = pixels.astype(np.float16).astype(np.float32)  # representable in half
    write_image(tmp_path / "e.1001.exr", pixels, pixel_type, compression="zip")
    plate = open_plate(tmp_path / "e.####.exr")
    assert plate.is_float
    np.testing.assert_array_equal(plate.read(1001), pixels)


def test_grey_grey_alpha_and_rgba(tmp_path: Path) -> None:
    grey = ramp(np.uint8, 255, channels=1)[:, :, 0]
    write_image(tmp_path / "g.0001.png", grey, oiio.UINT8)
    plate = open_plate(tmp_path / "g.####.png")
    assert plate.channels == 1
    frame = plate.read(1)
    for c in range(3):
        np.testing.assert_allclose(frame[:, :, c], grey / 255.0, atol=1e-7)

    grey_alpha = ramp(np.uint8, 255, channels=2)
    write_image(tmp_path / "ga.0001.png", grey_alpha, oiio.UINT8)
    frame = open_plate(tmp_path / "ga.####.png").read(1)
    np.testing.assert_allclose(frame, np.repeat(grey_alpha[:, :, :1], 3, 2) / 255.0, atol=1e-7)

    rgba = ramp(np.uint8, 255, channels=4)
    write_image(tmp_path / "c.0001.png", rgba, oiio.UINT8)
    stored = cv2.imread(str(tmp_path / "c.0001.png"), cv2.IMREAD_UNCHANGED)  # BGRA as stored
    np.testing.assert_array_equal(stored[:, :, [2, 1, 0, 3]], rgba)
    plate = open_plate(tmp_path / "c.####.png")
    assert plate.channels == 4
    np.testing.assert_allclose(plate.read(1), rgba[:, :, :3] / 255.0, atol=1e-7)


def test_exr_frame_covers_data_and_display_windows(tmp_path: Path) -> None:
    path = tmp_path / "w.0001.exr"
    spec = oiio.ImageSpec(6, 4, 3, oiio.FLOAT)
    spec.x, spec.y = 14, -2  # partly outside the 16x12 display window (overscan)
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, W, H
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(np.full((4, 6, 3), 0.75, dtype=np.float32))
    out.close()
    plate = open_plate(tmp_path / "w.####.exr")
    # Working window = data (14,-2 6x4) united with display (0,0 16x12): (0,-2) 20x14.
    assert (plate.geometry.data.x, plate.geometry.data.y) == (0, -2)
    assert (plate.width, plate.height) == (W + 4, H + 2)
    frame = plate.read(1)
    expected = np.zeros((H + 2, W + 4, 3), dtype=np.float32)
    expected[0:4, 14:20] = 0.75
    np.testing.assert_array_equal(frame, expected)


def test_frame_of_another_size_names_file_and_frame(tmp_path: Path) -> None:
    write_image(tmp_path / "s.1001.png", ramp(np.uint8, 255), oiio.UINT8)
    write_image(tmp_path / "s.1002.png", np.zeros((H, W + 2, 3), np.uint8), oiio.UINT8)
    plate = open_plate(tmp_path / "s.####.png")
    with pytest.raises(InputError, match=r"frame 1002 is 18x12.*16x12.*s\.1002\.png"):
        plate.read(1002)


def test_truncated_exr_names_file_and_frame(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    for frame in (1, 2):
        write_image(tmp_path / f"t.{frame:04d}.exr", noise, oiio.HALF, compression="zip")
    data = (tmp_path / "t.0002.exr").read_bytes()
    (tmp_path / "t.0002.exr").write_bytes(data[: len(data) - 300])
    plate = open_plate(tmp_path / "t.####.exr")
    assert plate.read(1).shape == (64, 64, 3)
    with pytest.raises(InputError, match=r"frame 2 .*t\.0002\.exr"):
        plate.read(2)


def test_garbage_file_is_an_input_error(tmp_path: Path) -> None:
    write_image(tmp_path / "b.0001.png", ramp(np.uint8, 255), oiio.UINT8)
    (tmp_path / "b.0002.png").write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=r"frame 2.*b\.0002\.png"):
        open_plate(tmp_path / "b.####.png").read(2)


def test_check_range(tmp_path: Path) -> None:
    for frame in (1001, 1002, 1003, 1005, 1006):
        write_image(tmp_path / f"r.{frame}.png", ramp(np.uint8, 255), oiio.UINT8)
    plate = open_plate(tmp_path / "r.####.png")
    assert plate.frames == [1001, 1002, 1003, 1005, 1006]
    assert (plate.first, plate.last) == (1001, 1006)
    plate.check_range(1001, 1003)
    plate.check_range(1005, 1006)
    with pytest.raises(InputError, match=r"frame 1004 is missing: .*r\.1004\.png.*1001-1003"):
        plate.check_range(1001, 1006)
    with pytest.raises(InputError, match=r"frame 1004 is missing.*--frames 1005-1006"):
        plate.check_range(1004, 1006)
    with pytest.raises(InputError, match="outside the plate's range 1001-1006"):
        plate.check_range(990, 1002)
    with pytest.raises(InputError, match="outside"):
        plate.check_range(1005, 1007)
    with pytest.raises(InputError, match="empty"):
        plate.check_range(1003, 1002)
    with pytest.raises(InputError, match="not in the plate"):
        plate.read(1004)


def test_open_plate_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no plate frames match"):
        open_plate(tmp_path / "none.####.exr")
    (tmp_path / "x.0001.gif").write_bytes(b"GIF89a")
    with pytest.raises(InputError, match="unsupported plate format '.gif'"):
        open_plate(tmp_path / "x.####.gif")


def test_concrete_frame_opens_the_sequence(tmp_path: Path) -> None:
    for frame in (5, 6, 7):
        write_image(tmp_path / f"c.{frame:04d}.png", ramp(np.uint8, 255), oiio.UINT8)
    plate = open_plate(tmp_path / "c.0006.png")
    assert isinstance(plate, ImageSequencePlate)
    assert plate.frames == [5, 6, 7]
    assert plate.path_for(7) == str(tmp_path / "c.0007.png")
