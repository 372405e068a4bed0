"""Colour-coded and anti-aliased ID maps (issue 15, finding 4)."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from actormatte.errors import InputError
from actormatte.masks import load_keyframes

SIZE = (64, 48)  # (width, height)


def _load(*paths, names=None):
    return load_keyframes([(p, None) for p in paths], [], names, default_frame=1,
                          frame_range=(1, 10), plate_size=SIZE)


def _blobs(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """RGB picture, black background, one 10x10 square per colour, left to right."""
    rgb = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    for index, colour in enumerate(colours):
        rgb[10:20, 4 + 14 * index:14 + 14 * index] = colour
    return rgb


def _save_rgb(path, rgb, alpha=None):
    bgr = rgb[:, :, ::-1]
    if alpha is not None:
        bgr = np.dstack([bgr, alpha])
    cv2.imwrite(str(path), bgr)
    return path


def test_rgb_colour_map_reads_every_colour_as_an_actor_in_raster_order(tmp_path):
    path = _save_rgb(tmp_path / "ids.png", _blobs([(0, 255, 0), (255, 0, 0), (40, 40, 200)]))
    shot = _load(path, names=["green", "red", "blue"])
    assert [(a.id, a.name) for a in shot.actors] == [(1, "green"), (2, "red"), (3, "blue")]
    masks = shot.keyframes[0].masks
    assert masks[1][15, 8] and masks[2][15, 22] and masks[3][15, 36]
    assert [int(m.sum()) for m in masks.values()] == [100, 100, 100]


def test_colours_are_the_same_actor_across_files(tmp_path):
    first = _save_rgb(tmp_path / "a.png", _blobs([(0, 255, 0), (255, 0, 0)]))
    second = _save_rgb(tmp_path / "b.png", _blobs([(255, 0, 0), (9, 9, 250), (0, 255, 0)]))
    shot = load_keyframes([(first, 1), (second, 5)], [], None, default_frame=1,
                          frame_range=(1, 10), plate_size=SIZE)
    later = shot.keyframes[1].masks
    assert later[2][15, 8] and later[3][15, 22] and later[1][15, 36]  # red=2, new blue=3


def test_rgba_alpha_zero_is_background(tmp_path):
    rgb = _blobs([(0, 255, 0), (255, 0, 0)])
    rgb[30:40, 30:40] = (255, 255, 0)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[30:40, 30:40] = 0
    shot = _load(_save_rgb(tmp_path / "ids.png", rgb, alpha))
    assert [a.id for a in shot.actors] == [1, 2]


def test_grey_rgb_map_keeps_integer_ids(tmp_path):
    ids = np.zeros((SIZE[1], SIZE[0]), np.uint8)
    ids[10:20, 4:14], ids[10:20, 30:40] = 1, 3
    path = _save_rgb(tmp_path / "ids.png", np.dstack([ids] * 3))
    assert [a.id for a in _load(path).actors] == [1, 3]


def _soft_disc(levels: int) -> np.ndarray:
    """White disc on black with an anti-aliased rim of ``levels`` grey levels."""
    yy, xx = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    radius = np.hypot(xx - 32, yy - 24)
    ramp = np.clip((16.0 - radius) / 3.0, 0.0, 1.0)
    return np.round(np.round(ramp * (levels - 1)) / (levels - 1) * 255).astype(np.uint8)


def test_antialiased_white_on_black_mask_is_refused_pointing_to_actor_mask(tmp_path):
    matte = _soft_disc(17)
    assert len(np.unique(matte)) >= 15  # soft edge: many grey levels
    cv2.imwrite(str(tmp_path / "matte.png"), matte)
    with pytest.raises(InputError) as info:
        _load(tmp_path / "matte.png")
    assert info.value.exit_code == 2 and "--actor-mask" in str(info.value)


def test_blended_colour_edges_are_refused(tmp_path):
    rgb = cv2.GaussianBlur(_blobs([(0, 255, 0), (255, 0, 0)]), (5, 5), 0)
    with pytest.raises(InputError, match="--actor-mask"):
        _load(_save_rgb(tmp_path / "ids.png", rgb))


def test_more_than_ten_ids_warns(tmp_path, caplog):
    ids = np.zeros((SIZE[1], SIZE[0]), np.uint16)
    for k in range(12):
        ids[4 * (k // 6) * 5: 4 * (k // 6) * 5 + 8, 10 * (k % 6): 10 * (k % 6) + 8] = k + 1
    cv2.imwrite(str(tmp_path / "ids.png"), ids)
    with caplog.at_level(logging.WARNING):
        shot = _load(tmp_path / "ids.png")
    assert len(shot.actors) == 12
    assert "12 different ids (more than 10)" in caplog.text
