r"""OpenEXR header fields Blender does not expose: data/display windows and pixel aspect.

Blender reads an EXR's data window only (the display window, its origin and the
``pixelAspectRatio`` attribute are dropped), and opens any EXR whose channel names hold a dot
(``bob.A``) as a MULTILAYER image whose ``size`` is (0, 0) until an Image node or editor picks a
pass. The ActorMatte node therefore reads the windows itself, with the standard library, to put
the mattes on the plate's pixels (:func:`crop_in_matte`, used by ``node.build_inside``) and to
know a plate's size (``operators.plate_size``). Format: "The OpenEXR File Layout"
(openexr.com/en/latest/OpenEXRFileLayout.html): magic, version, then ``name\0type\0size value``
attributes up to an empty name; ``box2i`` is four int32 ``xMin yMin xMax yMax`` (inclusive, y
down). A multi-part file's first header is read. bpy-free, so it is tested in the core venv too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 20000630
_HEADER_BYTES = 1 << 16


@dataclass(frozen=True)
class Window:
    """A pixel rectangle in EXR coordinates: top-left ``(x, y)`` (y down) and size."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class ExrHeader:
    """The geometry of an EXR file."""

    data: Window
    display: Window
    pixel_aspect: float
    channels: tuple[str, ...]


def read_header(path: str) -> ExrHeader | None:
    """The header of the EXR at ``path``, or None when it is not a readable EXR."""
    try:
        with open(path, "rb") as handle:
            blob = handle.read(_HEADER_BYTES)
        return _parse(blob)
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return None


def _parse(blob: bytes) -> ExrHeader:
    magic, _version = struct.unpack_from("<ii", blob, 0)
    if magic != MAGIC:
        raise ValueError("not an OpenEXR file")
    fields: dict[str, bytes] = {}
    pos = 8
    while True:
        name, pos = _cstring(blob, pos)
        if not name:
            break
        _kind, pos = _cstring(blob, pos)
        (size,) = struct.unpack_from("<i", blob, pos)
        fields[name] = blob[pos + 4:pos + 4 + size]
        pos += 4 + size
    aspect = struct.unpack("<f", fields["pixelAspectRatio"])[0] if "pixelAspectRatio" in fields \
        else 1.0
    return ExrHeader(_box(fields["dataWindow"]), _box(fields["displayWindow"]),
                     float(aspect) if aspect > 0 else 1.0, _channels(fields.get("channels", b"")))


def _cstring(blob: bytes, pos: int) -> tuple[str, int]:
    end = blob.index(b"\0", pos)
    return blob[pos:end].decode("utf-8"), end + 1


def _box(value: bytes) -> Window:
    x0, y0, x1, y1 = struct.unpack("<iiii", value)
    return Window(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _channels(blob: bytes) -> tuple[str, ...]:
    names, pos = [], 0
    while pos < len(blob) and blob[pos:pos + 1] != b"\0":
        name, pos = _cstring(blob, pos)
        names.append(name)
        pos += 16  # pixel type, pLinear + 3 reserved bytes, x and y sampling
    return tuple(names)


def crop_in_matte(plate: Window, matte: Window) -> tuple[int, int, int, int] | None:
    """Where Blender's view of the plate lies in Blender's view of a matte, or None if the same.

    Blender shows an EXR's data window with its origin at the bottom-left. The mattes cover the
    plate's data window united with its display window, so for a plate whose data window lies
    (partly) inside its display window the matte image is larger than the plate image and must
    be cropped to the plate's data window to land on the plate's pixels.

    Returns:
        ``(x, y, width, height)`` for a Crop node (x from the left, y from the bottom of the
        matte image), or None when the windows are equal (nothing to crop).

    Raises:
        ValueError: The plate's data window is not inside the matte's (not our mattes for it).
    """
    if plate == matte:
        return None
    left = plate.x - matte.x
    bottom = (matte.y + matte.height) - (plate.y + plate.height)
    if left < 0 or bottom < 0 or left + plate.width > matte.width \
            or bottom + plate.height > matte.height:
        raise ValueError(f"the plate's data window {_text(plate)} is not inside the mattes' "
                         f"{_text(matte)}")
    return left, bottom, plate.width, plate.height


def _text(window: Window) -> str:
    return f"{window.width}x{window.height}{window.x:+d}{window.y:+d}"
