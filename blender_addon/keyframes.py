"""Keyframe lists and result summaries for the ActorMatte node (pure Python, no ``bpy``).

Used by ``operators.py`` and ``mask_render.py``; tested in the core venv by
``tests/blender/test_cli_client.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_HASHES = re.compile(r"#+")


def parse_keyframes(text: str, first: int, last: int | None = None) -> list[int]:
    """The node's keyframe list: frames separated by blanks or commas; empty = ``[first]``.

    Raises:
        ValueError: A word is not a frame number, or a frame is outside ``first..last``.
    """
    frames: set[int] = set()
    for word in text.replace(",", " ").split():
        try:
            frame = int(word)
        except ValueError:
            raise ValueError(f"keyframes: {word!r} is not a frame number; list frames like "
                             "1001 1020 1045") from None
        if frame < first or (last is not None and frame > last):
            end = "" if last is None else f"-{last}"
            raise ValueError(f"keyframe {frame} is outside the frame range {first}{end}")
        frames.add(frame)
    return sorted(frames) or [first]


def sequence_first_frame(pattern: str) -> int | None:
    """The lowest frame number of the files matching a ``####`` pattern (None: no files)."""
    folder, name = os.path.split(pattern)
    match = _HASHES.search(name)
    if match is None or not os.path.isdir(folder or "."):
        return None
    head, tail = re.escape(name[:match.start()]), re.escape(name[match.end():])
    regex = re.compile(f"^{head}(\\d{{{len(match.group())},}}){tail}$")
    frames = [int(m.group(1)) for m in map(regex.match, os.listdir(folder or ".")) if m]
    return min(frames) if frames else None


def reuse_summary(done: Mapping[str, Any]) -> str:
    """Computed vs reused counts of the CLI's ``done`` event (docs/CLI.md).

    ``frames_written``/``frames_skipped`` count mattes; ``frames_propagated``/``frames_resumed``
    are shown too when the event carries them.
    """
    text = (f"{int(done.get('frames_written', 0))} frames computed, "
            f"{int(done.get('frames_skipped', 0))} reused from the cache")
    if "frames_propagated" in done:
        text += (f"; propagation {int(done['frames_propagated'])} computed, "
                 f"{int(done.get('frames_resumed', 0))} reused")
    return text
