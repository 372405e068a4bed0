"""The ActorMatte gizmo's insides: knobs -> job settings, frames in, and the cached-matte chain.

Called on the main thread only (buttons, ``onCreate`` and the callback a finished job queues with
``nuke.executeInMainThread``). The gizmo's output is ``plate -> Copy -> Copy -> ... -> Output``
with one Copy per actor taking ``<layer>.alpha`` (and ``<layer>.red/green/blue`` when the EXRs
hold the actor's colour, ``--foreground``) from the internal Read of the cached EXRs
(``MatteRead``, whose file/first/last are expressions on the gizmo's ``matte_*`` knobs). Nuke does
not save a gizmo's insides with the script, only its knobs, so :func:`rebuild` re-creates the
Copy chain from ``matte_layers`` whenever the node is created or loaded (``onCreate``): a farm
render needs this package (stdlib only) and the EXRs, never the core.
"""

from __future__ import annotations

import os
import re
import shutil

import nuke

from .knobs import (
    Settings,
    SettingsError,
    cli_colorspace,
    is_movie,
    mask_args,
    nuke_to_cli_path,
)
from .masks import mask_inputs

COPY_PREFIX = "am_copy_"
PLATE_INPUT, MATTE_READ, OUTPUT = "plate", "MatteRead", "Output1"
PRERENDER_FOLDER = "plate"
COLOUR_CHANNELS = ("red", "green", "blue", "alpha")  # Nuke's names of <layer>.R/G/B/A
# A layer name Nuke keeps as it is (CONVENTIONS.md, EXR output).
_SAFE_LAYER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,29}$")
_RESERVED_LAYERS = {"rgba", "rgb", "alpha", "depth", "motion", "forward", "backward",
                    "disparity", "disparityL", "disparityR", "mask", "rotopaint_mask", "deep",
                    "other", "main", "left", "right"}
_FRAME_FILE = re.compile(r"^(.*?)(\d+)\.exr$")


def layer_problem(layer: str) -> str:
    """Why Nuke would not show ``layer`` as it is ("" when it is fine)."""
    if not _SAFE_LAYER.match(layer):
        return f"layer {layer!r} is not a Nuke-safe name (^[A-Za-z][A-Za-z0-9_]{{0,29}}$)"
    if layer in _RESERVED_LAYERS:
        return f"layer {layer!r} is a Nuke reserved layer or view name"
    return ""


def default_cache_dir(node: nuke.Node) -> str:
    """``<script folder>/actormatte/<node name>``; the script must be saved."""
    script = nuke.root()["name"].value()
    if not script:
        raise SettingsError("save the script first, or set the 'cache folder' knob")
    return os.path.join(os.path.dirname(script), "actormatte", node.name())


def cache_dir(node: nuke.Node) -> str:
    """The node's cache folder (knob, else next to the script)."""
    return node["cache_dir"].value().strip() or default_cache_dir(node)


def plain_read(upstream: nuke.Node | None) -> bool:
    """Whether the input is a Read whose file the core can read as it is."""
    if upstream is None or upstream.Class() != "Read" or upstream["disable"].value():
        return False
    path = upstream["file"].value()
    offset = upstream.knob("frame")
    if not path or (offset is not None and str(offset.value()).strip()):
        return False
    try:
        nuke_to_cli_path(path)
    except SettingsError:
        return False
    return True


def _frame_range(node: nuke.Node, upstream: nuke.Node) -> tuple[int, int]:
    if node["use_input_range"].value():
        return int(upstream.firstFrame()), int(upstream.lastFrame())
    return int(node["first"].value()), int(node["last"].value())


def prerender_input(node: nuke.Node, folder: str, first: int, last: int) -> str:
    """Render the gizmo's input to ``folder`` as half-float EXRs in the working space.

    A temporary Write inside the gizmo is executed for the range and deleted, so renders of the
    script never run it. Nuke's EXR writer stores the input's bbox as the data window and its
    format as the display window and pixelAspectRatio; ``autocrop`` stays off so the data
    window is the whole bbox (overscan included) and the core sees the plate's geometry.
    Returns the sequence in hashes notation.
    """
    pattern = os.path.join(folder, f"{node.name()}_plate.####.exr").replace("\\", "/")
    with node:
        write = nuke.nodes.Write(file=pattern, file_type="exr", channels="rgb",
                                 datatype="16 bit half", raw=True, create_directories=True,
                                 autocrop=False)
        write.setInput(0, nuke.toNode(PLATE_INPUT))
    try:
        nuke.execute(write, first, last, 1)
    finally:
        nuke.delete(write)
    return pattern


