"""XMem on non-square pixels: the processing size is that of the squared picture."""

from __future__ import annotations

import numpy as np
import pytest

from actormatte.propagation import xmem_image_size
from actormatte.propagation.preprocess import prepare_xmem_frame


@pytest.mark.parametrize(("height", "width", "size", "aspect"), [
    (1080, 960, 480, 2.0),  # 2:1 anamorphic 1920x1080 picture
    (1556, 1828, 480, 2.0),  # 2K full aperture anamorphic
    (576, 720, 480, 16 / 15),  # PAL 4:3 (SD pixel aspect)
    (1080, 3840, 480, 0.5),  # squeezed the other way: tall picture
])
def test_size_is_the_squared_pictures(height: int, width: int, size: int,
                                      aspect: float) -> None:
    squared = xmem_image_size(height, int(round(width * aspect)), size)
    got = xmem_image_size(height, width, size, aspect)
    assert min(got) == size
    assert abs(got[0] - squared[0]) <= 1 and abs(got[1] - squared[1]) <= 1
    # proportions of the picture, not of the pixel grid
    assert got[1] / got[0] == pytest.approx(width * aspect / height, rel=0.01)


def test_square_pixels_keep_the_official_size() -> None:
    for hw in ((1080, 1920), (480, 854), (1920, 1080), (90, 160)):
        assert xmem_image_size(*hw, 480, 1.0) == xmem_image_size(*hw, 480)
    assert xmem_image_size(56, 80, -1, 2.0) == (56, 160)  # plate size: only squared
    assert xmem_image_size(56, 80, -1) == (56, 80)


def test_prepared_frame_is_squared() -> None:
    rgb = np.zeros((54, 48, 3), np.uint8)
    rgb[:, :24] = 255  # left half white
    image = prepare_xmem_frame(rgb, 54, "cpu", pixel_aspect=2.0)
    assert tuple(image.shape) == (3, 54, 96)
    plain = prepare_xmem_frame(rgb, 48, "cpu")
    assert tuple(plain.shape) == (3, 54, 48)  # square pixels at the size: untouched
    # the edge stays at half the width: 48 of 96 columns are the white side
    white = image[0, 27] > 0
    assert int(white.sum()) == 48
