"""The node's mattes land on the plate's pixels in real Blender, whatever the plate's windows.

Facts measured with bpy 4.5.15 and 5.0.1 (docs/BLENDER.md, "Plate geometry"): Blender reads an
EXR's data window only, as an image of that size (display window, origin and pixelAspectRatio
dropped), and an EXR with ``<layer>.<channel>`` names is a MULTILAYER image whose ``size`` is
(0, 0) until an Image node picks a pass. The core writes mattes over the plate's data window
united with its display window, so for a plate whose data window lies inside the display window
the node crops its outputs to the plate's data window. Here each plate carries sharp boxes at
known plate pixels (one reaching into the overscan), the mattes carry the same boxes placed by
the matte's own windows (written by the core's MatteWriter, as the CLI writes them), and the
compositor's renders of the plate's red and of each node output must be equal pixel for pixel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_blender_extension import drive, read_channels, write_spec

from actormatte.export import MatteWriter
from actormatte.io.geometry import PlateGeometry, Window
from plates.plate_files import write_exr

pytestmark = pytest.mark.bpy
DISPLAY = Window(0, 0, 64, 48)
FIRST = 1001
# name: (plate data window, pixel aspect)
CASES = {
    "full": (DISPLAY, 1.0),
    "overscan": (Window(-8, -4, 80, 56), 1.0),
    "inner": (Window(10, 6, 30, 20), 1.0),
    "partial": (Window(-8, 10, 50, 30), 1.0),
    "anamorphic": (Window(-8, -4, 80, 56), 2.0),
}


def boxes(window: Window, data: Window) -> np.ndarray:
    """1.0 inside two boxes given in plate coordinates, sampled over ``window``.

    One box starts two pixels inside the top-left corner of the plate's data window ``data``
    (in the overscan where there is one), the other sits at display pixels x 30-36, y 20-28.

    Shape:
        Returns (window.height, window.width) float32.
    """
    yy, xx = np.mgrid[window.y:window.y + window.height, window.x:window.x + window.width]
    first = (xx >= data.x + 2) & (xx < data.x + 15) & (yy >= data.y + 1) & (yy < data.y + 10)
    second = (xx >= 30) & (xx < 37) & (yy >= 20) & (yy < 29)
    return (first | second).astype(np.float32)


def write_case(folder: Path, name: str, data: Window, aspect: float,
               plate_channels: tuple[str, ...] = ("R", "G", "B"),
               colour: bool = False) -> dict[str, Any]:
    """A one-frame plate and the mattes the CLI writes for it (bob = the boxes, alice = 1-bob;
    ``colour``: also carol = bob with her colour R = bob, G = bob/2, B = bob/4)."""
    plate = np.repeat(boxes(data, data)[:, :, None], len(plate_channels), axis=2)
    plate_file = folder / f"{name}_plate.{FIRST}.exr"
    write_exr(plate_file, plate, origin=(data.x, data.y),
              display=(DISPLAY.x, DISPLAY.y, DISPLAY.width, DISPLAY.height), pixel_aspect=aspect,
              channels=plate_channels)
    working = data.union(DISPLAY)  # what the core's mattes cover (io/geometry.py)
    geometry = PlateGeometry(working, DISPLAY, aspect)
    writer = MatteWriter(folder / "mattes", f"{name}_mattes", ["bob", "alice"], working.width,
                         working.height, geometry=geometry)
    bob = boxes(working, data)
    writer.write(FIRST, {"bob": bob, "alice": 1.0 - bob})
    if colour:  # carol with her colour, <layer>.R/G/B/A as --foreground writes it
        write_exr(Path(writer.path_for(FIRST)), np.stack([1 - bob, bob, bob, bob * 0.25,
                                                           bob * 0.5, bob], -1),
                  origin=(working.x, working.y), pixel_aspect=aspect,
                  display=(DISPLAY.x, DISPLAY.y, DISPLAY.width, DISPLAY.height),
                  channels=("alice.A", "bob.A", "carol.A", "carol.B", "carol.G", "carol.R"))
    return {"name": name, "plate": str(plate_file), "mattes": writer.pattern, "first": FIRST,
            "last": FIRST, "layers": ["bob", "alice", *(["carol"] if colour else [])],
            "plate_socket": "Image" if plate_channels[0] == "R" else "plate",
            "render_dir": str(folder / "render" / name) + "/"}


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_mattes_register_with_the_plate(version: str, tmp_path: Path, models_dir: Path,
                                        core_cli: Path) -> None:
    cases = [write_case(tmp_path, name, data, aspect) for name, (data, aspect) in CASES.items()]
    # a layered plate (channels plate.R/G/B): Blender's Image reports size (0, 0) until used
    cases.append(write_case(tmp_path, "layered", Window(-8, -4, 80, 56), 1.0,
                            ("plate.B", "plate.G", "plate.R")))
    cases.append(write_case(tmp_path, "inner_colour", CASES["inner"][0], 1.0, colour=True))
    spec = write_spec(tmp_path, models_dir, registration=cases)  # scene resolution 96x64
    result, output = drive(version, spec, core_cli)
    reports = dict(zip([c["name"] for c in cases], result["registration"], strict=True))
    expected_data = {**{name: data for name, (data, _) in CASES.items()},
                     "layered": Window(-8, -4, 80, 56), "inner_colour": CASES["inner"][0]}
    for name, report in reports.items():
        data = expected_data[name]
        assert report["plate_size"] == [data.width, data.height], (name, output)
        colour = name == "inner_colour"
        actors = ["bob", "alice", *(["carol", "carol Image"] if colour else [])]
        assert report["outputs"] == [*actors, "Combined"]
        assert report["crops"] == {"inner": 2, "partial": 2, "inner_colour": 3}.get(name, 0)
        assert report["pixel_aspect"] == (2.0 if name == "anamorphic" else 1.0)
        folder = tmp_path / "render" / name
        (plate,) = read_channels(folder / f"{FIRST}_plate.exr").values()
        (bob,) = read_channels(folder / f"{FIRST}_bob.exr").values()
        (alice,) = read_channels(folder / f"{FIRST}_alice.exr").values()
        assert plate.shape == (data.height, data.width), name
        np.testing.assert_array_equal(plate, boxes(data, data), err_msg=f"{name}: plate as read")
        np.testing.assert_array_equal(bob, plate, err_msg=f"{name}: bob vs plate")
        np.testing.assert_array_equal(alice, 1.0 - plate, err_msg=f"{name}: alice vs plate")
        if colour:
            (carol,) = read_channels(folder / f"{FIRST}_carol.exr").values()
            np.testing.assert_array_equal(carol, plate)
            image = read_channels(folder / f"{FIRST}_carol Image.exr")
            for channel, scale in zip("RGBA", (1.0, 0.5, 0.25, 1.0), strict=True):
                np.testing.assert_array_equal(image[channel], plate * scale, err_msg=channel)
