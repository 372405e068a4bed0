"""Plate colour conversion to what the networks were trained on: sRGB-encoded 0..1 images.

Called by the pipeline once per frame read (``plate.read`` -> :meth:`ColourConverter.to_uint8`).
Conversion uses OpenColorIO (imported lazily): the config is ``config`` when given, else ``$OCIO``
when set, else OCIO's built-in ``ocio://default`` (the CG config, whose spaces used here are
``sRGB Encoded Rec.709 (sRGB)`` alias ``srgb_tx`` and ``Linear Rec.709 (sRGB)`` alias
``lin_rec709``). Host spellings (``sRGB``, ``Linear``, ``Linear Rec.709``, ``Non-Color``,
``Utility - sRGB - Texture``) are accepted when the config itself lacks the name, and so are
the family-prefixed names of the ACES 1.x configs (``ACEScg`` finds ``ACES - ACEScg``, ``ADX10``
finds ``ADX - ADX10``: :func:`find_colorspace`).

Log scans: ``Cineon`` (also ``lg10``, ``KodakLog``) is the config's own space of that name when it
has one, else the built-in Kodak Cineon curve, the printing-density transfer Nuke's ``Cineon``
applies (code 95 black, 685 white, 0.002 density per code value over a negative gamma of 0.6) to
Rec.709-primaries scene linear::

    lin = (10 ** ((1023 * v - 685) / 300) - b) / (1 - b),   b = 10 ** ((95 - 685) / 300)

built as an OCIO ``LogAffineTransform`` followed by the config's linear Rec.709 -> sRGB.

Highlights: scene-referred plates (linear, log, anything not display-referred) have values above
1.0 after encoding. They are soft-clipped in the encoded domain with

    f(x) = x                                          for x <= k
    f(x) = k + (1 - k) * (1 - exp(-(x - k) / (1 - k)))  for x > k,   k = 0.9

which is continuous with a continuous first derivative (slope 1 at the knee), strictly
increasing, and tends to 1.0 (encoded 1.0, linear white, lands at ~0.963). Display-referred plates
(``sdr-video`` encoding, data spaces, or a plate already in the target space: every 8/16-bit
sRGB file) are only clamped to 0..1, so an sRGB PNG reaches the network bit-exact. Negatives are
clamped to 0 and NaN becomes 0 in both cases.
"""

from __future__ import annotations

import difflib
import os
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

from actormatte.errors import DependencyError, InputError, ShapeError
from actormatte.io.plate import Plate

SRGB = "sRGB"
"""Default input colour space of integer plates (resolves to ``sRGB Encoded Rec.709 (sRGB)``)."""
SCENE_LINEAR = "lin_rec709"
"""Default input colour space of float plates (``Linear Rec.709 (sRGB)`` in the built-in config)."""
BUILTIN_CONFIG = "ocio://default"
SOFT_CLIP_KNEE = 0.9

_SRGB_NAMES = (
    "sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture",
    "Input - Generic - sRGB - Texture", "sRGB",
)
_LINEAR_NAMES = (
    "Linear Rec.709 (sRGB)", "lin_rec709", "Utility - Linear - sRGB", "Linear", "linear",
)
_RAW_NAMES = ("Raw", "raw", "Utility - Raw", "data")
_SYNONYMS: dict[str, tuple[str, ...]] = {
    **{n.lower(): _SRGB_NAMES for n in (*_SRGB_NAMES, "srgb_texture", "srgb texture")},
    **{n.lower(): _LINEAR_NAMES for n in (
        *_LINEAR_NAMES, "Linear Rec.709", "lin_srgb", "linear srgb", "scene-linear rec.709")},
    **{n.lower(): _RAW_NAMES for n in (*_RAW_NAMES, "Non-Color", "Non-Colour", "none")},
}
_DISPLAY_ENCODINGS = ("sdr-video", "data")
CINEON = "Cineon"
"""The built-in Kodak Cineon log space (used when the config has no space of that name)."""
_CINEON_NAMES = ("cineon", "lg10", "kodaklog")
CINEON_BLACK, CINEON_WHITE, CINEON_CODES_PER_DECADE = 95.0, 685.0, 300.0


def find_colorspace(config: Any, name: str) -> Any:
    """The config's colour space for ``name``, or None.

    Tries the name (or an alias or role) as the config spells it, then the host synonyms of
    this module, then a unique space named ``<family> - <name>`` (ACES 1.x configs).
    """
    space = config.getColorSpace(name)
    if space is None and name.strip().lower() in _SYNONYMS:
        for synonym in _SYNONYMS[name.strip().lower()]:
            space = config.getColorSpace(synonym)
            if space is not None:
                break
    if space is None:
        suffix = " - " + name.strip().lower()
        matches = [n for n in config.getColorSpaceNames() if n.lower().endswith(suffix)]
        space = config.getColorSpace(matches[0]) if len(matches) == 1 else None
    return space


