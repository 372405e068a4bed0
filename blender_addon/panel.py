"""The ActorMatte node's panel (drawn in the node and in the sidebar) and its list buttons.

Called from ``ActorMatteNode.draw_buttons``; the Run/Cancel buttons call ``operators.py``.
"""

from __future__ import annotations

import bpy
from bpy.props import IntProperty, StringProperty

from . import node, operators


def _node_from(context: bpy.types.Context, tree_name: str,
               node_name: str) -> node.ActorMatteNode | None:
    try:
        return operators.find_node(context, tree_name, node_name)
    except operators.SetupError:
        return None


class ACTORMATTE_OT_mask_add(bpy.types.Operator):
    """Add a per-actor keyframe mask."""

    bl_idname = "actormatte.mask_add"
    bl_label = "Add Actor Mask"
    bl_options = {"REGISTER", "UNDO"}

    tree_name: StringProperty(options={"SKIP_SAVE"})
    node_name: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Append an actor named ``actor_NN``."""
        am = _node_from(context, self.tree_name, self.node_name)
        if am is None:
            return {"CANCELLED"}
        mask = am.actor_masks.add()
        mask.name = f"actor_{len(am.actor_masks):02d}"
        return {"FINISHED"}


class ACTORMATTE_OT_mask_remove(bpy.types.Operator):
    """Remove a per-actor keyframe mask."""

    bl_idname = "actormatte.mask_remove"
    bl_label = "Remove Actor Mask"
    bl_options = {"REGISTER", "UNDO"}

    tree_name: StringProperty(options={"SKIP_SAVE"})
    node_name: StringProperty(options={"SKIP_SAVE"})
    index: IntProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Remove the mask at ``index``."""
        am = _node_from(context, self.tree_name, self.node_name)
        if am is None or not 0 <= self.index < len(am.actor_masks):
            return {"CANCELLED"}
        am.actor_masks.remove(self.index)
        return {"FINISHED"}


class ACTORMATTE_OT_keyframe_add(bpy.types.Operator):
    """Add the current frame to the node's mask keyframes."""

    bl_idname = "actormatte.keyframe_add"
    bl_label = "Add Current Frame"
    bl_options = {"REGISTER", "UNDO"}

    tree_name: StringProperty(options={"SKIP_SAVE"})
    node_name: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Append ``scene.frame_current`` (kept sorted, no duplicates)."""
        am = _node_from(context, self.tree_name, self.node_name)
        if am is None:
            return {"CANCELLED"}
        words = am.mask_keyframes.replace(",", " ").split()
        frames = {int(w) for w in words if w.lstrip("-").isdigit()}
        frames.add(context.scene.frame_current)
        am.mask_keyframes = " ".join(str(f) for f in sorted(frames))
        return {"FINISHED"}


class ACTORMATTE_OT_goto_frame(bpy.types.Operator):
    """Go to a frame the QC flagged."""

    bl_idname = "actormatte.goto_frame"
    bl_label = "Go to Flagged Frame"

    frame: IntProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Set the scene's current frame."""
        context.scene.frame_set(self.frame)
        return {"FINISHED"}


_SHOWN_FLAGS = 12


def _draw_check(am: node.ActorMatteNode, layout: bpy.types.UILayout) -> None:
    """Preview switch and button, then the flagged frames with a go-to button each."""
    row = layout.row(align=True)
    row.prop(am, "make_preview")
    if am.preview_movie:
        row.operator("wm.path_open", text="Open Preview", icon="FILE_MOVIE").filepath = \
            am.preview_movie
    if not am.qc_flags:
        return
    layout.label(text=f"Flagged frames ({am.qc_flags_total}):", icon="ERROR")
    for flag in am.qc_flags[:_SHOWN_FLAGS]:
        row = layout.row(align=True)
        row.operator("actormatte.goto_frame", text=str(flag.frame)).frame = flag.frame
        row.label(text=flag.message)
    if am.qc_flags_total > _SHOWN_FLAGS:
        layout.label(text=f"... {am.qc_flags_total - _SHOWN_FLAGS} more in qc.json")


