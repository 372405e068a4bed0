"""Add-on preferences: where the ActorMatte core CLI and the model weights are.

Blender's Python has no torch, so the extension drives the core CLI from the venv that the
repository's ``install.py`` made. :func:`cli_command` finds it (preference, ``$ACTORMATTE_CLI``,
the install record of the checkout the add-on sits in, ``PATH``; see
``locate.find_cli``). Neither the add-on nor the CLI ever uses the network, whatever
``bpy.app.online_access`` says: weights come from the local models folder.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty

from . import locate

ADDON_DIR = Path(__file__).resolve().parent


class ActorMattePreferences(bpy.types.AddonPreferences):
    """Path of the core CLI and of the models folder."""

    bl_idname = __package__

    cli_path: StringProperty(
        name="Core CLI", subtype="FILE_PATH",
        description="The `actormatte` program, its venv folder or the venv's "
        "actormatte-install.json (empty: $ACTORMATTE_CLI, the checkout's .venv, then PATH)")
    models_dir: StringProperty(
        name="Models Folder", subtype="DIR_PATH",
        description="Model weights folder (empty: $ACTORMATTE_MODELS, else what install.py "
        "recorded)")

    def draw(self, context: bpy.types.Context) -> None:
        """The preference panel, with the CLI it would use."""
        layout = self.layout
        layout.prop(self, "cli_path")
        layout.prop(self, "models_dir")
        try:
            path, source = locate.find_cli(bpy.path.abspath(self.cli_path), addon_dir=ADDON_DIR)
            layout.label(text=f"Using {path} (from {source})", icon="CHECKMARK")
        except locate.CliNotFoundError:
            layout.label(text="Core CLI not found: run `python3 install.py` in the ActorMatte "
                         "checkout, then set its path here", icon="ERROR")
        layout.label(text="Offline by design: neither the add-on nor the core downloads anything "
                     "(weights come from the models folder).", icon="INFO")


def get(context: bpy.types.Context) -> ActorMattePreferences | None:
    """This add-on's preferences (None when the add-on is not registered as such)."""
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def cli_command(context: bpy.types.Context) -> list[str]:
    """The command that starts the core CLI.

    Raises:
        locate.CliNotFoundError: No CLI found; the message says where it looked.
    """
    prefs = get(context)
    setting = bpy.path.abspath(prefs.cli_path) if prefs is not None and prefs.cli_path else ""
    path, _source = locate.find_cli(setting, addon_dir=ADDON_DIR)
    return [str(path)]


def models_dir(context: bpy.types.Context) -> str | None:
    """The models folder to pass with ``--models``, or None for the CLI's default."""
    prefs = get(context)
    if prefs is None or not prefs.models_dir:
        return None
    return bpy.path.abspath(prefs.models_dir)


CLASSES = (ActorMattePreferences,)
