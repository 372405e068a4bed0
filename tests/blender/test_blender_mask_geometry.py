"""Mask-datablock keyframes on cropped and overscan EXR plates, in real Blender with the real CLI.

Blender shows an EXR plate as its data window only (docs/BLENDER.md, "Plate geometry"), so the
artist draws a Mask over that picture and the node renders it at the data window's size, with no
windows in the file. The core places such a bare mask at the plate's own data window
(core/actormatte/masks/mask_files.py). Here one node per plate (auto-cropped inner data window,
overscan, a data window partly outside the display) gets a Mask with a box at the top-left corner
of the picture Blender shows (``bob``) and one at its bottom-right corner (``ann``); after Run the
keyframe's ID map in the CLI's work folder must hold exactly those boxes at the plate's data
window corners, in working-window coordinates (data window united with display window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_blender_extension import drive, write_spec
from test_blender_masks import read_parts

from actormatte.io.geometry import Window
from actormatte.jobs import WorkFolder
from plates.plate_files import write_exr

pytestmark = pytest.mark.bpy
DISPLAY = Window(0, 0, 64, 48)
FIRST, LAST = 1001, 1002
PLATES = {  # name: the plate's data window
    "inner": Window(10, 6, 30, 20),        # auto-cropped: inside the 64x48 display window
    "overscan": Window(-8, -4, 80, 56),
    "partial": Window(-8, 10, 50, 30),     # working window (-8, 0) 72x48
}


def corner_boxes(width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    """Pixel boxes ``(x0, y0, x1, y1)`` (end exclusive, rows from the top) on a picture of this
    size: bob at its top-left corner, ann at its bottom-right corner."""
    return {"bob": (0, 0, 8, 6), "ann": (width - 7, height - 5, width, height)}


def mask_box(box: tuple[int, int, int, int], width: int, height: int) -> list[float]:
    """The box in Blender Mask coordinates ``[x0, y0, x1, y1]`` (y up) on a frame of this size.

    Blender's Mask space spans the frame's longer side from 0 to 1 and centres the shorter side
    on 0.5 (``BKE_mask_coord_from_frame``); measured with bpy 4.5 and 5.0: a box with edges on
    pixel boundaries renders exactly the pixels inside it.
    """
    def co(px: int, py: int) -> tuple[float, float]:
        x, y = px / width, 1.0 - py / height
        if width > height:
            y = (y - 0.5) * height / width + 0.5
        elif width < height:
            x = (x - 0.5) * width / height + 0.5
        return x, y

    (left, top), (right, bottom) = co(box[0], box[1]), co(box[2], box[3])
    return [left, bottom, right, top]


def write_plate(folder: Path, data: Window) -> str:
    """Two frames of an RGB plate over ``data`` in the 64x48 display window; its pattern."""
    yy, xx = np.mgrid[0:data.height, 0:data.width].astype(np.float32)
    for index, frame in enumerate(range(FIRST, LAST + 1)):
        rgb = np.stack([(xx * 3 + index) % 64, (yy * 5) % 64, (xx + yy) % 64], -1) / 64.0
        write_exr(folder / f"plate.{frame}.exr", rgb.astype(np.float32), origin=(data.x, data.y),
                  display=(DISPLAY.x, DISPLAY.y, DISPLAY.width, DISPLAY.height))
    return str(folder / "plate.####.exr")


def node_case(folder: Path, name: str, data: Window) -> dict:
    folder.mkdir()
    boxes = corner_boxes(data.width, data.height)
    return {"name": name, "source": {"type": "FILE", "path": write_plate(folder, data)},
            "mask": {actor: {"box": mask_box(box, data.width, data.height)}
                     for actor, box in boxes.items()},
            "mask_keyframes": str(FIRST), "cache_dir": str(folder / "cache") + "/"}


def in_picture(box: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
    """The box as a (height, width) bool mask over the picture Blender shows."""
    plane = np.zeros((height, width), bool)
    plane[box[1]:box[3], box[0]:box[2]] = True
    return plane


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_mask_keyframes_land_on_the_plate_data_window(version: str, tmp_path: Path,
                                                       models_dir: Path, core_cli: Path) -> None:
    cases = [node_case(tmp_path / name, name, data) for name, data in PLATES.items()]
    # XMem at the plate's own size (-1): the keyframe's ID map is XMem's output at the
    # keyframe, resampled to the plate when XMem runs at another size (edges move a pixel).
    spec = write_spec(tmp_path, models_dir, nodes=cases, masks_mode=["MASK"],
                      xmem_size=-1)  # scene 96x64
    result, output = drive(version, spec, core_cli)
    for case, run in zip(cases, result["nodes"], strict=True):
        name, data = case["name"], PLATES[case["name"]]
        assert run["error"] is None and run["result"] == ["FINISHED"], (name, output)
        # 4.5 writes one part (EXR sorts its channels: ann, bob), 5.0 one part per layer
        assert run["layers"] == "bob,ann", name  # the Mask's layer order in 4.5 and 5.0 alike
        assert run["plate_size"] == [data.width, data.height], name
        cache = Path(case["cache_dir"])
        masks_file = cache / "masks" / f"{name}_masks.{FIRST}.exr"
        assert f"--mask-layers {masks_file}@{FIRST}" in output  # the CLI took it (exit 0 above)
        boxes = corner_boxes(data.width, data.height)
        drawn = read_parts(masks_file)  # rendered at the picture's size, as drawn
        for actor, box in boxes.items():
            np.testing.assert_array_equal(drawn[f"{actor}.V"] > 0.5,
                                          in_picture(box, data.width, data.height),
                                          err_msg=f"{name}: {actor} as rendered")

        working = data.union(DISPLAY)
        (work,) = (cache / ".actormatte").iterdir()
        ids = WorkFolder(work).read_mask(FIRST, working.size)
        expected = {actor: np.zeros((working.height, working.width), bool) for actor in boxes}
        for actor, (x0, y0, x1, y1) in boxes.items():  # picture pixel -> working-window pixel
            dx, dy = data.x - working.x, data.y - working.y
            expected[actor][y0 + dy:y1 + dy, x0 + dx:x1 + dx] = True
        np.testing.assert_array_equal(ids > 0, expected["bob"] | expected["ann"],
                                      err_msg=f"{name}: keyframe ID map")
        bob, ann = (np.unique(ids[expected[actor]]) for actor in ("bob", "ann"))
        assert len(bob) == 1 and len(ann) == 1 and bob[0] != ann[0], (name, bob, ann)
