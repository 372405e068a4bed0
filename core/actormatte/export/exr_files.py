"""The parts of the matte EXR files below the writer: pixels, checks, durability, the reader.

Called by :mod:`actormatte.export.exr` (:class:`~actormatte.export.exr.MatteWriter`) and by
tests, hosts' helpers and the evaluation (:func:`read_matte_exr`). The file layout is the
writer's (see its module docstring).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from actormatte.errors import InputError

METADATA_PREFIX = "actormatte/"
LAYERS_KEY = "layers"


def read_matte_exr(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a matte EXR written by :class:`MatteWriter`.

    Returns:
        Layer -> (H, W) float32 matte for every ``<layer>.A`` channel, in actor order when the
        file has ``actormatte/layers`` (else file order), and the ``actormatte/*`` attributes
        with the prefix removed. The root union channel ``A`` is not returned.

    Raises:
        InputError: The file cannot be opened or decoded.
    """
    inp = oiio.ImageInput.open(os.fspath(path))
    if inp is None:
        raise InputError(f"cannot read matte file {path}: {oiio.geterror()}")
    try:
        spec = inp.spec()
        pixels = inp.read_image(oiio.FLOAT)
        if pixels is None:
            raise InputError(f"matte file {path} does not decode (truncated?): {inp.geterror()}")
    finally:
        inp.close()
    pixels = np.asarray(pixels, dtype=np.float32).reshape(spec.height, spec.width, -1)  # (H,W,C)
    metadata = {
        str(attr.name)[len(METADATA_PREFIX) :]: str(attr.value)
        for attr in spec.extra_attribs
        if str(attr.name).startswith(METADATA_PREFIX)
    }
    by_layer = {
        str(ch)[: -len(".A")]: pixels[:, :, i].copy()
        for i, ch in enumerate(spec.channelnames)
        if str(ch).endswith(".A") and str(ch) != ".A"
    }
    order = json.loads(metadata[LAYERS_KEY]) if LAYERS_KEY in metadata else list(by_layer)
    ordered = {layer: by_layer[layer] for layer in order if layer in by_layer}
    ordered.update({k: v for k, v in by_layer.items() if k not in ordered})
    return ordered, metadata


def decodes_tail(inp: oiio.ImageInput, spec: oiio.ImageSpec, decode_all: bool) -> bool:
    """Decode the last scanline chunk (or every pixel) of an open file; False on failure."""
    if decode_all:
        return inp.read_image(oiio.FLOAT) is not None
    rows = max(spec.get_int_attribute("oiio:RowsPerChunk", 16), 1)
    end = spec.y + spec.height
    first = max(end - rows, spec.y)
    pixels = inp.read_scanlines(0, 0, first, end, 0, 0, spec.nchannels, oiio.FLOAT)
    return pixels is not None


def stack_half(layers: Sequence[str], alphas: Mapping[str, np.ndarray], inside: set[str],
                size_hw: tuple[int, int], union: bool) -> np.ndarray:
    """Finite mattes -> the file's interleaved half pixels, clipped to 0..1, zeros if absent.

    float32 -> float16 rounds to nearest even as OpenEXR does (byte-identical files). Half
    pixels handed to OIIO skip its per-pixel conversion, which cost more than the ZIP; torch
    converts while it interleaves, ~4x numpy's ``astype``. The union is the max of the half
    channels: rounding is monotone, so that is the half of the float max.

    Args:
        layers: The file's layers in channel order.
        alphas: The finite mattes (absent layers are zeros).
        inside: Layers whose values are all within 0..1 already.
        size_hw: (H, W).
        union: Add the max channel last.

    Shape:
        alphas: layer -> (H, W) float; returns (H, W, C) float16, C = layers (+1 with union).
    """
    import torch

    channels = len(layers) + int(union)
    pixels = torch.zeros((*size_hw, channels), dtype=torch.float16)  # (H, W, C)
    for index, layer in enumerate(layers):
        alpha = alphas.get(layer)
        if alpha is None:
            continue
        values = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))  # (H, W)
        if layer not in inside:
            values = values.clamp(0.0, 1.0)
        pixels[:, :, index].copy_(values)
    if union:
        torch.amax(pixels[:, :, :len(layers)], dim=2, out=pixels[:, :, -1])
    return pixels.numpy()


def fsync_file(path: Path) -> None:
    """Flush a written file to the disk (before the rename that publishes it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make the rename durable; folders cannot be opened for fsync on Windows."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
