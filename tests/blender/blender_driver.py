"""Runs inside real Blender (the ``bpy`` wheel's Python): set up an ActorMatte node, run it, render.

Not a test module: ``test_blender_extension.py`` starts it as
``<bpy venv>/bin/python blender_driver.py SPEC.json`` under a timeout and reads ``result.json``.
The spec names the repository's ``blender_addon`` folder, which is enabled as a real extension
(a local extensions repository holding a symlink to it), the plate, the keyframe masks, the
runs to do and the frames to render through a File Output node.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import bpy

REPO = "amtest"
MODULE = f"bl_ext.{REPO}.actormatte"


def enable_extension(addon_dir: str) -> None:
    """Enable the repository's add-on folder as an extension, as a user's install would."""
    folder = tempfile.mkdtemp(prefix="am-ext-")
    os.symlink(addon_dir, os.path.join(folder, "actormatte"))
    bpy.context.preferences.extensions.repos.new(name=REPO, module=REPO, custom_directory=folder,
                                                 source="USER")
    bpy.ops.preferences.addon_enable(module=MODULE)
    assert MODULE in bpy.context.preferences.addons, "extension did not enable"


def compositor_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """The scene's compositor tree, created empty (5.0+ and 4.x)."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new("Compositing", "CompositorNodeTree")
        scene.compositing_node_group = tree
    else:
        scene.use_nodes = True
        tree = scene.node_tree
    tree.nodes.clear()
    return tree


def _source(node: bpy.types.Node, source: dict) -> None:
    node.source_type = source["type"]
    if source["type"] == "IMAGE" and source.get("path"):
        image = bpy.data.images.load(source["path"])
        image.source = source.get("image_source", "SEQUENCE")
        image.colorspace_settings.name = source.get("colorspace", image.colorspace_settings.name)
        node.image = image
    elif source["type"] == "CLIP" and source.get("path"):
        clip = bpy.data.movieclips.load(source["path"])
        clip.frame_start = source.get("frame_start", clip.frame_start)
        node.clip = clip
    elif source["type"] == "FILE":
        node.filepath = source["path"]


def make_mask(layers: dict) -> bpy.types.Mask:
    """A Mask datablock: per layer a rectangle ``box`` (mask coordinates) and optional
    ``alpha_keys`` ``[[frame, alpha], ...]`` (keyframed render opacity)."""
    mask = bpy.data.masks.new("Actors")
    for name, shape in layers.items():
        layer = mask.layers.new(name=name)
        spline = layer.splines.new()
        spline.points.add(3)
        x0, y0, x1, y1 = shape["box"]
        for point, co in zip(spline.points, ((x0, y0), (x1, y0), (x1, y1), (x0, y1)),
                             strict=True):
            point.co = co
            point.handle_type = "VECTOR"
        spline.use_cyclic = True
        for frame, alpha in shape.get("alpha_keys", []):
            layer.alpha = alpha
            layer.keyframe_insert("alpha", frame=frame)
    return mask


def configure(node: bpy.types.Node, spec: dict) -> None:
    """Set the node's properties from the spec."""
    _source(node, spec["source"])
    if spec.get("mask"):
        node.mask = make_mask(spec["mask"])
        node.mask_keyframes = spec.get("mask_keyframes", "")
    node.input_colorspace = spec.get("input_colorspace", "")
    node.masks_mode = set(spec["masks_mode"])
    node.id_map = spec.get("id_map", "")
    node.id_map_names = spec.get("names", "")
    for name, path, frame in spec.get("actor_masks", []):
        mask = node.actor_masks.add()
        mask.name, mask.filepath = name, path
        if frame is not None:
            mask.use_keyframe, mask.keyframe = True, frame
    if spec.get("frames"):
        node.use_frame_range = True
        node.frame_first, node.frame_last = spec["frames"]
    node.size = spec["size"]
    node.xmem_size = spec.get("xmem_size", spec["size"])  # -1: the plate's size
    node.device = "cpu"
    node.cache_dir = spec.get("cache_dir", "")


def probe(tree: bpy.types.NodeTree, spec: dict, settings: dict) -> dict:
    """The CLI command a node with these settings would run, or the setup error it gives."""
    operators = sys.modules[f"{MODULE}.operators"]
    node = tree.nodes.new("ActorMatteNode")
    node.name = settings.get("name", "Probe")
    configure(node, {**spec, **settings})
    node.make_preview = settings.get("preview", False)
    try:
        request = operators.build_request(bpy.context, node, False)
        command = sys.modules[f"{MODULE}.cli_client"].build_run_command(["am"], request)
        return {"command": command}
    except operators.SetupError as error:
        return {"error": str(error)}
    finally:
        tree.nodes.remove(node)


