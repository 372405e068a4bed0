"""Channel lists of EXR files as Nuke's Read node names them, for the stand-in ``nuke``.

The EXR header is read with the standard library (magic, version, then ``name\\0type\\0size``
attributes up to an empty name; ``dataWindow``/``displayWindow`` are ``box2i``, four int32
``xMin yMin xMax yMax``; the ``channels`` attribute is a ``chlist``: per channel a
NUL-terminated name, int32 pixel type, uint8 pLinear, 3 reserved bytes, int32 x/y sampling, and a
final NUL). Format: "The OpenEXR File Layout", openexr.com/en/latest/OpenEXRFileLayout.html.

Nuke's renaming of EXR channels (CONVENTIONS.md, "EXR output"): ``R G B A`` become
``red green blue alpha`` (a bare ``R`` is ``rgba.red``), a name without a dot lands in the
``other`` layer, every dot-separated part loses its leading digits and has any other character
than ``[A-Za-z0-9_]`` replaced by ``_``, and channel names are cut at 31 characters.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

MAGIC = 20000630
_RGBA = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
MAX_CHANNEL_NAME = 31


class ExrHeader(NamedTuple):
    """What the stand-in reads of an EXR header; windows are ``(xMin, yMin, xMax, yMax)``."""

    channels: list[str]
    data_window: tuple[int, int, int, int]
    display_window: tuple[int, int, int, int]
    pixel_aspect: float


def read_exr_channels(path: str) -> list[str]:
    """EXR channel names of a single-part file, in file order (sorted by name)."""
    return read_exr_header(path).channels


def read_exr_header(path: str) -> ExrHeader:
    """Channels, data and display windows (``box2i``) and ``pixelAspectRatio`` of an EXR."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    magic, _version = struct.unpack_from("<ii", data, 0)
    if magic != MAGIC:
        raise ValueError(f"not an OpenEXR file: {path}")
    pos, fields = 8, {}
    while True:
        name, pos = _cstring(data, pos)
        if not name:
            break
        _type, pos = _cstring(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        fields[name] = data[pos + 4:pos + 4 + size]
        pos += 4 + size
    if "channels" not in fields:
        raise ValueError(f"no channels attribute in {path}")
    aspect = struct.unpack("<f", fields["pixelAspectRatio"])[0] \
        if "pixelAspectRatio" in fields else 1.0
    return ExrHeader(_chlist(fields["channels"]), struct.unpack("<iiii", fields["dataWindow"]),
                     struct.unpack("<iiii", fields["displayWindow"]), float(aspect))


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode("utf-8"), end + 1


def _chlist(blob: bytes) -> list[str]:
    names, pos = [], 0
    while blob[pos:pos + 1] != b"\0":
        name, pos = _cstring(blob, pos)
        names.append(name)
        pos += 16   # pixel type, pLinear + reserved, x sampling, y sampling
    return names


def _sanitize_part(part: str) -> str:
    part = re.sub(r"[^A-Za-z0-9_]", "_", part)
    return part.lstrip("0123456789")


def nuke_channel_name(exr_name: str) -> str:
    """The ``layer.channel`` name Nuke gives an EXR channel."""
    if "." not in exr_name:
        if exr_name in _RGBA:
            return "rgba." + _RGBA[exr_name]
        return "other." + _sanitize_part(exr_name)
    layer, _, channel = exr_name.rpartition(".")
    layer = ".".join(_sanitize_part(p) for p in layer.split("."))
    channel = _RGBA.get(channel, _sanitize_part(channel))
    return f"{layer}.{channel}"[:MAX_CHANNEL_NAME]


_WRITE_RGBA = {v: k for k, v in _RGBA.items()}


def exr_write_name(nuke_name: str) -> str:
    """The EXR channel name Nuke's exrWriter gives a Nuke channel (the stand-in's assumption).

    ``rgba.red`` -> ``R``; ``<layer>.red/green/blue/alpha`` -> ``<layer>.R/G/B/A``; other
    channels keep ``<layer>.<channel>``; ``other.<x>`` -> ``<x>``. docs/NUKE.md lists this among
    what a real Nuke must confirm (the core reads ``bob.alpha`` and ``bob.A`` alike).
    """
    layer, _, channel = nuke_name.partition(".")
    if layer == "rgba":
        return _WRITE_RGBA.get(channel, channel)
    if layer == "other":
        return channel
    return f"{layer}.{_WRITE_RGBA.get(channel, channel)}"