def cineon_to_linear_transform(ocio: ModuleType) -> Any:
    """The built-in Cineon curve as an OCIO transform: code value / 1023 -> linear Rec.709."""
    offset = 10.0 ** ((CINEON_BLACK - CINEON_WHITE) / CINEON_CODES_PER_DECADE)
    log_slope, log_offset = CINEON_CODES_PER_DECADE / 1023.0, CINEON_WHITE / 1023.0
    transform = ocio.LogAffineTransform(
        logSideSlope=[log_slope] * 3, logSideOffset=[log_offset] * 3,
        linSideSlope=[1.0 - offset] * 3, linSideOffset=[offset] * 3,
        direction=ocio.TRANSFORM_DIR_INVERSE)
    transform.setBase(10.0)
    return transform


def default_input_colorspace(plate: Plate) -> str:
    """The colour space to assume when the user gives none (CONVENTIONS.md, Colour).

    Returns:
        The space the plate's header metadata names (:mod:`.colour_defaults`), else
        :data:`SCENE_LINEAR` (``lin_rec709``) for float plates, :data:`SRGB` (``sRGB``) otherwise.
    """
    from actormatte.io.colour_defaults import choose_input_colorspace

    return choose_input_colorspace(plate.header, plate.is_float).name


def soft_clip(values: np.ndarray, knee: float = SOFT_CLIP_KNEE) -> np.ndarray:
    """Compress values above ``knee`` smoothly towards 1.0 (curve in the module docstring).

    Shape:
        Any shape; returns a new float32 array of the same shape, never above 1.0.
    """
    if not 0.0 < knee < 1.0:
        raise ValueError(f"soft-clip knee must be in (0, 1), got {knee}")
    x = np.asarray(values, dtype=np.float32)
    k, span = np.float32(knee), np.float32(1.0 - knee)
    # Branch-free: min(x, k) + span * (1 - exp(-max(x - k, 0) / span)) is x below the knee.
    excess = np.subtract(x, k, dtype=np.float32)
    np.maximum(excess, np.float32(0.0), out=excess)
    excess *= np.float32(-1.0 / span)
    np.exp(excess, out=excess)
    np.subtract(np.float32(1.0), excess, out=excess)
    excess *= span
    excess += np.minimum(x, k)
    return np.minimum(excess, np.float32(1.0), out=excess)


def quantise_uint8(srgb: np.ndarray) -> np.ndarray:
    """Quantise sRGB-encoded 0..1 values to 8 bits, rounding half up: ``floor(x * 255 + 0.5)``.

    ``v / 255`` comes back as ``v`` for every byte, so an 8-bit plate survives a read-convert-
    quantise round trip exactly. Round-half-up differs from cv2's round-half-even only on exact
    ties (``x * 255`` ending in .5), which float data practically never hits.

    Shape:
        Any shape; returns uint8 of the same shape. Values outside 0..1 saturate.
    """
    scaled = np.multiply(srgb, np.float32(255.0), dtype=np.float32)
    scaled += np.float32(0.5)
    np.fmax(scaled, np.float32(0.0), out=scaled)  # NaN (fmax ignores it) and below 0 -> 0
    np.minimum(scaled, np.float32(255.0), out=scaled)
    return scaled.astype(np.uint8)  # truncation of values >= 0 is floor


def _import_ocio() -> ModuleType:
    try:
        import PyOpenColorIO
    except ImportError as exc:
        raise DependencyError(
            "OpenColorIO is missing; install it into the ActorMatte venv: pip install opencolorio"
        ) from exc
    return PyOpenColorIO


def load_ocio_config(config: str | None = None) -> tuple[Any, str]:
    """Load an OCIO config: ``config``, else ``$OCIO``, else the built-in default.

    Returns:
        The ``PyOpenColorIO.Config`` and a description of where it came from (for messages).

    Raises:
        InputError: The config file or URI cannot be loaded.
    """
    ocio = _import_ocio()
    env = os.environ.get("OCIO", "").strip()
    source = config or env or BUILTIN_CONFIG
    described = f"$OCIO={source}" if not config and env else source
    try:
        return ocio.Config.CreateFromFile(source), described
    except Exception as exc:  # OCIO raises its own Exception type for every failure
        raise InputError(
            f"cannot load the OCIO config {described}: {exc}; fix the path, or unset $OCIO to use "
            f"the built-in config {BUILTIN_CONFIG}"
        ) from exc