def _target(op: object, am: node.ActorMatteNode) -> object:
    op.tree_name = operators.tree_key(am.id_data)  # type: ignore[attr-defined]
    op.node_name = am.name  # type: ignore[attr-defined]
    return op


def _draw_masks(am: node.ActorMatteNode, layout: bpy.types.UILayout) -> None:
    layout.row(align=True).prop(am, "masks_mode")
    if "ID_MAP" in am.masks_mode:
        layout.prop(am, "id_map", text="")
        layout.prop(am, "id_map_names")
        row = layout.row(align=True)
        row.prop(am, "id_map_use_keyframe")
        row.prop(am, "id_map_keyframe")
    if "ACTOR_MASKS" in am.masks_mode:
        for index, mask in enumerate(am.actor_masks):
            row = layout.row(align=True)
            row.prop(mask, "name", text="")
            row.prop(mask, "filepath", text="")
            row.prop(mask, "use_keyframe", text="", icon="KEYFRAME")
            if mask.use_keyframe:
                row.prop(mask, "keyframe", text="")
            _target(row.operator("actormatte.mask_remove", text="", icon="X"), am).index = index
        _target(layout.operator("actormatte.mask_add", icon="ADD"), am)
    if "MASK" in am.masks_mode:
        layout.prop(am, "mask", text="")
        row = layout.row(align=True)
        row.prop(am, "mask_keyframes")
        _target(row.operator("actormatte.keyframe_add", text="", icon="KEYFRAME_HLT"), am)
        if am.mask is not None:
            names = [layer.name for layer in am.mask.layers if not layer.hide_render]
            layout.label(text="Actors: " + ", ".join(names))
    if "DETECT" in am.masks_mode:
        layout.label(text="People are detected near the range start", icon="INFO")


def draw_node(am: node.ActorMatteNode, context: bpy.types.Context,
              layout: bpy.types.UILayout) -> None:
    """Source, keyframe masks, range, cache, processing, Run/Cancel and the last status."""
    layout.prop(am, "source_type", text="")
    layout.prop(am, {"IMAGE": "image", "CLIP": "clip", "FILE": "filepath"}[am.source_type],
                text="")
    layout.prop(am, "input_colorspace")
    _draw_masks(am, layout.box())
    row = layout.row(align=True)
    row.prop(am, "use_frame_range", text="")
    sub = row.row(align=True)
    sub.active = am.use_frame_range
    sub.prop(am, "frame_first")
    sub.prop(am, "frame_last")
    layout.prop(am, "cache_dir", text="", placeholder=node.resolved_cache_dir(am))
    row = layout.row(align=True)
    row.prop(am, "size", text="Size")
    row.prop(am, "xmem_size", text="Propagation")
    layout.prop(am, "device", text="Device")
    if operators.running(am):
        _target(layout.operator("actormatte.cancel", icon="CANCEL"), am)
    else:
        row = layout.row(align=True)
        _target(row.operator("actormatte.run", icon="PLAY"), am)
        op = _target(row.operator("actormatte.run", text="", icon="FILE_REFRESH"), am)
        op.overwrite = True  # type: ignore[attr-defined]
    _draw_check(am, layout.box())
    if am.layers:
        layout.label(text="Actors: " + am.layers.replace(",", ", "))
        render = context.scene.render
        scene_aspect = render.pixel_aspect_x / max(render.pixel_aspect_y, 1e-6)
        if abs(am.pixel_aspect - scene_aspect) > 1e-3:  # docs/BLENDER.md, "Plate geometry"
            layout.label(text=f"Plate pixel aspect {am.pixel_aspect:g}: set Output > Format > "
                         f"Aspect X/Y to view it unsqueezed", icon="INFO")
    if am.status:
        layout.label(text=am.status)


CLASSES = (ACTORMATTE_OT_mask_add, ACTORMATTE_OT_mask_remove, ACTORMATTE_OT_keyframe_add,
           ACTORMATTE_OT_goto_frame)