def add_file_output(tree: bpy.types.NodeTree, node: bpy.types.Node, folder: str) -> None:
    """A File Output node writing every output of ``node`` as ``<frame>_<socket>.exr`` (32-bit)."""
    out = tree.nodes.new("CompositorNodeOutputFile")
    names = [socket.name for socket in node.outputs]
    colour = {s.name for s in node.outputs if s.bl_idname == "NodeSocketColor"}
    fmt = out.format
    if hasattr(out, "file_output_items"):  # Blender 5.0+
        out.directory, out.file_name = folder, "####_"
        fmt.media_type = "IMAGE"
        out.file_output_items.clear()
        for name in names:
            item = out.file_output_items.new("RGBA" if name in colour else "FLOAT", name)
            if name in colour:
                item.override_node_format = True
                item.format.file_format, item.format.color_mode = "OPEN_EXR", "RGBA"
                item.format.color_depth = "32"
    else:
        out.base_path = folder
        out.file_slots.clear()
        for name in names:
            out.file_slots.new(name)
            slot = out.file_slots[name]
            slot.path = f"####_{name}"
            if name in colour:
                slot.use_node_format = False
                slot.format.file_format, slot.format.color_mode = "OPEN_EXR", "RGBA"
                slot.format.color_depth = "32"
    fmt.file_format, fmt.color_mode, fmt.color_depth = "OPEN_EXR", "BW", "32"
    for name in names:
        tree.links.new(node.outputs[name], out.inputs[name])


def run(node: bpy.types.Node, cache_probe: str | None, context: str) -> dict:
    """Run the operator once (``EXEC_DEFAULT`` as a script would, or ``INVOKE_DEFAULT`` as a
    button would); collect its outcome and the cache files."""
    entry: dict = {"error": None}
    try:
        entry["result"] = sorted(bpy.ops.actormatte.run(context, node_name=node.name))
    except RuntimeError as error:
        entry["error"] = str(error)
    entry["status"] = node.status
    entry["layers"] = node.layers
    entry["qc_flags"] = [[flag.frame, flag.name, flag.kind, flag.message]
                         for flag in node.qc_flags]
    entry["qc_flags_total"] = node.qc_flags_total
    entry["preview_movie"] = node.preview_movie
    if node.qc_flags:  # the panel's go-to button of the first flag
        bpy.ops.actormatte.goto_frame(frame=node.qc_flags[0].frame)
        entry["frame_after_goto"] = bpy.context.scene.frame_current
    if cache_probe:
        entry["cache_mtimes"] = {p.name: p.stat().st_mtime_ns
                                 for p in sorted(Path(cache_probe).glob("*.exr"))}
    return entry


def describe_inside(node: bpy.types.Node) -> dict:
    """What the node's inner tree holds: its Image node's settings and the group outputs."""
    images = [n for n in node.node_tree.nodes if n.bl_idname == "CompositorNodeImage"]
    info: dict = {"outputs": [socket.name for socket in node.outputs]}
    if images:
        image_node = images[0]
        info.update(filepath=image_node.image.filepath, source=image_node.image.source,
                    colorspace=image_node.image.colorspace_settings.name,
                    frame_start=image_node.frame_start, frame_offset=image_node.frame_offset,
                    frame_duration=image_node.frame_duration)
    return info


def render(tree: bpy.types.NodeTree, node: bpy.types.Node, spec: dict) -> None:
    """Render the node's outputs at ``render_frames`` through a File Output node."""
    if not spec.get("render_frames"):
        return
    add_file_output(tree, node, spec["render_dir"])
    for frame in spec["render_frames"]:
        bpy.context.scene.frame_set(frame)
        bpy.ops.render.render(write_still=False)


