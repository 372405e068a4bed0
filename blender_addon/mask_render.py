"""Keyframe masks from a Blender Mask datablock, rendered into layered EXRs for the core CLI.

Called by ``operators.build_request`` on the main thread when Run is pressed. Each mask layer is
one actor (its name the actor's name; layers hidden for render are skipped). For every keyframe
a temporary scene at the plate's size renders, through its compositor, one Mask node per layer
(each on a copy of the datablock holding only that layer, so shapes of other layers never leak
in) into one File Output node writing a multilayer EXR ``<folder>/<node>_masks.<frame>.exr``
(32-bit float, ZIP) with one ``<layer>.V`` channel per actor; Blender 5 writes it as one part
per layer, which the core reads too. The scene, its tree and the copies are removed again; the
user's scene is never touched. The files go to the CLI as ``--mask-layers FILE@FRAME``.

Frames: the mask is evaluated at scene frame K of the temporary scene, i.e. the plate frame K
when the plate plays at its own frame numbers (as the node's matte sequence does).
"""

from __future__ import annotations

import os

import bpy

SCENE_NAME = ".ActorMatte masks"


def actor_layers(mask: bpy.types.Mask) -> list[str]:
    """The names of the mask's layers that render (one actor each), in the mask's order."""
    return [layer.name for layer in mask.layers if not layer.hide_render]


def in_mask_order(mask: bpy.types.Mask | None, layers: list[str]) -> list[str]:
    """The run's ``layers`` with the mask's actors in the mask's layer order, others in place.

    A single-part EXR (what bpy 4.x writes for the keyframes) stores its channels sorted by
    name, so the core meets the mask's actors alphabetically; bpy 5 writes one part per layer in
    the mask's order. The node's sockets follow the mask in both.
    """
    if mask is None:
        return layers
    order = [name for name in actor_layers(mask) if name in layers]
    slots = iter(order)
    return [next(slots) if name in order else name for name in layers]


def _scene_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+
        tree = bpy.data.node_groups.new(f"{SCENE_NAME} tree", "CompositorNodeTree")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
    tree.nodes.clear()
    return tree


def _file_output(tree: bpy.types.NodeTree, folder: str, stem: str,
                 names: list[str]) -> bpy.types.Node:
    out = tree.nodes.new("CompositorNodeOutputFile")
    fmt = out.format
    if hasattr(out, "file_output_items"):  # Blender 5.0+
        out.directory, out.file_name = folder, f"{stem}.####"
        fmt.media_type = "MULTI_LAYER_IMAGE"
        out.file_output_items.clear()
        for name in names:
            out.file_output_items.new("FLOAT", name)
    else:
        fmt.file_format = "OPEN_EXR_MULTILAYER"
        out.base_path = os.path.join(folder, f"{stem}.")
        out.layer_slots.clear()
        for name in names:
            out.layer_slots.new(name)
    fmt.color_depth, fmt.exr_codec = "32", "ZIP"
    return out


def _single_layer_copy(mask: bpy.types.Mask, keep: str) -> bpy.types.Mask:
    copy = mask.copy()
    copy.name = f".ActorMatte {mask.name} {keep}"
    for layer in list(copy.layers):
        if layer.name != keep:
            copy.layers.remove(layer)
    return copy


def render_keyframes(mask: bpy.types.Mask, folder: str, stem: str, frames: list[int],
                     size: tuple[int, int]) -> list[str]:
    """Render ``mask`` at ``frames`` into ``<folder>/<stem>.<frame>.exr``.

    Args:
        mask: The Mask datablock; each rendering layer is an actor.
        folder: Output folder (created).
        stem: File name stem.
        frames: Keyframes (scene frames = plate frames).
        size: Plate (width, height).

    Returns:
        ``PATH@FRAME`` items for ``--mask-layers``.

    Raises:
        ValueError: The mask has no layer that renders.
    """
    names = actor_layers(mask)
    if not names:
        raise ValueError(f"the mask {mask.name!r} has no layer that renders; add one layer per "
                         "actor, named like the actor")
    os.makedirs(folder, exist_ok=True)
    scene = bpy.data.scenes.new(SCENE_NAME)
    copies = [_single_layer_copy(mask, name) for name in names]
    tree = None
    try:
        scene.render.resolution_x, scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        tree = _scene_tree(scene)
        out = _file_output(tree, folder, stem, names)
        for name, copy in zip(names, copies, strict=True):
            mask_node = tree.nodes.new("CompositorNodeMask")
            mask_node.mask = copy
            tree.links.new(mask_node.outputs[0], out.inputs[name])
        for frame in frames:
            scene.frame_set(frame)
            with bpy.context.temp_override(scene=scene):  # renders this scene at its frame
                bpy.ops.render.render(write_still=False)
    finally:
        if tree is not None and not tree.is_embedded_data:
            bpy.data.node_groups.remove(tree)
        bpy.data.scenes.remove(scene)
        for copy in copies:
            bpy.data.masks.remove(copy)
    return [f"{os.path.join(folder, f'{stem}.{frame:04d}.exr')}@{frame}" for frame in frames]