def read_settings(node: nuke.Node) -> tuple[Settings, str | None]:
    """The job for the node's knobs and input; pre-renders the input when it is not a plain Read.

    Returns:
        The settings and the pre-render folder to delete after a successful run (or None).

    Raises:
        SettingsError: No input, an empty range, missing masks, an unsaved script.
    """
    upstream = node.input(0)
    if upstream is None:
        raise SettingsError("connect the plate to the ActorMatte node's input")
    first, last = _frame_range(node, upstream)
    out_dir = cache_dir(node)
    values = {k: node[k].value() for k in (
        "id_map", "id_map_frame", "more_id_maps", "actor_names", "actor_masks", "detect",
        "detect_threshold", "detect_max", "size", "xmem_size", "device", "float32", "overwrite",
        "make_preview", "models")}
    masks_in = node.input(1)
    placeholder = ["(masks input)"] if masks_in is not None else []
    mask_args(Settings(plate="", out_dir=out_dir, first=first, last=last,  # pre-check
                       mask_layers=placeholder, **values))
    layer_items, id_items = mask_inputs(node, out_dir, first, last, plain_read(masks_in))
    prerender = None
    start_frame = None
    colorspace = node["input_colorspace"].value().strip()
    if plain_read(upstream):
        plate = nuke_to_cli_path(upstream["file"].value())
        if not colorspace:
            colorspace = "" if upstream["raw"].value() else cli_colorspace(
                str(upstream["colorspace"].value()))
        if is_movie(plate):
            start_frame = int(upstream["origfirst"].value()) or 1
    else:
        prerender = os.path.join(out_dir, PRERENDER_FOLDER)
        plate = prerender_input(node, prerender, first, last)
        if not colorspace:
            colorspace = cli_colorspace(str(nuke.root()["workingSpaceLUT"].value())) or "lin_rec709"
    settings = Settings(plate=plate, out_dir=out_dir, first=first, last=last,
                        input_colorspace=colorspace, start_frame=start_frame,
                        mask_layers=layer_items, mask_id_maps=id_items, **values)
    return settings, prerender


def set_cached(node: nuke.Node, pattern: str, first: int, last: int, layers: list[str],
               colour_layers: list[str] | None = None) -> None:
    """Point the node at a cached matte sequence and rebuild its Copy chain.

    ``colour_layers``: actors whose EXR also holds ``<layer>.R/G/B`` (``--foreground``).
    """
    node["matte_file"].setValue(pattern.replace("\\", "/"))
    node["matte_first"].setValue(int(first))
    node["matte_last"].setValue(int(last))
    node["matte_layers"].setValue(",".join(layers))
    node["matte_colour_layers"].setValue(",".join(x for x in colour_layers or [] if x in layers))
    rebuild(node)


def _split(text: object) -> list[str]:
    return [x.strip() for x in str(text).split(",") if x.strip()]


def cached_layers(node: nuke.Node) -> list[str]:
    """The actor layers recorded on the node."""
    return _split(node["matte_layers"].value())


def rebuild(node: nuke.Node) -> list[str]:
    """Re-create ``plate -> Copy(<layer>.alpha from MatteRead) ... -> Output`` from the knobs.

    Returns:
        Problems found with layer names (empty when all is well).
    """
    layers = cached_layers(node)
    problems = [p for p in (layer_problem(x) for x in layers) if p]
    with node:
        for old in nuke.allNodes("Copy"):
            if old.name().startswith(COPY_PREFIX):
                nuke.delete(old)
        stream = nuke.toNode(PLATE_INPUT)
        read = nuke.toNode(MATTE_READ)
        colour = set(_split(node["matte_colour_layers"].value()))
        for index, layer in enumerate(layers, start=1):
            parts = COLOUR_CHANNELS if layer in colour else ("alpha",)
            channels = [f"{layer}.{part}" for part in parts]
            nuke.Layer(layer, channels)   # declared before a Copy knob names it
            copy = nuke.nodes.Copy(name=f"{COPY_PREFIX}{index:02d}")
            for slot, channel in enumerate(channels):
                copy[f"from{slot}"].setValue(channel)
                copy[f"to{slot}"].setValue(channel)
            copy.setInput(0, stream)
            copy.setInput(1, read)
            stream = copy
        nuke.toNode(OUTPUT).setInput(0, stream)
    return problems