def registration(tree: bpy.types.NodeTree, case: dict) -> dict:
    """One plate/matte pair: an ActorMatte node on the plate's Image, built on the mattes, and
    a File Output writing the plate's red (as Blender reads the plate) beside every output."""
    operators = sys.modules[f"{MODULE}.operators"]
    tree.nodes.clear()
    plate = bpy.data.images.load(case["plate"], check_existing=False)
    plate.source = "SEQUENCE"
    node = tree.nodes.new("ActorMatteNode")
    node.name = case["name"]
    node.source_type, node.image = "IMAGE", plate
    plate_size = list(operators.plate_size(bpy.context, node))  # before any Image node uses it
    first = case["first"]
    sys.modules[f"{MODULE}.node"].build_inside(node, case["mattes"], first, case["last"],
                                               case["layers"],
                                               operators.plate_first_file(node, first))
    reader = tree.nodes.new("CompositorNodeImage")
    reader.image, reader.frame_start, reader.frame_offset = plate, first, first - 1
    reader.frame_duration = case["last"] - first + 1
    red = tree.nodes.new("CompositorNodeSeparateColor")
    tree.links.new(reader.outputs[case["plate_socket"]], red.inputs[0])
    add_file_output(tree, node, case["render_dir"])
    (out,) = [n for n in tree.nodes if n.bl_idname == "CompositorNodeOutputFile"]
    if hasattr(out, "file_output_items"):
        out.file_output_items.new("FLOAT", "plate")
    else:
        out.file_slots.new("plate")
        out.file_slots["plate"].path = "####_plate"
    tree.links.new(red.outputs["Red"], out.inputs["plate"])
    bpy.context.scene.frame_set(first)
    bpy.ops.render.render(write_still=False)
    crops = [n.bl_idname for n in node.node_tree.nodes if n.bl_idname == "CompositorNodeCrop"]
    return {"plate_size": plate_size, "pixel_aspect": node.pixel_aspect, "crops": len(crops),
            "outputs": [socket.name for socket in node.outputs]}


def run_nodes(tree: bpy.types.NodeTree, spec: dict) -> list[dict]:
    """One node per entry of ``spec["nodes"]`` (the spec's settings updated by the entry's), each
    run once; its outcome and the plate size it rendered its Mask keyframes at."""
    operators = sys.modules[f"{MODULE}.operators"]
    entries = []
    for case in spec["nodes"]:
        node = tree.nodes.new("ActorMatteNode")
        node.name = case["name"]
        configure(node, {**spec, **case})
        entry = run(node, None, "EXEC_DEFAULT")
        entry["plate_size"] = list(operators.plate_size(bpy.context, node))
        entries.append(entry)
    return entries


def main(spec_path: str) -> None:
    """Do what the spec asks and write ``result.json`` next to it."""
    spec = json.loads(Path(spec_path).read_text())
    result: dict = {"version": list(bpy.app.version), "runs": []}
    result_path = Path(spec_path).with_name("result.json")
    try:
        enable_extension(spec["addon_dir"])
        prefs = bpy.context.preferences.addons[MODULE].preferences
        prefs.models_dir = spec["models"]
        scene = bpy.context.scene
        scene.render.resolution_x, scene.render.resolution_y = spec["resolution"]
        scene.render.resolution_percentage = 100
        tree = compositor_tree(scene)
        result["probes"] = [probe(tree, spec, settings) for settings in spec.get("probes", [])]
        if spec.get("blend"):
            bpy.ops.wm.save_as_mainfile(filepath=spec["blend"])
        result["probes_saved"] = [probe(tree, spec, s) for s in spec.get("probes_saved", [])]
        if spec.get("registration"):  # plates and their mattes, without the CLI
            result["registration"] = [registration(tree, case) for case in spec["registration"]]
            return
        if spec.get("inside"):  # build the node on given EXRs, without the CLI
            node = tree.nodes.new("ActorMatteNode")
            node.name = "Hero"
            node_module = sys.modules[f"{MODULE}.node"]
            node_module.build_inside(node, **spec["inside"])
            result["inside"] = describe_inside(node)
            render(tree, node, spec)
            return
        if spec.get("nodes"):  # several nodes, one run each
            result["nodes"] = run_nodes(tree, spec)
            return
        if not spec.get("source"):
            return
        node = tree.nodes.new("ActorMatteNode")
        node.name = "Hero"
        configure(node, spec)
        for index in range(spec.get("runs", 1)):
            context = "INVOKE_DEFAULT" if index % 2 else "EXEC_DEFAULT"
            result["runs"].append(run(node, spec.get("cache_probe"), context))
            result["inside"] = describe_inside(node)
        render(tree, node, spec)
    except Exception:  # the test reads the traceback from result.json
        result["exception"] = traceback.format_exc()
    finally:
        result_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
