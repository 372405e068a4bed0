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
    out.write_image(np.full((8, 8, 3), round(445 / 1023 * 65535), np.uint16))  # code 445
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


def _cineon_srgb(code: float) -> float:
    """Independent formula: Kodak Cineon code value -> linear -> sRGB encoding (unclipped)."""
    black = 10.0 ** ((95 - 685) / 300)
    linear = (10.0 ** ((code - 685) / 300) - black) / (1 - black)
    return 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def test_dpx_log_gets_the_cineon_curve(tmp_path: Path) -> None:
    plate = open_plate(_dpx_log(tmp_path))
    choice = choose_input_colorspace(plate.header, plate.is_float)
    assert choice.name == "Cineon" and "logarithmic" in choice.reason  # built-in config
    assert "built-in Cineon curve" in choice.reason
    converter = ColourConverter(choice.name)
    assert "built-in" in converter.resolved_input and converter.soft_clip
    codes = np.array([95.0, 200.0, 445.0, 600.0], np.float32)
    rgb = np.repeat((codes / 1023.0)[None, :, None], 3, axis=2)  # (1, 4, 3) as OIIO reads 10 bit
    got = converter.to_network_srgb(rgb)[0, :, 0]
    expected = np.array([_cineon_srgb(c) for c in codes])
    np.testing.assert_allclose(got, expected, atol=2e-4)  # all below the soft-clip knee
    white = converter.to_network_srgb(np.full((1, 1, 3), 685 / 1023, np.float32))
    assert abs(float(white[0, 0, 0]) - 0.9632) < 1e-3  # linear 1.0, soft-clipped
    shot = open_shot(_dpx_log(tmp_path), None, ReadConfig())
    frame = shot.read_uint8(shot.first)
    assert int(frame[0, 0, 0]) == int(np.floor(_cineon_srgb(445) * 255 + 0.5))


def _aces1_style_config(folder: Path) -> str:
    """The studio config with four spaces renamed as the ACES 1.x configs spell them."""
    import copy

    import PyOpenColorIO as ocio

    config = copy.deepcopy(ocio.Config.CreateFromFile("ocio://studio-config-latest"))
    for theirs, ours in (("ACEScg", "ACES - ACEScg"), ("ADX10", "ADX - ADX10"),
                         ("sRGB Encoded Rec.709 (sRGB)", "Utility - sRGB - Texture"),
                         ("ACES2065-1", "ACES - ACES2065-1")):
        space = copy.deepcopy(config.getColorSpace(theirs))
        space.clearAliases()  # no modern name left to find
        space.setName(ours)
        config.removeColorSpace(theirs)
        config.addColorSpace(space)
    config.setRole("aces_interchange", "ACES - ACES2065-1")
    path = folder / "aces1.ocio"
    path.write_text(config.serialize())
    return str(path)


def test_aces1_config_names_are_found(tmp_path: Path) -> None:
    config = _aces1_style_config(tmp_path)
    converter = ColourConverter("ACEScg", config=config)
    assert converter.resolved_input == "ACES - ACEScg"
    assert converter.target == "Utility - sRGB - Texture"
    reference = ColourConverter("ACEScg")  # the built-in config, same maths
    pixels = np.array([[[0.18, 0.05, 0.7], [0.01, 0.5, 0.3]]], np.float32)
    np.testing.assert_allclose(converter.to_network_srgb(pixels),
                               reference.to_network_srgb(pixels), atol=1e-4)
    import PyOpenColorIO as ocio

    plate = open_plate(_dpx_log(tmp_path))
    choice = choose_input_colorspace(plate.header, plate.is_float,
                                     config=ocio.Config.CreateFromFile(config))
    assert choice.name == "ADX - ADX10" and "logarithmic" in choice.reason


def test_no_metadata_keeps_the_old_defaults(tmp_path: Path) -> None:
    shot = open_shot(_exr(tmp_path), None, ReadConfig())
    assert shot.colorspace == "lin_rec709" and "float" in shot.colorspace_reason
    assert choose_input_colorspace({}, False).name == "sRGB"
