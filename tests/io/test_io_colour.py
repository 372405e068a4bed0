"""Colour conversion to the networks' sRGB input: OCIO spaces, soft clip, quantisation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import DependencyError, InputError, ShapeError
from actormatte.io import (
    ColourConverter,
    default_input_colorspace,
    open_plate,
    quantise_uint8,
    soft_clip,
)
from actormatte.io.colour import SOFT_CLIP_KNEE

# ACES AP1 -> linear Rec.709 (Bradford D60 -> D65), the published ACEScg to sRGB-linear matrix.
AP1_TO_REC709 = np.array([
    [1.70505, -0.62179, -0.08326],
    [-0.13026, 1.14080, -0.01055],
    [-0.02400, -0.12897, 1.15297],
])


def srgb_oetf(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 encoding."""
    linear = np.asarray(linear, dtype=np.float64)
    return np.where(linear <= 0.0031308, 12.92 * linear,
                    1.055 * np.power(np.maximum(linear, 0), 1 / 2.4) - 0.055)


def test_srgb_input_is_identity_and_bytes_round_trip() -> None:
    converter = ColourConverter("sRGB")
    assert not converter.soft_clip
    bytes_ = np.arange(256, dtype=np.uint8)
    frame = np.stack([bytes_, bytes_[::-1], bytes_], axis=-1)[None].astype(np.float32) / 255
    np.testing.assert_allclose(converter.to_network_srgb(frame), frame, atol=1e-6)
    np.testing.assert_array_equal(converter.to_uint8(frame)[0, :, 0], bytes_)
    np.testing.assert_array_equal(converter.to_uint8(frame)[0, :, 1], bytes_[::-1])


def test_linear_matches_the_srgb_oetf_below_the_knee() -> None:
    converter = ColourConverter("lin_rec709")
    assert converter.soft_clip and converter.resolved_input == "Linear Rec.709 (sRGB)"
    linear = np.linspace(0.0, 0.75, 300, dtype=np.float32).reshape(10, 10, 3)
    np.testing.assert_allclose(converter.to_network_srgb(linear), srgb_oetf(linear), atol=2e-4)
    hot = np.full((1, 1, 3), 4.0, dtype=np.float32)
    expected = soft_clip(srgb_oetf(hot).astype(np.float32))
    np.testing.assert_allclose(converter.to_network_srgb(hot), expected, atol=2e-4)


def test_acescg_goes_through_the_gamut_conversion() -> None:
    converter = ColourConverter("ACEScg")
    grey = np.full((2, 2, 3), 0.18, dtype=np.float32)
    np.testing.assert_allclose(converter.to_network_srgb(grey), srgb_oetf(grey), atol=1e-3)
    colour = np.array([[[0.3, 0.2, 0.1]]], dtype=np.float32)
    expected = srgb_oetf(colour @ AP1_TO_REC709.T)
    np.testing.assert_allclose(converter.to_network_srgb(colour), expected, atol=2e-3)
    as_rec709 = ColourConverter("lin_rec709").to_network_srgb(colour)
    assert np.abs(as_rec709 - expected).max() > 0.02  # the space really matters


def test_host_spellings_resolve() -> None:
    assert ColourConverter("Linear").resolved_input == "Linear Rec.709 (sRGB)"
    assert ColourConverter("Linear Rec.709").resolved_input == "Linear Rec.709 (sRGB)"
    assert ColourConverter("Utility - sRGB - Texture").resolved_input.startswith("sRGB Encoded")
    assert ColourConverter("scene_linear").resolved_input == "ACEScg"  # a role
    raw = ColourConverter("Non-Color")
    assert raw.resolved_input == "Raw" and not raw.soft_clip


def test_unknown_space_lists_close_names() -> None:
    with pytest.raises(InputError, match=r"unknown input colour space 'ACEScgg'.*ACEScg.*"
                                         r"--input-colorspace"):
        ColourConverter("ACEScgg")


