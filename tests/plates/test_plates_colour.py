"""Colour defaults from plate metadata (io/colour_defaults.py) and the start event's reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from plate_files import write_exr

from actormatte.config import ReadConfig
from actormatte.io import ColourConverter, open_plate
from actormatte.io.colour_defaults import choose_input_colorspace
from actormatte.shot import open_shot

AP0 = ("float[8]", (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767))
AP1 = ("float[8]", (0.713, 0.293, 0.165, 0.83, 0.128, 0.044, 0.32168, 0.33767))


def _exr(folder: Path, **attributes: tuple) -> str:
    write_exr(folder / "a.0001.exr", np.full((8, 8, 3), 0.18, np.float32),
              attributes=attributes)
    return str(folder / "a.####.exr")


def _dpx_log(folder: Path) -> str:
    spec = oiio.ImageSpec(8, 8, 3, oiio.UINT16)
    spec.attribute("oiio:BitsPerSample", 10)
    spec.attribute("dpx:Transfer", "Logarithmic")
    out = oiio.ImageOutput.create(str(folder / "d.0001.dpx"))
    assert out.open(str(folder / "d.0001.dpx"), spec)
    out.write_image(np.full((8, 8, 3), 445, np.uint16))
    out.close()
    return str(folder / "d.####.dpx")


@pytest.mark.parametrize("chromaticities,expected,why", [
    (AP0, "ACES2065-1", "ACES AP0"), (AP1, "ACEScg", "ACES AP1")])
def test_exr_chromaticities_pick_aces(tmp_path: Path, chromaticities: tuple, expected: str,
                                      why: str) -> None:
    shot = open_shot(_exr(tmp_path, chromaticities=chromaticities), None, ReadConfig())
    assert shot.colorspace == expected and why in shot.colorspace_reason
    assert shot.converter.resolved_input == expected


def test_oiio_colorspace_and_override(tmp_path: Path) -> None:
    pattern = _exr(tmp_path, **{"oiio:ColorSpace": ("string", "lin_ap1_scene"),
                                "chromaticities": AP0})
    shot = open_shot(pattern, None, ReadConfig())
    assert shot.colorspace == "ACEScg" and "oiio:ColorSpace" in shot.colorspace_reason
    forced = open_shot(pattern, None, ReadConfig(input_colorspace="lin_rec709"))
    assert forced.colorspace == "lin_rec709" and "given" in forced.colorspace_reason


def test_dpx_log_picks_a_log_space(tmp_path: Path) -> None:
    plate = open_plate(_dpx_log(tmp_path))
    choice = choose_input_colorspace(plate.header, plate.is_float)
    assert choice.name == "ACEScct" and "logarithmic" in choice.reason  # built-in config
    ColourConverter(choice.name)  # resolvable


def test_no_metadata_keeps_the_old_defaults(tmp_path: Path) -> None:
    shot = open_shot(_exr(tmp_path), None, ReadConfig())
    assert shot.colorspace == "lin_rec709" and "float" in shot.colorspace_reason
    assert choose_input_colorspace({}, False).name == "sRGB"
