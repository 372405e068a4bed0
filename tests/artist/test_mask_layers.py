"""``--mask-layers FILE[@FRAME]``: layered keyframe-mask EXRs (windows, names, mixing, errors)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.cli.main import main
from actormatte.errors import InputError
from actormatte.io.geometry import PlateGeometry, PlateSpace, Window
from actormatte.masks import load_keyframes
from actormatte.masks.mask_layers import parse_mask_layers_arg, read_mask_layers

W, H = 64, 48
PLATE = (W, H)
RANGE = (1001, 1010)


def write_layers(path: Path, channels: dict[str, np.ndarray],
                 window: tuple[int, int, int, int] | None = None,
                 display: tuple[int, int] = PLATE) -> Path:
    """An EXR with these channels; ``window`` = data window (x, y, w, h) in display pixels."""
    names = list(channels)
    planes = np.stack([channels[n] for n in names], axis=-1).astype(np.float32)
    x, y, w, h = window or (0, 0, display[0], display[1])
    spec = oiio.ImageSpec(w, h, len(names), oiio.HALF)
    spec.channelnames = tuple(names)
    spec.x, spec.y = x, y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, *display
    spec.attribute("compression", "zip")
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), spec), oiio.geterror()
    out.write_image(np.ascontiguousarray(planes))
    out.close()
    return path


def box(x0: int, y0: int, x1: int, y1: int, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def test_layer_spellings_and_root_channels(tmp_path: Path) -> None:
    """bob.alpha, ann.A (beside colour), a bare cat; R/G/B/A are no actors; empty layers skip."""
    path = write_layers(tmp_path / "k.exr", {
        "R": box(0, 0, 5, 5), "A": box(0, 0, 5, 5),
        "bob.alpha": box(2, 2, 10, 10), "ann.R": box(0, 0, 64, 48), "ann.A": box(20, 5, 30, 15),
        "cat": box(40, 30, 50, 40) * 0.6, "gone.alpha": box(0, 0, 64, 48) * 0.4})
    masks = read_mask_layers(path, PLATE)
    assert sorted(masks) == ["ann", "bob", "cat"]
    np.testing.assert_array_equal(masks["bob"], box(2, 2, 10, 10) > 0.5)
    np.testing.assert_array_equal(masks["ann"], box(20, 5, 30, 15) > 0.5)
    assert masks["cat"].sum() == 100


def test_data_window_is_placed_in_the_display_window(tmp_path: Path) -> None:
    """A 20x10 data window at (30, 20): pixels land there, the rest is background."""
    inside = np.zeros((10, 20), np.float32)
    inside[2:8, 5:15] = 1.0
    path = write_layers(tmp_path / "dw.exr", {"bob.A": inside}, window=(30, 20, 20, 10))
    (mask,) = read_mask_layers(path, PLATE).values()
    assert mask.shape == (H, W)
    np.testing.assert_array_equal(mask, box(35, 22, 45, 28) > 0.5)


@pytest.mark.parametrize(("channels", "window", "display", "words"), [
    ({"bob.A": box(0, 0, 9, 9)}, None, (32, 48), "format is 32x48 but the plate is 64x48"),
    ({"matte.bob.A": box(0, 0, 9, 9)}, None, PLATE, "layer 'matte.bob' (channel"),
    ({"bob.R": box(0, 0, 9, 9), "bob.G": box(0, 0, 9, 9)}, None, PLATE,
     "layer 'bob' has channels bob.G, bob.R but no alpha"),
    ({"bob": box(0, 0, 9, 9), "bob.A": box(0, 0, 9, 9)}, None, PLATE,
     "layer 'bob' is both a bare channel and a layer"),
    ({"bob.A": box(0, 0, 9, 9) * np.nan}, None, PLATE, "layer 'bob' (bob.A) has NaN"),
    ({"R": box(0, 0, 9, 9), "G": box(0, 0, 9, 9)}, None, PLATE, "no actor layer"),
    ({"bob.A": box(0, 0, 9, 9) * 0.2}, None, PLATE, "every layer is empty"),
])
def test_bad_layers_name_the_problem(tmp_path: Path, channels: dict[str, np.ndarray],
                                     window: tuple[int, int, int, int] | None,
                                     display: tuple[int, int], words: str) -> None:
    if window is None:
        channels = {k: np.resize(v, (display[1], display[0])) for k, v in channels.items()}
    path = write_layers(tmp_path / "bad.exr", channels, window=window, display=display)
    with pytest.raises(InputError, match="--mask-layers") as error:
        read_mask_layers(path, PLATE)
    assert words in str(error.value)


def test_windows_of_real_plates(tmp_path: Path) -> None:
    """A bbox past the format is clipped; bare renders of the working or data window cover it."""
    overscan = PlateSpace(PlateGeometry(Window(-8, -4, 80, 56), Window(0, 0, W, H),
                                        plate_data=Window(-8, -4, 80, 56)))
    # Nuke: a roto bbox (-12,-6 20x10) reaching past the overscan's left/top edge
    path = write_layers(tmp_path / "bbox.exr", {"bob.A": np.ones((10, 20))},
                        window=(-12, -6, 20, 10))
    (mask,) = read_mask_layers(path, overscan).values()
    assert mask.shape == (56, 80)
    expected = np.zeros((56, 80), bool)
    expected[0:8, 0:16] = True  # display rows -4..3, columns -8..7 of the working window
    np.testing.assert_array_equal(mask, expected)
    # a bare render of the whole working window (exported with the overscan)
    path = write_layers(tmp_path / "bare.exr", {"bob.A": box(0, 0, 10, 10, (56, 80))},
                        display=(80, 56))
    np.testing.assert_array_equal(read_mask_layers(path, overscan)["bob"],
                                  box(0, 0, 10, 10, (56, 80)) > 0.5)
    # Blender on an auto-cropped plate: it shows (and renders masks at) the 30x20 data window
    inner = PlateSpace(PlateGeometry(Window(0, 0, W, H), Window(0, 0, W, H),
                                     plate_data=Window(10, 12, 30, 20)))
    path = write_layers(tmp_path / "blender.exr", {"bob.A": box(0, 0, 5, 4, (20, 30))},
                        display=(30, 20))
    np.testing.assert_array_equal(read_mask_layers(path, inner)["bob"],
                                  box(10, 12, 15, 16) > 0.5)
    with pytest.raises(InputError, match="format is 30x20 but the plate is 64x48"):
        read_mask_layers(path, PLATE)  # without the plate's windows it is another size


def test_parse_and_missing_file(tmp_path: Path) -> None:
    assert parse_mask_layers_arg("/a@b/k.exr@1005") == (Path("/a@b/k.exr"), 1005)
    assert parse_mask_layers_arg("k.exr") == (Path("k.exr"), None)
    with pytest.raises(InputError, match="no such file"):
        read_mask_layers(tmp_path / "none.exr", PLATE)


def test_mixes_with_id_maps_and_actor_masks(tmp_path: Path) -> None:
    """A layer named like an ID-map actor is that actor; a new name is a new actor after them."""
    ids = np.zeros((H, W), np.uint16)
    ids[5:20, 4:20] = 1
    ids[25:40, 40:60] = 2
    ids_path = tmp_path / "ids.exr"
    write_layers(ids_path, {"Y": ids.astype(np.float32)})
    key = write_layers(tmp_path / "k.exr", {"bob.alpha": box(6, 6, 22, 22),
                                            "zed.alpha": box(30, 2, 40, 12)})
    ghost = tmp_path / "ghost.exr"
    write_layers(ghost, {"Y": box(50, 40, 60, 46)})
    keys = load_keyframes([(ids_path, None)], [("ghost", ghost, 1004)], ["bob", "ann"],
                          default_frame=RANGE[0], frame_range=RANGE, plate_size=PLATE,
                          mask_layers=[(key, 1005)])
    assert [(a.name, a.id) for a in keys.actors] == [("bob", 1), ("ann", 2), ("ghost", 3),
                                                     ("zed", 4)]
    assert [k.frame for k in keys.keyframes] == [1001, 1004, 1005]
    assert sorted(keys.keyframes[2].masks) == [1, 4]
    with pytest.raises(InputError, match=r"bob .*two masks for frame 1001"):
        load_keyframes([(ids_path, None)], [], ["bob", "ann"], default_frame=RANGE[0],
                       frame_range=RANGE, plate_size=PLATE, mask_layers=[(key, None)])
    with pytest.raises(InputError, match="keyframe 999 is outside the frame range"):
        load_keyframes([], [], None, default_frame=RANGE[0], frame_range=RANGE,
                       plate_size=PLATE, mask_layers=[(key, 999)])


def _events(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_cli_bad_layer_exits_2_naming_it(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         models_dir: Path, make_shot: Callable[..., Any]) -> None:
    shot = make_shot(2)
    bad = write_layers(tmp_path / "bad.exr", {"bob.R": box(0, 0, 9, 9, (64, 96)),
                                              "bob.G": box(0, 0, 9, 9, (64, 96))},
                       display=(96, 64))
    out = tmp_path / "out"
    code = main(["run", shot.pattern, "--out", str(out), "--models", str(models_dir),
                 "--mask-layers", f"{bad}@1001", "--no-progress-bar"])
    (error,) = [e for e in _events(capsys) if e["event"] == "error"]
    assert code == 2
    assert "layer 'bob' has channels" in error["message"]
    assert not out.exists() or not any(out.rglob("*.exr"))


def test_cli_propagates_layer_actors(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     models_dir: Path, make_shot: Callable[..., Any]) -> None:
    """propagate --mask-layers: the layers are the actors, keyed at their frames, in the ID maps."""
    shot = make_shot(3)
    shape = (64, 96)
    first = write_layers(tmp_path / "k1.exr", {"bob.alpha": box(20, 20, 40, 44, shape)},
                         display=(96, 64))
    later = write_layers(tmp_path / "k3.exr", {"bob.alpha": box(20, 20, 40, 44, shape),
                                               "ann.A": box(60, 20, 76, 44, shape)},
                         window=(0, 0, 96, 64), display=(96, 64))
    work = tmp_path / "work"
    code = main(["propagate", shot.pattern, "--work", str(work),
                 "--models", str(models_dir), "--mask-layers", str(first),
                 "--mask-layers", f"{later}@1003", "--xmem-size", "-1", "--device", "cpu",
                 "--no-progress-bar"])
    events = _events(capsys)
    assert code == 0, events
    (start,) = [e for e in events if e["event"] == "start"]
    assert [(a["name"], a["id"], a["keyframe"]) for a in start["actors"]] == [
        ("bob", 1, 1001), ("ann", 2, 1003)]
    assert sorted(p.name for p in (work / "masks").iterdir()) == [
        "1001.png", "1002.png", "1003.png"]


def test_multi_part_exr(tmp_path: Path) -> None:
    """Blender 5's multilayer File Output writes one part per layer: each part is read."""
    path = tmp_path / "parts.exr"
    specs = []
    for name in ("bob.V", "ann.V"):
        spec = oiio.ImageSpec(W, H, 1, oiio.FLOAT)
        spec.channelnames = (name,)
        spec.attribute("name", name.split(".")[0])
        specs.append(spec)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), specs), oiio.geterror()
    out.write_image(box(2, 2, 10, 10)[:, :, None])
    assert out.open(str(path), specs[1], "AppendSubimage")
    out.write_image(box(30, 20, 40, 30)[:, :, None])
    out.close()
    masks = read_mask_layers(path, PLATE)
    assert sorted(masks) == ["ann", "bob"]
    np.testing.assert_array_equal(masks["ann"], box(30, 20, 40, 30) > 0.5)