class ColourConverter:
    """Converts plate frames from their colour space to the networks' sRGB-encoded 0..1 input.

    Attributes:
        input_colorspace: The name as given.
        resolved_input: The config's own name for the input space (record it in metadata).
        target: The config's name for sRGB-encoded Rec.709.
        config_source: Where the OCIO config came from.
        soft_clip: Whether highlights are soft-clipped (else only clamped).
    """

    def __init__(
        self,
        input_colorspace: str,
        config: str | None = None,
        *,
        soft_clip: bool | None = None,
        knee: float = SOFT_CLIP_KNEE,
    ) -> None:
        """Load the config, resolve both colour spaces and build the CPU processor.

        Args:
            input_colorspace: OCIO colour space (name, alias, role or host synonym) of the plate.
            config: OCIO config path or URI; default ``$OCIO``, else the built-in config.
            soft_clip: Force soft clipping on or off; default: on unless the input is
                display-referred (see the module docstring).
            knee: Soft-clip knee in (0, 1).

        Raises:
            InputError: Unloadable config or unknown colour space (the message lists close names).
        """
        if not 0.0 < knee < 1.0:
            raise ValueError(f"soft-clip knee must be in (0, 1), got {knee}")
        self._config, self.config_source = load_ocio_config(config)
        self.input_colorspace = input_colorspace
        target = self._find(_SRGB_NAMES)
        if target is None:
            raise InputError(
                f"the OCIO config {self.config_source} has no sRGB-encoded Rec.709 colour space "
                f"(tried {', '.join(_SRGB_NAMES)}); use a config with one or unset $OCIO"
            )
        self.target = target.getName()
        self.knee = knee
        source = find_colorspace(self._config, input_colorspace)
        if source is None and input_colorspace.strip().lower() in _CINEON_NAMES:
            self.resolved_input = f"{CINEON} (built-in Kodak curve)"
            processor = self._cineon_processor()
            self.soft_clip = True if soft_clip is None else soft_clip
        else:
            source = source if source is not None else self._unknown(input_colorspace)
            self.resolved_input = source.getName()
            if soft_clip is None:
                soft_clip = not (
                    self.resolved_input == self.target
                    or source.isData()
                    or source.getEncoding() in _DISPLAY_ENCODINGS
                )
            self.soft_clip = soft_clip
            processor = self._config.getProcessor(self.resolved_input, self.target)
        self._cpu = processor.getDefaultCPUProcessor()
        self._is_noop = processor.isNoOp()

    def __repr__(self) -> str:
        return (
            f"ColourConverter({self.resolved_input!r} -> {self.target!r}, "
            f"config={self.config_source!r}, soft_clip={self.soft_clip})"
        )

    def to_network_srgb(self, rgb: np.ndarray) -> np.ndarray:
        """Convert a frame to sRGB-encoded 0..1 (soft-clipped or clamped); ``rgb`` is not modified.

        Shape:
            rgb: (H, W, 3) float. Returns (H, W, 3) float32 in [0, 1].

        Raises:
            ShapeError: ``rgb`` is not (H, W, 3).
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ShapeError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
        out = np.array(rgb, dtype=np.float32, order="C", copy=True)
        if not self._is_noop:
            self._cpu.applyRGB(out)
        # nan_to_num(nan=0, posinf=max, neginf=0) then max(0), in two passes instead of six:
        np.minimum(out, np.finfo(np.float32).max, out=out)  # +inf -> max (NaN stays)
        np.fmax(out, np.float32(0.0), out=out)  # NaN, -inf, negatives -> 0
        if self.soft_clip:
            return soft_clip(out, self.knee)
        return np.minimum(out, np.float32(1.0), out=out)

    def to_uint8(self, rgb: np.ndarray) -> np.ndarray:
        """Convert a frame and quantise it like the networks' 8-bit inputs (round half up).

        Shape:
            rgb: (H, W, 3) float. Returns (H, W, 3) uint8.
        """
        return quantise_uint8(self.to_network_srgb(rgb))

    def _find(self, names: tuple[str, ...]) -> Any:
        for name in names:
            space = self._config.getColorSpace(name)
            if space is not None:
                return space
        return None

    def _cineon_processor(self) -> Any:
        linear = self._find(_LINEAR_NAMES)
        if linear is None:
            raise InputError(
                f"the OCIO config {self.config_source} has neither a Cineon space nor a linear "
                f"Rec.709 one (tried {', '.join(_LINEAR_NAMES)}) for the built-in Cineon curve; "
                "pass --input-colorspace with a log space of that config")
        ocio = _import_ocio()
        group = ocio.GroupTransform([
            cineon_to_linear_transform(ocio),
            ocio.ColorSpaceTransform(src=linear.getName(), dst=self.target)])
        return self._config.getProcessor(group)

    def _unknown(self, name: str) -> NoReturn:
        raise InputError(
            f"unknown input colour space '{name}' in the OCIO config {self.config_source}; "
            f"{self._suggest(name)}pass --input-colorspace with a colour space of that config "
            "(or set $OCIO to your studio config)"
        )

    def _suggest(self, name: str) -> str:
        known: dict[str, str] = {}
        for space in self._config.getColorSpaces():
            for alias in (space.getName(), *space.getAliases()):
                known.setdefault(alias.lower(), alias)
        for role, _space in self._config.getRoles():
            known.setdefault(role.lower(), role)
        close = difflib.get_close_matches(name.lower(), list(known), n=5, cutoff=0.4)
        if not close:
            close = [k for k in known if name.lower() in k][:5]
        return f"close names: {', '.join(known[c] for c in close)}; " if close else ""
