"""Alpha sequences read for evaluation: layered matte EXRs or one image sequence per layer.

Called by :mod:`actormatte.evaluation.evaluate` and ``actormatte eval``. A sequence knows its
frames (what exists on disk), its layer names and how to read one frame as ``layer -> (H, W)``
float32 alphas. EXR sequences hold ``<layer>.A`` channels (what ``actormatte run`` writes); a
per-layer sequence (``--gt-layer NAME=PATTERN``) is any image OpenImageIO reads (PNG, TIFF,
EXR), first channel, integer files scaled to 0..1 by OpenImageIO (``/255`` for 8 bits).
The residual layer of ``--residual`` (named in ``actormatte/residual``) is not an actor and is
left out.
Every problem here is bad input (exit 2): no frames, unreadable files, layer sets that change
between frames, frames of different sizes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import OpenImageIO as oiio

from actormatte.errors import InputError, ShapeError
from actormatte.export.exr_files import read_matte_exr
from actormatte.io.sequence import SequencePattern, parse_plate_pattern


@dataclass
class AlphaSequence:
    """Frames and layers of one alpha sequence.

    Attributes:
        description: What the user gave (for messages).
        frames: Frame numbers found on disk, sorted.
        layers: Layer names in file (actor) order.
        patterns: Layer -> pattern for per-layer image sequences; empty for an EXR sequence.
        exr: The EXR pattern, or ``None`` for per-layer sequences.
    """

    description: str
    frames: list[int]
    layers: list[str]
    patterns: dict[str, SequencePattern] = field(default_factory=dict)
    exr: SequencePattern | None = None

    def read(self, frame: int) -> dict[str, np.ndarray]:
        """One frame's alphas, ``layer -> (H, W) float32``, all layers of the sequence.

        Raises:
            InputError: A file is missing or unreadable, or its layer set differs.
            ShapeError: The layers of the frame differ in size.
        """
        if self.exr is not None:
            path = self.exr.path_for(frame)
            if not path.is_file():
                raise InputError(f"{self.description}: frame {frame} is missing ({path})")
            alphas, metadata = read_matte_exr(path)
            alphas.pop(metadata.get("residual") or "", None)
            if set(alphas) != set(self.layers):
                raise InputError(
                    f"{self.description}: frame {frame} has layers {sorted(alphas)}, the first "
                    f"frame {sorted(self.layers)}; every frame must carry the same layers")
        else:
            alphas = {name: _read_first_channel(pattern.path_for(frame), self.description)
                      for name, pattern in self.patterns.items()}
        shapes = {a.shape for a in alphas.values()}
        if len(shapes) > 1:
            raise ShapeError(f"{self.description}: frame {frame} has layers of sizes "
                             f"{sorted(shapes)}; all must be the same size")
        return {layer: alphas[layer] for layer in self.layers}


def open_exr_sequence(pattern: str, what: str) -> AlphaSequence:
    """Open a matte EXR sequence (``<layer>.A`` channels) named by a pattern.

    Args:
        pattern: ``shot_mattes.####.exr`` (any spelling :func:`parse_plate_pattern` accepts).
        what: ``"--pred"`` or ``"--gt"``, for messages.

    Raises:
        InputError: No frame exists, or the first frame has no ``<layer>.A`` channel.
    """
    parsed = parse_plate_pattern(pattern)
    description = f"{what} {parsed.hashes()}"
    frames = _discover(parsed, description)
    alphas, metadata = read_matte_exr(parsed.path_for(frames[0]))
    alphas.pop(metadata.get("residual") or "", None)  # rest.A of --residual is no actor
    if not alphas:
        raise InputError(f"{description}: frame {frames[0]} has no <layer>.A channel; give "
                         "matte EXRs (as `actormatte run` writes) or --gt-layer NAME=PATTERN")
    return AlphaSequence(description, frames, list(alphas), exr=parsed)


def open_layer_sequences(patterns: Mapping[str, str], what: str) -> AlphaSequence:
    """Open one single-channel image sequence per layer (``NAME=PATTERN`` pairs).

    Raises:
        InputError: A layer name is given twice, a sequence has no frame, or the layers' frame
            sets differ.
    """
    parsed = {name: parse_plate_pattern(pattern) for name, pattern in patterns.items()}
    description = f"{what} " + ", ".join(f"{n}={p.hashes()}" for n, p in parsed.items())
    frame_sets = {name: _discover(p, f"{what} {name}={p.hashes()}") for name, p in parsed.items()}
    first_name = next(iter(frame_sets))
    for name, frames in frame_sets.items():
        if frames != frame_sets[first_name]:
            missing = sorted(set(frame_sets[first_name]) ^ set(frames))[:10]
            raise InputError(f"{what}: layers {first_name} and {name} have different frames "
                             f"(first differences {missing}); every layer needs every frame")
    return AlphaSequence(description, frame_sets[first_name], list(parsed), patterns=parsed)


def parse_layer_patterns(values: list[str], flag: str) -> dict[str, str]:
    """``["bob=gt/bob.####.png", ...]`` -> ``{"bob": "gt/bob.####.png"}``.

    Raises:
        InputError: A value without ``=``, an empty name or a repeated name.
    """
    out: dict[str, str] = {}
    for value in values:
        name, sep, pattern = value.partition("=")
        name = name.strip()
        if not sep or not name or not pattern:
            raise InputError(f"{flag} {value!r}: expected NAME=PATTERN, e.g. "
                             f"{flag} bob=gt/bob.####.png")
        if name in out:
            raise InputError(f"{flag}: layer {name!r} is given twice")
        out[name] = pattern
    return out


def _discover(pattern: SequencePattern, description: str) -> list[int]:
    frames = pattern.discover()
    if not frames:
        raise InputError(f"{description}: no frame files found; check the pattern")
    return frames


def _read_first_channel(path: os.PathLike[str], description: str) -> np.ndarray:
    """First channel of an image as (H, W) float32 (OpenImageIO scales integers to 0..1)."""
    if not os.path.isfile(path):
        raise InputError(f"{description}: {path} is missing")
    inp = oiio.ImageInput.open(os.fspath(path))
    if inp is None:
        raise InputError(f"{description}: cannot read {path}: {oiio.geterror()}")
    try:
        spec = inp.spec()
        pixels = inp.read_image(0, 0, 0, 1, oiio.FLOAT)
        if pixels is None:
            raise InputError(f"{description}: {path} does not decode: {inp.geterror()}")
    finally:
        inp.close()
    return np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width)
