"""ActorMatte for Blender: a compositor node with one soft matte per actor, made by the core CLI.

Registration only; the node is in ``node.py``, the operators in ``operators.py``, the CLI bridge
(pure Python) in ``cli_client.py``. See ``docs/BLENDER.md``.
"""

from __future__ import annotations

import bpy

from . import node, operators, panel, preferences

_CLASSES = (*preferences.CLASSES, *node.CLASSES, *operators.CLASSES, *panel.CLASSES)


def register() -> None:
    """Register the classes and the Add-menu entry."""
    for cls in _CLASSES:
        bpy.utils.register_class(cls)
    menu = getattr(bpy.types, "NODE_MT_add", None)  # the node editor's Add menu
    if menu is not None:
        menu.append(node.add_menu_entry)


def unregister() -> None:
    """Stop running jobs, remove the menu entry, unregister the classes."""
    operators.stop_all()
    menu = getattr(bpy.types, "NODE_MT_add", None)
    if menu is not None:
        menu.remove(node.add_menu_entry)
    for cls in reversed(_CLASSES):
        bpy.utils.unregister_class(cls)