def find_cached_sequence(folder: str, preferred: str = "") -> tuple[str, int, int] | None:
    """The matte sequence in ``folder`` (``*_mattes.<frame>.exr``): (hashes pattern, first, last).

    ``preferred`` (the node's current pattern) wins when its files are there.
    """
    if not os.path.isdir(folder):
        return None
    groups: dict[tuple[str, int], list[int]] = {}
    for name in os.listdir(folder):
        match = _FRAME_FILE.match(name)
        if match:
            groups.setdefault((match.group(1), len(match.group(2))), []).append(
                int(match.group(2)))
    if not groups:
        return None
    keys = sorted(groups, key=lambda k: (not k[0].endswith("_mattes."), k))
    wanted = os.path.basename(preferred)
    for key in keys:
        if wanted == f"{key[0]}{'#' * key[1]}.exr":
            keys = [key]
            break
    prefix, padding = keys[0]
    frames = groups[keys[0]]
    pattern = os.path.join(folder, f"{prefix}{'#' * padding}.exr").replace("\\", "/")
    return pattern, min(frames), max(frames)


def reload(node: nuke.Node) -> str:
    """Re-read the cache (after a farm or shell run): pattern, range and layers from the files."""
    folder = os.path.dirname(node["matte_file"].value()) or cache_dir(node)
    found = find_cached_sequence(folder, node["matte_file"].value())
    if found is None:
        return f"no matte EXRs in {folder}"
    pattern, first, last = found
    node["matte_file"].setValue(pattern)
    node["matte_first"].setValue(first)
    node["matte_last"].setValue(last)
    with node:
        read = nuke.toNode(MATTE_READ)
        read["reload"].execute()
        channels = read.channels()
    layers = sorted({c.split(".")[0] for c in channels if c.endswith(".alpha")} - {"rgba"})
    colour = [x for x in layers if {f"{x}.{part}" for part in COLOUR_CHANNELS} <= set(channels)]
    set_cached(node, pattern, first, last, layers, colour)
    problem = geometry_problem(node)
    return f"{len(layers)} actor(s), frames {first}-{last}" + (f"; {problem}" if problem else "")


def _frame_file(pattern: str, frame: int) -> str:
    """One frame's file of a ``####`` pattern."""
    return re.sub(r"#+", lambda m: str(frame).zfill(len(m.group(0))), pattern, count=1)


def geometry_problem(node: nuke.Node) -> str:
    """Why the cached mattes would not line up with the node's input ("" when they do).

    The output is the input with the mattes copied in, so both must share the format and pixel
    aspect (the core writes the plate's display window and pixelAspectRatio into every matte;
    a Read of it takes its format from them). A different format means the cache was made for
    another version of the input: Run again.
    """
    pattern = node["matte_file"].value()
    if not pattern or node.input(0) is None \
            or not os.path.isfile(_frame_file(pattern, int(node["matte_first"].value()))):
        return ""
    with node:
        matte, plate = nuke.toNode(MATTE_READ).format(), nuke.toNode(PLATE_INPUT).format()
    size, theirs = (plate.width(), plate.height()), (matte.width(), matte.height())
    if size == theirs and abs(plate.pixelAspect() - matte.pixelAspect()) < 1e-6:
        return ""
    return (f"the mattes are {theirs[0]}x{theirs[1]} (pixel aspect {matte.pixelAspect():g}) but "
            f"the input is {size[0]}x{size[1]} ({plate.pixelAspect():g}): they will not line up; "
            "press Run for this input")


def remove_prerender(folder: str | None) -> None:
    """Delete the temporary pre-rendered plate."""
    if folder and os.path.basename(folder.rstrip("/\\")) == PRERENDER_FOLDER:
        shutil.rmtree(folder, ignore_errors=True)
