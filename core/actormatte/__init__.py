"""ActorMatte: per-actor soft mattes from live-action plates.

The package is host-agnostic: it never imports ``bpy`` or ``nuke``. Hosts (Blender, Nuke, farm
engines) drive it through the ``actormatte`` command-line program and its NDJSON progress protocol.
Data flows ``io`` -> ``masks`` -> ``propagation`` -> ``matting`` -> ``export``; ``pipeline`` is the
only module that knows the whole order.
"""

__version__ = "0.1.0"
