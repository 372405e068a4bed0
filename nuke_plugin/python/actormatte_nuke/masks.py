"""The gizmo's optional ``masks`` input -> keyframe-mask files for the core CLI.

Called by ``node.read_settings`` on the main thread when Run is pressed (never at render time, so
farm renders need neither the core nor this pre-render). Whatever the artist connects to the
``masks`` input is rendered at the node's mask keyframes (the ``mask_keyframes`` knob; default
the first frame of the range) through a temporary Write inside the gizmo, exactly as the plate
pre-render does, and the Write is deleted again:

- ``masks input is = layers``: every channel (``channels all``) into a 32-bit float layered EXR,
  one frame per keyframe, passed as ``--mask-layers FILE@FRAME``. Each layer is an actor whose name
  is the layer name (Nuke's ``bob.alpha`` is written as ``bob.A``; the core takes both and ignores
  the root ``rgba`` channels).
- ``masks input is = ID map``: rgba.red holds ids. A plain Read's own files are passed as
  ``--masks FILE@FRAME`` (Nuke normalises integer files to 0..1, which would break ids); anything
  else is pre-rendered as 32-bit float ``rgba`` and passed the same way.
"""

from __future__ import annotations

import os
import re

import nuke

from .knobs import SettingsError, nuke_to_cli_path, parse_keyframes

MASKS_INPUT = "masks"
MASKS_FOLDER = "masks"
_HASHES = re.compile(r"#+")


def frame_path(pattern: str, frame: int) -> str:
    """``/p/m.####.exr`` at 1001 -> ``/p/m.1001.exr``."""
    return _HASHES.sub(lambda m: f"{frame:0{len(m.group(0))}d}", pattern)


def add_keyframe(node: nuke.Node) -> list[int]:
    """Add the current frame to the node's mask keyframes (the '+ this frame' button)."""
    words = node["mask_keyframes"].value().replace(",", " ").split()
    frame = int(nuke.frame())
    if str(frame) not in words:
        words.append(str(frame))
    frames = sorted({int(w) for w in words if w.lstrip("-").isdigit()})
    node["mask_keyframes"].setValue(" ".join(str(f) for f in frames))
    return frames


def _clear_old(folder: str, prefix: str) -> None:
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".exr"):
            os.remove(os.path.join(folder, name))


def prerender(node: nuke.Node, folder: str, frames: list[int], channels: str) -> list[str]:
    """Render the masks input at ``frames`` into ``folder``; returns ``PATH@FRAME`` items.

    A temporary Write (32-bit float EXR, no colour conversion) inside the gizmo is executed once
    per keyframe and deleted, so renders of the script never run it.
    """
    prefix = f"{node.name()}_masks."
    _clear_old(folder, prefix)
    pattern = os.path.join(folder, f"{prefix}####.exr").replace("\\", "/")
    with node:
        write = nuke.nodes.Write(file=pattern, file_type="exr", channels=channels,
                                 datatype="32 bit float", compression="Zip (1 scanline)",
                                 raw=True, create_directories=True)
        write.setInput(0, nuke.toNode(MASKS_INPUT))
    try:
        for frame in frames:
            nuke.execute(write, frame, frame, 1)
    finally:
        nuke.delete(write)
    return [f"{frame_path(pattern, frame)}@{frame}" for frame in frames]


def mask_inputs(node: nuke.Node, out_dir: str, first: int, last: int,
                plain_read: bool) -> tuple[list[str], list[str]]:
    """The masks input as ``(--mask-layers items, --masks items)``; both empty when unconnected.

    Args:
        node: The gizmo.
        out_dir: Its cache folder; pre-rendered masks go to ``<out_dir>/masks``.
        first: First frame of the range.
        last: Last frame of the range.
        plain_read: Whether the masks input is a plain Read (its files are used as they are).

    Raises:
        SettingsError: Bad keyframes, or a Read whose path only Nuke can expand.
    """
    upstream = node.input(1)
    if upstream is None:
        return [], []
    frames = parse_keyframes(node["mask_keyframes"].value(), first, last)
    folder = os.path.join(out_dir, MASKS_FOLDER)
    if node["masks_mode"].value() != "ID map":
        return prerender(node, folder, frames, "all"), []
    if plain_read:
        pattern = nuke_to_cli_path(upstream["file"].value())
        items = [f"{frame_path(pattern, frame)}@{frame}" for frame in frames]
        missing = [i.rsplit("@", 1)[0] for i in items if not os.path.isfile(i.rsplit("@", 1)[0])]
        if missing:
            raise SettingsError(f"the masks input's ID map {missing[0]} does not exist; render "
                                "it or change the mask keyframes")
        return [], items
    return [], prerender(node, folder, frames, "rgba")
