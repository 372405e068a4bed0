"""The plate's input colour space when ``--input-colorspace`` is not given, and why.

Called by :func:`actormatte.shot.open_shot` (the ``start`` event reports the choice and its
reason) and by :func:`actormatte.io.colour.default_input_colorspace`. The first rule that applies
wins:

1. ``--input-colorspace`` (or the space a work folder recorded): always wins.
2. The header's ``oiio:ColorSpace`` when it names a space: OIIO's own names
   (``lin_rec709_scene``, ``lin_ap0_scene``, ``lin_ap1_scene``, ``srgb_rec709_scene``, ``KodakLog``
   ...) map to the config's spaces, any other name is used as the config spells it.
3. EXR ``chromaticities`` of float plates: ACES AP0 -> ``ACES2065-1``, AP1 -> ``ACEScg``,
   Rec.709 -> ``lin_rec709``, P3-D65 -> ``Linear P3-D65``, Rec.2020 -> ``Linear Rec.2020``
   (primaries and white point within 0.002).
4. DPX ``dpx:Transfer`` = ``Logarithmic`` (or ``oiio:ColorSpace`` = ``KodakLog``/``Cineon``): a
   printing-density log scan: the first the OCIO config has of ``Cineon``, ``lg10``, ``ADX10``
   (ACES 1.x spelling ``ADX - ADX10`` too), else the built-in Kodak Cineon curve
   (:data:`actormatte.io.colour.CINEON`, what Nuke's ``Cineon`` does). OCIO's built-in configs
   have none of them, so a log DPX gets the built-in curve unless ``$OCIO`` names a studio config.
5. Otherwise float pixels are ``lin_rec709`` and integer pixels ``sRGB``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

SCENE_LINEAR = "lin_rec709"
SRGB = "sRGB"

_PRIMARIES: dict[str, tuple[float, ...]] = {
    "ACES2065-1": (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.077, 0.32168, 0.33767),
    "ACEScg": (0.713, 0.293, 0.165, 0.83, 0.128, 0.044, 0.32168, 0.33767),
    SCENE_LINEAR: (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329),
    "Linear P3-D65": (0.68, 0.32, 0.265, 0.69, 0.15, 0.06, 0.3127, 0.329),
    "Linear Rec.2020": (0.708, 0.292, 0.17, 0.797, 0.131, 0.046, 0.3127, 0.329),
}
_OIIO_NAMES = {
    "lin_rec709_scene": SCENE_LINEAR, "lin_rec709": SCENE_LINEAR, "linear": SCENE_LINEAR,
    "lin_srgb": SCENE_LINEAR, "lin_ap0_scene": "ACES2065-1", "lin_ap0": "ACES2065-1",
    "lin_ap1_scene": "ACEScg", "lin_ap1": "ACEScg", "srgb_rec709_scene": SRGB, "srgb": SRGB,
    "srgb_rec709": SRGB, "g22_rec709_scene": "Gamma 2.2 Encoded Rec.709",
    "g24_rec709_scene": "Gamma 2.4 Encoded Rec.709", "lin_p3d65_scene": "Linear P3-D65",
    "lin_rec2020_scene": "Linear Rec.2020",
}
_LOG_MARKERS = ("kodaklog", "cineon", "log")
LOG_CANDIDATES = ("Cineon", "lg10", "ADX10")
_TOLERANCE = 0.002


@dataclass(frozen=True)
class ColourChoice:
    """An input colour space and the reason it was chosen (for the ``start`` event)."""

    name: str
    reason: str


def choose_input_colorspace(header: Mapping[str, object], is_float: bool,
                            override: str | None = None, config: Any = None
                            ) -> ColourChoice:
    """Apply the module's rules to a plate's first-frame header.

    Args:
        header: Colour attributes of the plate (``Plate.header``).
        is_float: The plate stores float pixels.
        override: ``--input-colorspace`` or the recorded space.
        config: The OCIO config for the log rule (default: ``$OCIO`` or the built-in one).
    """
    if override:
        return ColourChoice(override, "given (--input-colorspace or the work folder's record)")
    named = str(header.get("oiio:ColorSpace") or "").strip()
    transfer = str(header.get("dpx:Transfer") or "").strip().lower()
    if named and named.lower() not in _LOG_MARKERS:
        name = _OIIO_NAMES.get(named.lower(), named)
        return ColourChoice(name, f"file metadata oiio:ColorSpace = {named}")
    primaries = _primaries_name(header.get("chromaticities")) if is_float else None
    if primaries is not None:
        return ColourChoice(primaries, f"EXR chromaticities are {_label(primaries)} primaries")
    if transfer == "logarithmic" or named.lower() in _LOG_MARKERS:
        what = "DPX transfer is logarithmic" if transfer == "logarithmic" else \
            f"file metadata oiio:ColorSpace = {named}"
        space = _log_space(config)
        if space is None:
            return ColourChoice("Cineon", f"{what}; the config has none of "
                                          f"{', '.join(LOG_CANDIDATES)}: the built-in Cineon curve")
        return ColourChoice(space, f"{what}; {space} is the config's first log space of "
                                   f"{', '.join(LOG_CANDIDATES)}")
    if is_float:
        return ColourChoice(SCENE_LINEAR, "float pixels without colour metadata")
    return ColourChoice(SRGB, "integer pixels without colour metadata")


def _primaries_name(value: object) -> str | None:
    try:
        values = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if values.size != 8:
        return None
    for name, reference in _PRIMARIES.items():
        if np.abs(values - np.asarray(reference)).max() <= _TOLERANCE:
            return name
    return None


def _label(name: str) -> str:
    return {"ACES2065-1": "ACES AP0", "ACEScg": "ACES AP1"}.get(name, name)


def _log_space(config: Any) -> str | None:
    from actormatte.io.colour import find_colorspace, load_ocio_config

    if config is None:
        config = load_ocio_config()[0]
    for name in LOG_CANDIDATES:
        space = find_colorspace(config, name)
        if space is not None:
            return str(space.getName())
    return None
