"""EXR layer names for actors, safe in Nuke and Blender (CONVENTIONS.md, EXR output).

Called by the pipeline/CLI when the actor list is known, before anything is written, so a bad
name fails with exit code 2 and nothing on disk. Each actor becomes one channel ``<layer>.A``.

:func:`sanitise_layer_name` applies what Nuke would do to a name and then makes it valid:
accents are dropped (``José`` -> ``Jose``), every character outside ``[A-Za-z0-9_]`` (dots
included: a dot would make a three-level channel name) becomes ``_``, runs of ``_`` collapse,
leading digits and underscores are stripped (Nuke strips leading digits, and a layer must start
with a letter), trailing ``_`` go, and the result is cut to 29 characters so that ``<layer>.A``
fits Nuke's 31-character channel names. :func:`make_layer_names` then rejects what is still
unusable. Reserved names are compared case-insensitively (``RGBA`` is as confusing as ``rgba``),
and so are duplicates: ``Bob`` and ``bob`` would be two Nuke layers differing only by case.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from actormatte.errors import InputError

LAYER_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,29}$")
"""What a layer name must match (CONVENTIONS.md)."""
MAX_CHANNEL_NAME = 31
"""Nuke truncates channel names longer than this."""
CHANNEL_SUFFIX = ".A"
MAX_LAYER_NAME = MAX_CHANNEL_NAME - len(CHANNEL_SUFFIX)

NUKE_RESERVED_LAYERS = (
    "rgba", "rgb", "alpha", "depth", "motion", "forward", "backward", "disparity", "disparityL",
    "disparityR", "mask", "rotopaint_mask", "deep", "other",
)
NUKE_VIEW_NAMES = ("main", "left", "right")
BLENDER_RESERVED_SOCKETS = ("Alpha", "Combined", "Image")
_RESERVED = {
    n.lower(): why
    for names, why in (
        (NUKE_RESERVED_LAYERS, "a Nuke built-in layer"),
        (NUKE_VIEW_NAMES, "a Nuke view name"),
        (BLENDER_RESERVED_SOCKETS, "a Blender Image-node socket"),
    )
    for n in names
}


def channel_name(layer: str) -> str:
    """The EXR channel that carries a layer's matte (``actor_bob`` -> ``actor_bob.A``)."""
    return f"{layer}{CHANNEL_SUFFIX}"


def sanitise_layer_name(name: str) -> str:
    """Turn an actor name into a layer name Nuke and Blender keep as is (rules in module doc).

    Returns:
        The sanitised name; empty when nothing usable is left (``make_layer_names`` rejects it).
    """
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", ascii_only)
    cleaned = re.sub(r"_+", "_", cleaned)
    cleaned = cleaned.lstrip("0123456789_")
    return cleaned[:MAX_LAYER_NAME].rstrip("_")


def make_layer_names(names: Sequence[str]) -> list[str]:
    """Sanitise every actor name and check the set is usable as EXR layers.

    Args:
        names: Actor names in actor order.

    Returns:
        Layer names in the same order.

    Raises:
        InputError: A name sanitises to nothing, to a reserved Nuke layer or view or Blender
            socket name, or to the same layer as another actor; the message names the actor and
            the fix.
    """
    layers: list[str] = []
    seen: dict[str, str] = {}
    for name in names:
        layer = sanitise_layer_name(name)
        if not layer:
            raise InputError(
                f"actor name '{name}' has no letters to make an EXR layer name from; "
                "rename it (names start with a letter; letters, digits and _ only)"
            )
        reserved = _RESERVED.get(layer.lower())
        if reserved is not None:
            raise InputError(
                f"actor name '{name}' gives layer '{layer}', which is {reserved}; "
                f"rename it, e.g. 'actor_{layer}'"
            )
        other = seen.get(layer.lower())
        if other is not None:
            raise InputError(
                f"actors '{other}' and '{name}' both give EXR layer '{layer}' (Nuke strips leading "
                "digits, other characters become _, names are cut at "
                f"{MAX_LAYER_NAME} characters, case is ignored); give them distinct names such "
                f"as '{layer}_1' and '{layer}_2'"
            )
        assert LAYER_NAME_RE.match(layer), layer
        seen[layer.lower()] = name
        layers.append(layer)
    return layers
