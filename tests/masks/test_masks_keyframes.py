"""Keyframe masks: argument parsing, ID maps, actor masks, naming and every input error."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import InputError
from actormatte.masks import (
    keyframes_from_masks,
    load_keyframes,
    parse_actor_mask_arg,
    parse_mask_arg,
    read_actor_mask,
    read_id_map,
)

W, H = 64, 48
PLATE = (W, H)
RANGE = (1001, 1010)


def _ids() -> np.ndarray:
    ids = np.zeros((H, W), np.uint16)
    ids[5:20, 4:20] = 1
    ids[25:40, 40:60] = 3
    return ids


def _write(path: Path, array: np.ndarray, dtype: str) -> Path:
    if array.ndim == 2:
        # OIIO 3.2's Python write_image misreads a 2-D buffer: always pass (H, W, C).
        array = array[:, :, None]
    channels = array.shape[2]
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    out.open(str(path), oiio.ImageSpec(array.shape[1], array.shape[0], channels, dtype))
    out.write_image(np.ascontiguousarray(array))
    out.close()
    return path


def _load(id_maps=(), actor_masks=(), names=None, detected=None):
    return load_keyframes(list(id_maps), list(actor_masks), names, default_frame=RANGE[0],
                          frame_range=RANGE, plate_size=PLATE, detected=detected)


@pytest.mark.parametrize(("text", "path", "frame"), [
    ("ids.png", "ids.png", None),
    ("ids.png@1005", "ids.png", 1005),
    ("/shots/a@b/ids.png", "/shots/a@b/ids.png", None),
    ("/shots/a@b/ids.png@12", "/shots/a@b/ids.png", 12),
    ("C:\\shots\\x@1\\ids.exr@1001", "C:\\shots\\x@1\\ids.exr", 1001),
])
def test_parse_mask_arg(text: str, path: str, frame: int | None) -> None:
    assert parse_mask_arg(text) == (Path(path), frame)


def test_parse_mask_arg_rejects_bad_frame() -> None:
    with pytest.raises(InputError, match="must be an integer"):
        parse_mask_arg("ids.png@first")
    with pytest.raises(InputError):
        parse_mask_arg("  ")


def test_parse_actor_mask_arg() -> None:
    assert parse_actor_mask_arg("bob=m/bob.png@1003") == ("bob", Path("m/bob.png"), 1003)
    assert parse_actor_mask_arg("ann=a=b.png") == ("ann", Path("a=b.png"), None)
    for bad in ("bob.png", "=bob.png", "bob="):
        with pytest.raises(InputError, match="NAME=PATH"):
            parse_actor_mask_arg(bad)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "half", "float"])
def test_id_map_formats(tmp_path: Path, dtype: str) -> None:
    suffix = ".png" if dtype.startswith("uint") else ".exr"
    path = _write(tmp_path / f"ids{suffix}", _ids().astype(np.float32 if suffix == ".exr"
                                                          else dtype), dtype)
    np.testing.assert_array_equal(read_id_map(path, PLATE), _ids())


def test_id_map_uses_first_channel(tmp_path: Path) -> None:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, :, 0] = _ids()
    rgb[:, :, 1] = 7
    path = _write(tmp_path / "ids.png", rgb, "uint8")
    np.testing.assert_array_equal(read_id_map(path, PLATE), _ids())


def test_float_id_map_with_fractions_is_rejected(tmp_path: Path) -> None:
    soft = cv2.GaussianBlur(_ids().astype(np.float32), (5, 5), 1.0)
    path = _write(tmp_path / "ids.exr", soft, "float")
    with pytest.raises(InputError, match="fractional"):
        read_id_map(path, PLATE)


def test_names_follow_ascending_ids(tmp_path: Path) -> None:
    path = _write(tmp_path / "ids.png", _ids(), "uint16")
    keys = _load([(path, None)], names=["bob", "ann"])
    assert [(a.id, a.name) for a in keys.actors] == [(1, "bob"), (3, "ann")]
    (keyframe,) = keys.keyframes
    assert keyframe.frame == 1001
    np.testing.assert_array_equal(keyframe.masks[3], _ids() == 3)


def test_default_and_partial_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _write(tmp_path / "ids.png", _ids(), "uint16")
    assert [a.name for a in _load([(path, None)]).actors] == ["actor_01", "actor_03"]
    with caplog.at_level(logging.WARNING):
        keys = _load([(path, None)], names=["bob"])
    assert [a.name for a in keys.actors] == ["bob", "actor_03"]
    assert "default names" in caplog.text


def test_name_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "ids.png", _ids(), "uint16")
    with pytest.raises(InputError, match="3 names but the ID maps hold 2"):
        _load([(path, None)], names=["a", "b", "c"])
    with pytest.raises(InputError, match="bob"):
        _load([(path, None)], names=["bob", "bob"])
    with pytest.raises(InputError, match="actor_03"):
        _load([(path, None)], names=["actor_03"])  # collides with id 3's default name


def test_same_id_in_two_maps_is_one_actor(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.png", _ids(), "uint16")
    later = np.zeros((H, W), np.uint16)
    later[10:30, 10:30] = 1
    second = _write(tmp_path / "b.png", later, "uint16")
    keys = _load([(first, None), (second, 1006)])
    assert [a.id for a in keys.actors] == [1, 3]
    assert [k.frame for k in keys.keyframes] == [1001, 1006]
    assert set(keys.keyframes[1].masks) == {1}
    assert keys.first_keyframe(3) == 1001


def test_actor_masks_correct_and_add_actors(tmp_path: Path) -> None:
    ids = _write(tmp_path / "ids.png", _ids(), "uint16")
    fix = np.zeros((H, W), np.uint8)
    fix[0:10, 0:10] = 255
    fix_path = _write(tmp_path / "fix.png", fix, "uint8")
    keys = _load([(ids, None)], [("bob", fix_path, 1004), ("eve", fix_path, 1008)],
                 names=["bob", "ann"])
    assert [(a.id, a.name) for a in keys.actors] == [(1, "bob"), (3, "ann"), (4, "eve")]
    frames = {k.frame: set(k.masks) for k in keys.keyframes}
    assert frames == {1001: {1, 3}, 1004: {1}, 1008: {4}}


def test_actor_mask_alpha_and_16bit_normalisation(tmp_path: Path) -> None:
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[:, :, 3] = 0
    rgba[10:20, 10:20, 3] = 255
    mask = read_actor_mask(_write(tmp_path / "rgba.png", rgba, "uint8"), PLATE)
    assert mask.sum() == 100 and mask[15, 15]
    grey = np.zeros((H, W), np.uint16)
    grey[:, :10] = 40000  # 0.61 after normalising
    grey[:, 10:20] = 30000  # 0.46
    mask = read_actor_mask(_write(tmp_path / "g16.png", grey, "uint16"), PLATE)
    assert mask[:, :10].all() and not mask[:, 10:].any()


def test_input_errors(tmp_path: Path) -> None:
    ids = _write(tmp_path / "ids.png", _ids(), "uint16")
    small = _write(tmp_path / "small.png", np.ones((H // 2, W // 2), np.uint8), "uint8")
    empty = _write(tmp_path / "empty.png", np.zeros((H, W), np.uint8), "uint8")
    with pytest.raises(InputError, match=r"small\.png.*32x24.*64x48"):
        _load([(small, None)])
    with pytest.raises(InputError, match="outside the frame range 1001-1010"):
        _load([(ids, 1020)])
    with pytest.raises(InputError, match=r"--actor-mask bob=.*empty"):
        _load(actor_masks=[("bob", empty, None)])
    with pytest.raises(InputError, match="all background"):
        _load([(empty, None)])
    with pytest.raises(InputError, match="no such file"):
        _load([(tmp_path / "nope.png", None)])
    with pytest.raises(InputError, match="JPEG"):
        _load([(tmp_path / "ids.jpg", None)])
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read"):
        _load([(tmp_path / "junk.png", None)])
    with pytest.raises(InputError, match="no keyframe masks"):
        _load()


def test_two_masks_for_one_actor_and_frame(tmp_path: Path) -> None:
    ids = _write(tmp_path / "ids.png", _ids(), "uint16")
    bob = _write(tmp_path / "bob.png", (_ids() == 1).astype(np.uint8) * 255, "uint8")
    with pytest.raises(InputError, match="two masks for frame 1001"):
        _load([(ids, None)], [("bob", bob, None)], names=["bob"])


def test_label_map_and_detected(tmp_path: Path) -> None:
    left = np.zeros((H, W), bool)
    left[:, :40] = True
    right = np.zeros((H, W), bool)
    right[:, 30:] = True
    keys = _load(detected=(1003, [left, right]), names=["a", "b"])
    labels = keys.keyframes[0].label_map()
    assert labels.dtype == np.uint16
    assert labels[0, 35] == 2 and labels[0, 10] == 1 and keys.keyframes[0].frame == 1003
    single = keyframes_from_masks(1001, [left, right])
    assert [a.name for a in single.actors] == ["actor_01", "actor_02"]


def test_sample_shot_id_map_loads() -> None:
    sample = Path(__file__).resolve().parents[2] / "examples" / "sample"
    keys = load_keyframes([parse_mask_arg(str(sample / "ids.png"))], [], ["left", "right"],
                          default_frame=1001, frame_range=(1001, 1024), plate_size=(320, 180))
    assert [(a.id, a.name) for a in keys.actors] == [(1, "left"), (2, "right")]
    truth = cv2.imread(str(sample / "truth" / "actor_01.1001.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(keys.keyframes[0].masks[1], truth > 127)
