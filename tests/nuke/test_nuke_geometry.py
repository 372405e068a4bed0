"""The gizmo's mattes line up with the plate in (stand-in) Nuke: format, bbox, pixel aspect, pixels.

A real Read of an EXR takes its format from the display window (pixel aspect from
pixelAspectRatio) and its bbox from the data window (``fake_nuke/images.py``; docs/NUKE.md lists
what a real Nuke must confirm). The core writes every matte with the plate's display window and
pixel aspect and a data window = the plate's data window united with its display window, so the
gizmo's output (the plate, B, with the mattes copied in from MatteRead, A) keeps the plate's
format and a bbox that holds the plate's overscan. Plates carry sharp boxes at known plate pixels
(one in the overscan); the mattes carry the same boxes placed by their own windows, written by
the core's MatteWriter as the CLI writes them; every pixel of the plate's bbox is compared.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from nuke_env import CLI

from actormatte.export import MatteWriter
from actormatte.io.geometry import PlateGeometry, Window
from actormatte.jobs import WorkFolder
from plates.plate_files import read_spec, write_exr

DISPLAY = Window(0, 0, 64, 48)
FIRST = 1001
CASES = {  # name: (plate data window, pixel aspect)
    "full": (DISPLAY, 1.0),
    "overscan": (Window(-8, -4, 80, 56), 1.0),
    "inner": (Window(10, 6, 30, 20), 1.0),
    "partial": (Window(-8, 10, 50, 30), 1.0),
    "anamorphic": (Window(-8, -4, 80, 56), 2.0),
}


def boxes(window: Window, data: Window) -> np.ndarray:
    """1.0 in a box two pixels inside ``data``'s top-left corner and at display x 30-36,
    y 20-28 (EXR plate coordinates), sampled over ``window``.

    Shape:
        Returns (window.height, window.width) float32.
    """
    yy, xx = np.mgrid[window.y:window.y + window.height, window.x:window.x + window.width]
    first = (xx >= data.x + 2) & (xx < data.x + 15) & (yy >= data.y + 1) & (yy < data.y + 10)
    second = (xx >= 30) & (xx < 37) & (yy >= 20) & (yy < 29)
    return (first | second).astype(np.float32)


def write_case(folder: Path, data: Window, aspect: float) -> tuple[str, Path]:
    """A plate frame (rgb = the boxes) and its mattes (bob = the boxes, alice = 1 - bob)."""
    display = (DISPLAY.x, DISPLAY.y, DISPLAY.width, DISPLAY.height)
    plate = np.repeat(boxes(data, data)[:, :, None], 3, axis=2)
    write_exr(folder / f"plate.{FIRST}.exr", plate, origin=(data.x, data.y), display=display,
              pixel_aspect=aspect)
    working = data.union(DISPLAY)  # what the core's mattes cover (io/geometry.py)
    writer = MatteWriter(folder / "cache", "plate_mattes", ["bob", "alice"], working.width,
                         working.height, geometry=PlateGeometry(working, DISPLAY, aspect))
    bob = boxes(working, data)
    writer.write(FIRST, {"bob": bob, "alice": 1.0 - bob})
    return str(folder / "plate.%04d.exr"), folder / "cache"


def _plate_read(nuke: ModuleType, pattern: str, first: int = FIRST, last: int = FIRST) -> Any:
    return nuke.nodes.Read(file=pattern, first=first, last=last, origfirst=first,
                           origlast=last, raw=True)


def _box(box: Any) -> tuple[int, int, int, int]:
    return box.x(), box.y(), box.r(), box.t()


def test_stand_in_read_follows_the_exr_windows(nuke_t: ModuleType, tmp_path: Path) -> None:
    """Format = display window + pixel aspect; bbox = data window, y up from the bottom."""
    pattern, _ = write_case(tmp_path, Window(10, 6, 30, 20), 2.0)
    read = _plate_read(nuke_t, pattern)
    fmt = read.format()
    assert (fmt.width(), fmt.height(), fmt.pixelAspect()) == (64, 48, 2.0)
    assert _box(read.bbox()) == (10, 48 - 26, 40, 48 - 6)
    # EXR pixel (x 12, y 7) is in the box; Nuke row = display yMax (47) - 7
    assert read.sample("rgba.red", 12 + 0.5, 47 - 7 + 0.5) == 1.0
    assert read.sample("rgba.red", 11 + 0.5, 47 - 7 + 0.5) == 0.0
    assert read.sample("rgba.red", 12 + 0.5, 47 - 6 + 0.5) == 0.0
    assert read.sample("rgba.red", 5.5, 5.5) == 0.0   # outside the bbox


@pytest.mark.parametrize("name", list(CASES))
def test_gizmo_output_lines_up_with_the_plate(nuke_t: ModuleType, tmp_path: Path,
                                              name: str) -> None:
    import actormatte_nuke

    nuke = nuke_t
    data, aspect = CASES[name]
    pattern, cache = write_case(tmp_path, data, aspect)
    read = _plate_read(nuke, pattern)
    node = nuke.createNode("ActorMatte")
    node.setInput(0, read)
    node["cache_dir"].setValue(str(cache))
    status = actormatte_nuke.reload(node)            # the Reload button: the cache alone
    assert status == f"2 actor(s), frames {FIRST}-{FIRST}", status
    with node:
        matte_read = nuke.toNode("MatteRead")
    plate_format, out_format = read.format(), node.format()
    assert (out_format.width(), out_format.height(), out_format.pixelAspect()) == \
        (plate_format.width(), plate_format.height(), plate_format.pixelAspect()) == \
        (64, 48, aspect)
    matte_format = matte_read.format()
    assert (matte_format.width(), matte_format.height(), matte_format.pixelAspect()) == \
        (64, 48, aspect)
    plate_box, out_box = read.bbox(), node.bbox()
    assert _box(out_box) == _box(plate_box.union(images_box(DISPLAY)))  # overscan kept
    assert _box(matte_read.bbox()) == _box(out_box)
    for y in range(plate_box.y(), plate_box.t()):
        for x in range(plate_box.x(), plate_box.r()):
            plate = read.sample("rgba.red", x + 0.5, y + 0.5)
            assert node.sample("bob.alpha", x + 0.5, y + 0.5) == plate, (name, x, y)
            assert node.sample("alice.alpha", x + 0.5, y + 0.5) == 1.0 - plate, (name, x, y)
            assert node.sample("rgba.red", x + 0.5, y + 0.5) == plate   # the plate flows on


def images_box(window: Window) -> Any:
    """A display-relative Nuke box of an EXR window inside the 64x48 display."""
    from fake_nuke.images import Box

    top = DISPLAY.y + DISPLAY.height - 1
    return Box(window.x - DISPLAY.x, top - (window.y + window.height - 1), window.x
               - DISPLAY.x + window.width, top - window.y + 1)


def test_a_cache_for_another_format_is_reported(nuke_t: ModuleType, tmp_path: Path) -> None:
    import actormatte_nuke

    nuke = nuke_t
    _, cache = write_case(tmp_path, *CASES["anamorphic"])
    other = tmp_path / "other"
    other.mkdir()
    write_exr(other / f"plate.{FIRST}.exr", np.zeros((40, 50, 3), np.float32))
    node = nuke.createNode("ActorMatte")
    node.setInput(0, _plate_read(nuke, str(other / "plate.%04d.exr")))
    node["cache_dir"].setValue(str(cache))
    status = actormatte_nuke.reload(node)
    assert "the mattes are 64x48 (pixel aspect 2) but the input is 50x40 (1)" in status
    assert "press Run for this input" in status


def test_prerender_keeps_the_inputs_bbox_format_and_pixel_aspect(nuke_t: ModuleType,
                                                                  tmp_path: Path) -> None:
    """A processed input is pre-rendered through a Write: EXR data window = bbox, display
    window = format, pixelAspectRatio = the format's, so the CLI sees the plate's geometry."""
    from actormatte_nuke import node as gizmo_node

    nuke = nuke_t
    pattern, _ = write_case(tmp_path, *CASES["anamorphic"])
    node = nuke.createNode("ActorMatte")
    node.setInput(0, nuke.nodes.Grade(inputs=[_plate_read(nuke, pattern)]))
    written = gizmo_node.prerender_input(node, str(tmp_path / "pre"), FIRST, FIRST)
    spec = read_spec(Path(written.replace("####", str(FIRST))))
    assert (spec.x, spec.y, spec.width, spec.height) == (-8, -4, 80, 56)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 64, 48)
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert ("setValue", "ActorMatte1.Write1", "autocrop", False) in nuke.calls


@pytest.mark.skipif(not CLI.is_file(), reason="the core venv has no actormatte CLI")
def test_run_on_an_overscan_anamorphic_plate(nuke_t: ModuleType, tmp_path: Path,
                                             models_dir: Path) -> None:
    """The real CLI through a pre-rendered input: the gizmo's output keeps the plate's format,
    pixel aspect and bbox, and the CLI placed the roto mask on the pre-rendered plate's pixels."""
    import actormatte_nuke

    nuke = nuke_t
    data, frames = CASES["anamorphic"][0], range(1, 4)
    for frame in frames:
        rgb = np.full((data.height, data.width, 3), 0.2, np.float32)
        rgb[16:36, 30 + frame:44 + frame] = (0.9, 0.3, 0.1)   # the actor, data-window rows
        write_exr(tmp_path / f"p.{frame:04d}.exr", rgb, origin=(data.x, data.y),
                  display=(0, 0, 64, 48), pixel_aspect=2.0)
    write_exr(tmp_path / "roto.exr", np.ones((20, 14, 1), np.float32), origin=(23, 12),
              display=(0, 0, 64, 48), channels=("A",))
    read = _plate_read(nuke, str(tmp_path / "p.%04d.exr"), 1, 3)
    node = nuke.createNode("ActorMatte")
    node.setInput(0, nuke.nodes.Grade(inputs=[read]))
    for knob, value in (("actor_masks", f"bob={tmp_path / 'roto.exr'}@1"), ("core_cli", str(CLI)),
                        ("models", str(models_dir)), ("size", 64), ("xmem_size", -1),
                        ("device", "cpu"), ("cache_dir", str(tmp_path / "cache")),
                        ("make_preview", False)):
        node[knob].setValue(value)
    job = actormatte_nuke.run(node)
    assert job is not None and job.result is not None and job.result.ok, job.result.message
    assert "will not line up" not in node["status"].value()
    fmt = node.format()
    assert (fmt.width(), fmt.height(), fmt.pixelAspect()) == (64, 48, 2.0)
    assert _box(node.bbox()) == _box(read.bbox()) == (-8, -4, 72, 52)
    spec = read_spec(tmp_path / "cache" / "ActorMatte1_plate_mattes.0001.exr")
    assert (spec.x, spec.y, spec.width, spec.height) == (-8, -4, 80, 56)
    # The bbox roto (display x 23-36, y 12-31) lands on the actor's data-window pixels: the CLI
    # read the pre-rendered plate's windows (the generated test weights give flat mattes, so
    # the pixel check of the mattes is test_gizmo_output_lines_up_with_the_plate's).
    ids = WorkFolder(job.result.done["work"]).read_mask(1, (data.width, data.height))
    expected = np.zeros((data.height, data.width), bool)
    expected[16:36, 31:45] = True
    np.testing.assert_array_equal(ids > 0, expected)
