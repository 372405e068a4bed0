"""The "ActorMatte" compositor node: a custom group wrapping an Image node on the cached mattes.

Python nodes cannot process pixels in Blender's compositor (a ``bpy.types.Node`` in a compositor
tree crashes at render), so the node is a ``CompositorNodeCustomGroup``: its inside is an
ordinary node tree holding an Image node that reads the CLI's EXR sequence, one group output per
actor layer (its alpha), ``<layer> Image`` beside it when the EXRs hold the actor's colour
(``<layer>.R/G/B``, ``--foreground``), and ``Combined`` (the maximum of all actors). The node's
own properties describe the job (source, keyframe masks, range, cache, size, device);
``operators.py`` runs the CLI and calls
:func:`build_inside` with what the CLI reported. Works on Blender 4.2 to 5.x.
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import cli_client, exr_header

COMBINED = "Combined"
IMAGE_SUFFIX = " Image"  # "<layer> Image": an actor's colour output (--foreground)
DEFAULT_CACHE = "//actormatte/{node}/"


class ActorMatteActorMask(bpy.types.PropertyGroup):
    """One per-actor keyframe mask (``--actor-mask NAME=PATH[@FRAME]``); ``name`` is the actor."""

    filepath: StringProperty(name="Mask", subtype="FILE_PATH",
                             description="Binary mask of this actor at its keyframe")
    use_keyframe: BoolProperty(name="Keyframe", default=False,
                               description="Mask is for this frame (off: the range's first frame)")
    keyframe: IntProperty(name="Frame", default=1001)


class ActorMatteQCFlag(bpy.types.PropertyGroup):
    """A frame the CLI's QC flagged (``qc_flags`` of the ``done`` event); ``name`` is the actor."""

    frame: IntProperty(name="Frame")
    kind: StringProperty(name="Kind", description="lost, jump or low_confidence")
    message: StringProperty(name="Message")


def _poll_compositor(tree: bpy.types.NodeTree) -> bool:
    return tree.bl_idname == "CompositorNodeTree"