def test_ocio_env_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCIO", "ocio://studio-config-latest")
    converter = ColourConverter("ACEScg")
    assert converter.config_source == "$OCIO=ocio://studio-config-latest"
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(InputError, match=r"\$OCIO=.*missing\.ocio.*unset \$OCIO"):
        ColourConverter("sRGB")
    assert ColourConverter("sRGB", config="ocio://default").config_source == "ocio://default"


def test_negatives_nan_and_input_untouched() -> None:
    converter = ColourConverter("ACEScg")
    frame = np.array([[[-0.5, np.nan, 50.0], [0.0, 1e9, np.inf]]], dtype=np.float32)
    before = frame.copy()
    out = converter.to_network_srgb(frame)
    np.testing.assert_array_equal(frame, before)
    assert out.dtype == np.float32 and out.shape == frame.shape
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    assert out[0, 0, 0] == 0.0 and out[0, 0, 1] == 0.0
    with pytest.raises(ShapeError):
        converter.to_network_srgb(np.zeros((2, 2, 4), dtype=np.float32))


def test_soft_clip_curve() -> None:
    x = np.linspace(-0.5, 50.0, 200_001, dtype=np.float32)
    y = soft_clip(x)
    below = x <= SOFT_CLIP_KNEE
    np.testing.assert_array_equal(y[below], x[below])
    assert np.all(np.diff(y) >= 0) and np.all(y <= 1.0)
    assert np.abs(np.diff(y)).max() <= np.diff(x).max() * 1.0001  # continuous, slope <= 1
    step = 1e-3
    slope_above = (soft_clip(np.float32([SOFT_CLIP_KNEE + step]))[0] - SOFT_CLIP_KNEE) / step
    assert slope_above == pytest.approx(1.0, abs=0.02)  # C1 at the knee
    assert soft_clip(np.float32([1.0]))[0] == pytest.approx(0.9 + 0.1 * (1 - np.exp(-1)), 1e-6)
    assert 0.999 < soft_clip(np.float32([2.0]))[0] < 1.0
    assert soft_clip(np.float32([1e30]))[0] == 1.0
    values = np.float32([0.5, 3.0])
    soft_clip(values)
    np.testing.assert_array_equal(values, [0.5, 3.0])


def test_soft_clip_override_and_bad_knee() -> None:
    assert not ColourConverter("ACEScg", soft_clip=False).soft_clip
    out = ColourConverter("ACEScg", soft_clip=False).to_network_srgb(
        np.full((1, 1, 3), 5.0, np.float32))
    np.testing.assert_array_equal(out, 1.0)
    with pytest.raises(ValueError):
        ColourConverter("sRGB", knee=1.0)


def test_quantise_rounds_half_up_and_saturates() -> None:
    values = np.float32([0.5 / 255, 0.4999 / 255, 1.5 / 255, -1.0, 2.0, np.nan])
    np.testing.assert_array_equal(quantise_uint8(values), [1, 0, 2, 0, 255, 0])


def test_default_space_follows_the_pixel_type(tmp_path: Path) -> None:
    for name, pixel_type, pixels in (
        ("i.0001.png", oiio.UINT8, np.zeros((4, 4, 3), np.uint8)),
        ("f.0001.exr", oiio.HALF, np.zeros((4, 4, 3), np.float32)),
    ):
        out = oiio.ImageOutput.create(name)
        out.open(str(tmp_path / name), oiio.ImageSpec(4, 4, 3, pixel_type))
        out.write_image(pixels)
        out.close()
    assert default_input_colorspace(open_plate(tmp_path / "i.####.png")) == "sRGB"
    float_space = default_input_colorspace(open_plate(tmp_path / "f.####.exr"))
    assert float_space == "lin_rec709"
    assert ColourConverter(float_space).resolved_input == "Linear Rec.709 (sRGB)"


def test_missing_opencolorio_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PyOpenColorIO", None)  # makes the import fail
    with pytest.raises(DependencyError, match="pip install opencolorio"):
        ColourConverter("sRGB")
