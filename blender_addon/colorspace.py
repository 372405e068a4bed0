"""Map Blender's input colour-space names to the OCIO names the core CLI understands.

The core converts the plate with OpenColorIO, using ``$OCIO`` when set and otherwise OCIO's
built-in CG config (``docs/CLI.md``, ``--input-colorspace``). Blender's own config names some
spaces differently (``Linear Rec.709`` vs ``lin_rec709``), so ``operators.py`` maps the source's
``colorspace_settings.name`` through :func:`ocio_name` before passing it on. Pure Python, no bpy.
"""

from __future__ import annotations

from collections.abc import Mapping

# Blender 4.2-5.x colour-space name -> alias in OCIO's built-in cg/studio configs.
BLENDER_TO_OCIO = {
    "sRGB": "srgb_tx",
    "Linear Rec.709": "lin_rec709",
    "Linear": "lin_rec709",  # Blender < 4.0
    "scene_linear": "lin_rec709",  # role name in Blender 5.x's config
    "Linear Rec.2020": "lin_rec2020",
    "Linear DCI-P3 D65": "lin_p3d65",
    "ACEScg": "ACEScg",
    "ACES2065-1": "ACES2065-1",
    "ACEScc": "ACEScc",
    "ACEScct": "ACEScct",
    "Display P3": "srgb_p3d65",
    "Rec.1886": "g24_rec709",
    "Non-Color": "Raw",
    "Raw": "Raw",
}


def ocio_name(blender_name: str, environ: Mapping[str, str]) -> str | None:
    """The ``--input-colorspace`` value for a Blender colour-space name.

    With ``$OCIO`` set the core reads the same studio config as Blender, so the name passes
    unchanged. Otherwise known names map to the built-in config; an unknown name (``Filmic Log``,
    ``AgX Log``, a studio name) passes unchanged too, and the CLI rejects it with a message naming
    the space, which the operator shows. An empty name gives None (the CLI's default).
    """
    if not blender_name:
        return None
    if environ.get("OCIO"):
        return blender_name
    return BLENDER_TO_OCIO.get(blender_name, blender_name)