class ActorMatteNode(bpy.types.CompositorNodeCustomGroup):
    """Per-actor soft mattes computed by the ActorMatte core (XMem + MaGGIe)."""

    bl_idname = "ActorMatteNode"
    bl_label = "ActorMatte"
    bl_width_default = 260

    source_type: EnumProperty(name="Source", default="IMAGE", items=(
        ("IMAGE", "Image", "An image-sequence or movie Image datablock"),
        ("CLIP", "Movie Clip", "A Movie Clip datablock"),
        ("FILE", "File", "A file pattern (shot.####.exr) or movie path"),
    ))
    image: PointerProperty(name="Image", type=bpy.types.Image)
    clip: PointerProperty(name="Clip", type=bpy.types.MovieClip)
    filepath: StringProperty(name="Plate", subtype="FILE_PATH",
                             description="Image sequence (shot.####.exr) or movie")
    input_colorspace: StringProperty(
        name="Colour Space", description="OCIO colour space of the plate; empty: the source "
        "image's colour space (File source: sRGB for integer files, linear for float files)")

    masks_mode: EnumProperty(name="Keyframe Masks", default={"ID_MAP"}, options={"ENUM_FLAG"},
                             description="Where the actors come from (several may be combined)",
                             items=(
        ("ID_MAP", "ID Map", "One instance-ID map: 0 background, k actor k"),
        ("ACTOR_MASKS", "Actor Masks", "One binary mask file per actor"),
        ("DETECT", "Detect People", "Automatic person masks (needs the detector's weights)"),
        ("MASK", "Mask", "A Mask datablock: each mask layer is one actor (its name the actor's), "
         "rendered at the keyframes"),
    ))
    mask: PointerProperty(name="Mask", type=bpy.types.Mask,
                          description="Mask drawn over the plate; one layer per actor")
    mask_keyframes: StringProperty(
        name="Keyframes", description="Frames at which the mask is rendered as keyframes, "
        "separated by blanks or commas (empty: the first frame of the range). Edit and Run "
        "again: the CLI reuses what did not change")
    id_map: StringProperty(name="ID Map", subtype="FILE_PATH")
    id_map_names: StringProperty(name="Names",
                                 description="Actor names in id order, comma separated "
                                 "(empty: actor_01, actor_02, ...)")
    id_map_use_keyframe: BoolProperty(name="Keyframe", default=False,
                                      description="Map is for this frame (off: the first frame)")
    id_map_keyframe: IntProperty(name="Frame", default=1001)
    actor_masks: CollectionProperty(type=ActorMatteActorMask)
    actor_masks_index: IntProperty()

    use_frame_range: BoolProperty(name="Frame Range", default=False,
                                  description="Process these frames only (off: the source's)")
    frame_first: IntProperty(name="First", default=1001)
    frame_last: IntProperty(name="Last", default=1100)
    cache_dir: StringProperty(name="Cache", subtype="DIR_PATH",
                              description="Folder of the matte EXRs (empty: "
                              "//actormatte/<node name>/ next to the blend file)")
    size: IntProperty(name="Processing Size", default=576, min=32, soft_max=2048,
                      description="Matting short side in pixels")
    xmem_size: IntProperty(name="Propagation Size", default=480, min=-1, soft_max=2048,
                           description="Propagation (XMem) short side in pixels; -1 keeps the "
                           "plate size")
    device: EnumProperty(name="Device", default="auto", items=(
        ("auto", "Auto", "CUDA when the core sees a GPU"),
        ("cpu", "CPU", ""),
        ("cuda", "CUDA", ""),
    ))

    make_preview: BoolProperty(name="Write Preview", default=True,
                               description="Run also writes overlay PNGs, an H.264 movie and a "
                               "contact sheet into <cache>/preview/ (run --preview)")
    qc_flags: CollectionProperty(type=ActorMatteQCFlag)
    qc_flags_total: IntProperty(name="Flagged", description="Flags of the last run (all kinds)")
    preview_movie: StringProperty(name="Preview", subtype="FILE_PATH")
    layers: StringProperty(name="Actors", description="Actor layers of the last run")
    pixel_aspect: FloatProperty(name="Pixel Aspect", default=1.0,
                                description="Pixel aspect of the plate (from the mattes' EXR "
                                "header; Blender images carry none: set the scene's Aspect X/Y "
                                "to view an anamorphic plate unsqueezed)")
    status: StringProperty(name="Status")

    @classmethod
    def poll(cls, ntree: bpy.types.NodeTree) -> bool:
        """Only in compositor trees."""
        return _poll_compositor(ntree)

    def init(self, context: bpy.types.Context) -> None:
        """Give the new node its own inner tree, with a Combined output until the first run."""
        self.node_tree = bpy.data.node_groups.new(".ActorMatte", "CompositorNodeTree")
        build_inside(self, None, 0, 0, [])

    def copy(self, node: bpy.types.Node) -> None:
        """A duplicated node gets its own copy of the inner tree."""
        if node.node_tree is not None:
            self.node_tree = node.node_tree.copy()

    def free(self) -> None:
        """Remove the inner tree with the node."""
        tree = self.node_tree
        if tree is not None and tree.users <= 1:
            bpy.data.node_groups.remove(tree)

    def draw_buttons(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        """The node's panel: source, masks, range, cache, processing, Run."""
        from . import panel

        panel.draw_node(self, context, layout)

    def draw_buttons_ext(self, context: bpy.types.Context, layout: bpy.types.UILayout) -> None:
        """The sidebar shows the same panel."""
        self.draw_buttons(context, layout)


def resolved_cache_dir(node: ActorMatteNode) -> str:
    """The cache folder as written in the node (default ``//actormatte/<node name>/``)."""
    return node.cache_dir or DEFAULT_CACHE.format(node=bpy.path.clean_name(node.name))


def _clear(tree: bpy.types.NodeTree) -> None:
    tree.nodes.clear()
    for item in list(tree.interface.items_tree):
        tree.interface.remove(item)


def _new_node(tree: bpy.types.NodeTree, *idnames: str) -> bpy.types.Node:
    """A node of the first type this Blender knows.

    Blender 5.0 replaced CompositorNodeMath/Value by the shared ShaderNodeMath/Value.
    """
    for idname in idnames[:-1]:
        try:
            return tree.nodes.new(idname)
        except RuntimeError:
            continue
    return tree.nodes.new(idnames[-1])


def _combined(tree: bpy.types.NodeTree, sockets: list[bpy.types.NodeSocket],
              x: float) -> bpy.types.NodeSocket:
    """A socket carrying the per-pixel maximum of ``sockets`` (0 when there are none)."""
    if not sockets:
        value = _new_node(tree, "CompositorNodeValue", "ShaderNodeValue")
        value.outputs[0].default_value = 0.0
        value.location = (x, -200)
        return value.outputs[0]
    result = sockets[0]
    for index, socket in enumerate(sockets[1:]):
        node = _new_node(tree, "CompositorNodeMath", "ShaderNodeMath")
        node.operation = "MAXIMUM"
        node.location = (x + 180 * index, -200 - 40 * index)
        tree.links.new(result, node.inputs[0])
        tree.links.new(socket, node.inputs[1])
        result = node.outputs[0]
    return result


def _load_sequence(name: str, first_file: str) -> bpy.types.Image:
    """The matte sequence as an Image datablock (reloaded if it already exists)."""
    image = bpy.data.images.get(name)
    if image is None or image.library is not None:
        image = bpy.data.images.load(first_file, check_existing=False)
        image.name = name
    image.filepath = first_file
    image.source = "SEQUENCE"
    image.colorspace_settings.name = "Non-Color"  # alpha is data: no colour conversion
    image.reload()
    return image


def build_inside(node: ActorMatteNode, pattern: str | None, first: int, last: int,
                 layers: list[str], plate_file: str | None = None) -> None:
    """(Re)build the node's inside for a matte sequence.

    Args:
        node: The ActorMatte node; its ``node_tree`` is cleared and rebuilt.
        pattern: The CLI's output pattern (``/o/shot_mattes.####.exr``), or None for an empty
            node (only ``Combined``, constant 0).
        first: First frame of the sequence (plate numbering; plays at this scene frame).
        last: Last frame.
        layers: Actor layers in the CLI's order; one float output each.
        plate_file: The plate's first frame; when it is an EXR whose data window differs from
            the mattes' (a data window inside the display window), each output is cropped to
            the plate's data window, which is all Blender shows of the plate
            (:func:`exr_header.crop_in_matte`).

    Raises:
        ValueError: Blender sees no channel for one of ``layers`` in the first matte file, or
            the mattes do not cover the plate's data window.
    """
    tree = node.node_tree
    if pattern is None:
        layers = []
    _clear(tree)
    output = tree.nodes.new("NodeGroupOutput")
    output.location = (400 + 180 * max(0, len(layers) - 1), 0)
    sockets = []
    if pattern is not None:
        image_node = tree.nodes.new("CompositorNodeImage")
        image_node.location = (0, 0)
        first_file = cli_client.frame_path(pattern, first)
        if bpy.data.filepath and not first_file.startswith("//"):
            try:
                first_file = bpy.path.relpath(first_file)
            except ValueError:  # another drive on Windows
                pass
        image_node.image = _load_sequence(f"ActorMatte {node.name}", first_file)
        image_node.frame_start = first
        image_node.frame_offset = first - 1
        image_node.frame_duration = last - first + 1
        image_node.use_cyclic = False
        sockets = [image_node.outputs.get(layer) for layer in layers]
        if None in sockets:
            found = [socket.name for socket in image_node.outputs]
            raise ValueError(f"the mattes {first_file} lack layers of {layers}; Blender sees "
                             f"{found}. Re-run with 'Recompute'")
        crop = _registration(node, bpy.path.abspath(first_file), plate_file)
        if crop is not None:
            sockets = [_cropped(tree, socket, crop, (160, -160 * index))
                       for index, socket in enumerate(sockets)]
    alphas = []
    for index, (layer, socket) in enumerate(zip(layers, sockets, strict=True)):
        alpha = socket
        if socket.bl_idname == "NodeSocketColor":  # <layer>.R/G/B/A: the actor's colour too
            alpha = _channel_of(tree, socket, "Alpha", (220, -400 - 160 * index))
        tree.interface.new_socket(name=layer, in_out="OUTPUT", socket_type="NodeSocketFloat")
        tree.links.new(alpha, output.inputs[layer])
        if alpha is not socket:
            image = f"{layer}{IMAGE_SUFFIX}"
            tree.interface.new_socket(name=image, in_out="OUTPUT", socket_type="NodeSocketColor")
            tree.links.new(socket, output.inputs[image])
        alphas.append(alpha)
    tree.interface.new_socket(name=COMBINED, in_out="OUTPUT", socket_type="NodeSocketFloat")
    tree.links.new(_combined(tree, alphas, 220), output.inputs[COMBINED])
    node.layers = ",".join(layers)


def _registration(node: ActorMatteNode, matte_file: str,
                  plate_file: str | None) -> tuple[int, int, int, int] | None:
    """The crop that puts the mattes on Blender's view of the plate (None: none needed).

    Also keeps the plate's pixel aspect (the mattes' header) on the node.
    """
    matte = exr_header.read_header(matte_file)
    if matte is None:
        raise ValueError(f"Blender cannot read the matte file {matte_file}")
    node.pixel_aspect = matte.pixel_aspect
    plate = exr_header.read_header(plate_file) if plate_file else None
    if plate is None:  # not an EXR: full frame, as the mattes are
        return None
    return exr_header.crop_in_matte(plate.data, matte.data)


def _cropped(tree: bpy.types.NodeTree, socket: bpy.types.NodeSocket,
             crop: tuple[int, int, int, int], location: tuple[float, float]
             ) -> bpy.types.NodeSocket:
    """``socket`` cropped to ``(x, y, width, height)`` (bottom-left origin), image size too.

    Blender 4.5+ takes the rectangle on input sockets; 4.2-4.4 on node properties.
    """
    node = tree.nodes.new("CompositorNodeCrop")
    node.location = location
    x, y, width, height = crop
    if "Width" in node.inputs:
        for name, value in (("X", x), ("Y", y), ("Width", width), ("Height", height)):
            node.inputs[name].default_value = value
        node.inputs["Alpha Crop"].default_value = False
    else:
        node.use_crop_size, node.relative = True, False
        node.min_x, node.max_x, node.min_y, node.max_y = x, x + width, y, y + height
    tree.links.new(socket, node.inputs["Image"])
    if socket.bl_idname == "NodeSocketColor":
        return node.outputs["Image"]
    return _channel_of(tree, node.outputs["Image"], "Red", (location[0] + 180, location[1]))


def _channel_of(tree: bpy.types.NodeTree, colour: bpy.types.NodeSocket, channel: str,
                location: tuple[float, float]) -> bpy.types.NodeSocket:
    """One channel of an RGBA socket (Separate Color, which 4.2 to 5.x all have).

    A float pass through a colour-only node (Crop) comes back as grey RGB: its Red is the value
    bit for bit, where Blender's implicit colour-to-float conversion averages the channels.
    """
    separate = tree.nodes.new("CompositorNodeSeparateColor")
    separate.location = location
    tree.links.new(colour, separate.inputs[0])
    return separate.outputs[channel]


def compositor_tree(scene: bpy.types.Scene, create: bool = False) -> bpy.types.NodeTree | None:
    """The scene's compositor tree: ``compositing_node_group`` (5.0+) or ``node_tree`` (4.x)."""
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
        return tree
    if create:
        scene.use_nodes = True
    return scene.node_tree


def add_menu_entry(menu: bpy.types.Menu, context: bpy.types.Context) -> None:
    """Entry in the node editor's Add menu (compositor only)."""
    space = context.space_data
    if space is not None and getattr(space, "tree_type", "") == "CompositorNodeTree":
        op = menu.layout.operator("node.add_node", text="ActorMatte", icon="MOD_MASK")
        op.type = ActorMatteNode.bl_idname
        op.use_transform = True


def store_qc(node: ActorMatteNode, done: dict) -> int:
    """Keep the QC flags and the preview movie of a ``done`` event; returns the flag count."""
    node.qc_flags.clear()
    for flag in done.get("qc_flags") or []:
        try:
            item = node.qc_flags.add()
            item.frame, item.name = int(flag["frame"]), str(flag.get("actor", ""))
            item.kind, item.message = str(flag.get("kind", "")), str(flag.get("message", ""))
        except (KeyError, TypeError, ValueError):
            node.qc_flags.remove(len(node.qc_flags) - 1)
    node.qc_flags_total = int(done.get("qc_flags_total") or len(node.qc_flags))
    node.preview_movie = str((done.get("preview") or {}).get("movie", ""))
    return node.qc_flags_total


CLASSES = (ActorMatteActorMask, ActorMatteQCFlag, ActorMatteNode)
