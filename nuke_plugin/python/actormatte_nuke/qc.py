"""The gizmo's check section: QC flags from the CLI's ``done`` event, jump-to-frame, the preview.

Called on the main thread: :func:`set_results` by the finished job's callback, :func:`refresh`
by ``onCreate`` (an Enumeration knob's items are not saved with the script, so they are rebuilt
from the saved ``qc_flag_list`` knob), :func:`goto_flag` and :func:`view_preview` by buttons.
"""

from __future__ import annotations

import re
from typing import Any

import nuke

from .knobs import SettingsError

NONE = "(none)"
_LEADING_FRAME = re.compile(r"^\s*(-?\d+)\b")


def flag_lines(done: dict[str, Any]) -> list[str]:
    """``FRAME message`` per flag of a ``done`` event (docs/CLI.md: ``qc_flags``)."""
    lines = []
    for flag in done.get("qc_flags") or []:
        try:
            lines.append(f"{int(flag['frame'])} {flag.get('message', flag.get('kind', ''))}")
        except (KeyError, TypeError, ValueError):
            continue
    total = int(done.get("qc_flags_total") or len(lines))
    if total > len(lines):
        lines.append(f"... {total - len(lines)} more in {done.get('qc', 'qc.json')}")
    return lines


def refresh(node: nuke.Node) -> list[str]:
    """Rebuild the 'flagged frames' list from ``qc_flag_list``; returns its items."""
    items = [x for x in str(node["qc_flag_list"].value()).splitlines() if x.strip()] or [NONE]
    node["qc_flags"].setFlag(nuke.DO_NOT_WRITE)   # its items are not saved: neither its value
    node["qc_flags"].setValues(items)
    return items


def set_results(node: nuke.Node, done: dict[str, Any]) -> int:
    """Store the flags and the preview of a finished run; returns the number of flags."""
    lines = flag_lines(done)
    node["qc_flag_list"].setValue("\n".join(lines))
    refresh(node)
    preview = done.get("preview") or {}
    node["preview_file"].setValue(str(preview.get("frames", "")).replace("\\", "/"))
    node["preview_first"].setValue(int(done.get("first", 0)))
    node["preview_last"].setValue(int(done.get("last", 0)))
    return int(done.get("qc_flags_total") or len(done.get("qc_flags") or []))


def goto_flag(node: nuke.Node) -> int | None:
    """Move the viewer to the selected flagged frame ('go to'); returns it (None: no flag)."""
    match = _LEADING_FRAME.match(str(node["qc_flags"].value()))
    if match is None:
        return None
    frame = int(match.group(1))
    nuke.frame(frame)
    return frame


def view_preview(node: nuke.Node) -> nuke.Node:
    """Create a Read of the preview overlays next to the node (in the script's root).

    Raises:
        SettingsError: No preview yet.
    """
    path = node["preview_file"].value()
    if not path:
        raise SettingsError("no preview yet: turn on 'write preview' and press Run")
    first, last = int(node["preview_first"].value()), int(node["preview_last"].value())
    with nuke.root():
        read = nuke.nodes.Read(file=path, first=first, last=last, origfirst=first,
                               origlast=last, colorspace="sRGB",
                               name=f"{node.name()}_preview")
        read["xpos"].setValue(int(node["xpos"].value()) + 150)
        read["ypos"].setValue(int(node["ypos"].value()))
    return read
