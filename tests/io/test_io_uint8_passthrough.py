"""8-bit sRGB plates skip the float passes: the same bytes as converting ``v / 255``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actormatte.config import ReadConfig
from actormatte.shot import open_shot


def _every_byte(channels: int) -> np.ndarray:
    """(32, 256, channels) uint8: every value in every channel, shifted per channel and row."""
    ramp = (np.arange(256)[None, :] + np.arange(32)[:, None] * 7) % 256  # (32, 256)
    return np.stack([(ramp + 85 * c) % 256 for c in range(channels)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_an_8bit_srgb_frame_is_its_stored_bytes(tmp_path: Path, channels: int) -> None:
    pixels = _every_byte(channels)
    for frame in (1, 2):
        stored = (pixels[:, :, 0] if channels == 1  # cv2 writes BGR(A)
                  else np.concatenate([pixels[:, :, 2::-1], pixels[:, :, 3:]], axis=-1))
        cv2.imwrite(str(tmp_path / f"p.{frame:04d}.png"), stored)
    shot = open_shot(str(tmp_path / "p.####.png"), None, ReadConfig())
    assert shot.converter_is_identity
    fast = shot.decode_uint8(1)
    assert fast.dtype == np.uint8 and fast.shape == (32, 256, 3)
    assert np.array_equal(fast, shot.converter.to_uint8(shot.plate.read(1)))  # the float way
    expected = pixels[:, :, :3] if channels >= 3 else np.repeat(pixels, 3, axis=-1)
    assert np.array_equal(fast, expected)


def test_16bit_and_converted_plates_keep_the_float_path(tmp_path: Path) -> None:
    deep = (np.arange(32 * 256 * 3).reshape(32, 256, 3) * 37 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "d.0001.png"), deep)
    shot = open_shot(str(tmp_path / "d.####.png"), None, ReadConfig())
    assert shot.plate.read_uint8_or_float(1).dtype == np.float32  # not 8-bit: float
    assert np.array_equal(shot.decode_uint8(1), shot.converter.to_uint8(shot.plate.read(1)))
    cv2.imwrite(str(tmp_path / "l.0001.png"), _every_byte(3))
    linear = open_shot(str(tmp_path / "l.####.png"), None, ReadConfig(input_colorspace="Linear"))
    assert not linear.converter_is_identity  # a real conversion: soft clip, OCIO
    assert np.array_equal(linear.decode_uint8(1),
                          linear.converter.to_uint8(linear.plate.read(1)))
