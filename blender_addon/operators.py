"""Run / Cancel operators of the ActorMatte node: start the core CLI, follow it, load its mattes.

Interactive: ``invoke`` starts the CLI (``cli_client.CliJob``, whose reader thread fills a queue)
and a modal timer drains the queue on the main thread into ``window_manager.progress_*`` and the
status bar; Esc or the Cancel button stops the CLI (frames already written stay in the cache).
Background (``blender -b``, the ``bpy`` module; timers never fire there): ``execute`` runs the
same job synchronously and prints progress; Ctrl+C stops the CLI. On success the node's inside is
rebuilt on the CLI's EXR sequence; CLI errors reach the user through ``self.report``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import bpy
from bpy.props import BoolProperty, StringProperty

from . import (
    cli_client,
    colorspace,
    exr_header,
    keyframes,
    locate,
    mask_render,
    node,
    preferences,
)

_RUNNING: dict[str, Session] = {}


class SetupError(Exception):
    """The node cannot be run as set up; the message says what to change."""


@dataclass
class Session:
    """A running job: which node it serves, the process, and what it reported so far."""

    tree_name: str
    node_name: str
    out: str
    job: cli_client.CliJob
    monitor: cli_client.RunMonitor = field(default_factory=cli_client.RunMonitor)
    cancel_requested: bool = False

    @property
    def key(self) -> str:
        """Identifies the node in :data:`_RUNNING`."""
        return f"{self.tree_name}/{self.node_name}"

    def pump(self, timeout: float = 0.0) -> None:
        """Feed the events queued so far to the monitor."""
        for event in self.job.drain(timeout):
            self.monitor.feed(event)


def tree_key(tree: bpy.types.NodeTree) -> str:
    """How the operators name a tree: "" for the scene's own compositor tree (4.x)."""
    return "" if tree.is_embedded_data else tree.name


def find_node(context: bpy.types.Context, tree_name: str, node_name: str) -> node.ActorMatteNode:
    """The ActorMatte node an operator acts on (the active node when no name is given)."""
    if not node_name:
        active = getattr(context, "active_node", None)
        if isinstance(active, node.ActorMatteNode):
            return active
        raise SetupError("no ActorMatte node given: select one in the compositor")
    tree = (bpy.data.node_groups.get(tree_name) if tree_name
            else node.compositor_tree(context.scene))
    found = tree.nodes.get(node_name) if tree is not None else None
    if not isinstance(found, node.ActorMatteNode):
        raise SetupError(f"no ActorMatte node named {node_name!r} in the compositor")
    return found


def _abspath(path: str, datablock: Any = None) -> str:
    library = getattr(datablock, "library", None)
    return os.path.normpath(bpy.path.abspath(path, library=library))


def plate_of(am: node.ActorMatteNode) -> tuple[str, int | None, str]:
    """The plate for the CLI: (path or pattern, movie start frame, Blender colour space)."""
    if am.source_type == "FILE":
        if not am.filepath:
            raise SetupError("set the plate file pattern (shot.####.exr) or movie")
        return _abspath(am.filepath), None, ""
    data = am.image if am.source_type == "IMAGE" else am.clip
    if data is None:
        raise SetupError(f"choose the source {am.source_type.lower()} of the ActorMatte node")
    if getattr(data, "packed_file", None) is not None:
        raise SetupError(f"{data.name!r} is packed in the blend file; unpack it so the core can "
                         "read its files")
    space = data.colorspace_settings.name
    path = _abspath(data.filepath, data)
    if data.source == "MOVIE":
        return path, (data.frame_start if am.source_type == "CLIP" else None), space
    if data.source != "SEQUENCE":
        raise SetupError(f"{data.name!r} is not an image sequence or movie: set its source to "
                         "Image Sequence or Movie")
    try:
        return cli_client.sequence_pattern(path), None, space
    except ValueError as error:
        raise SetupError(str(error)) from None


def _masks(am: node.ActorMatteNode) -> dict[str, Any]:
    """The keyframe-mask part of the request (ID map, actor masks and detection may mix)."""
    masks: dict[str, Any] = {"detect": "DETECT" in am.masks_mode}
    if "ID_MAP" in am.masks_mode:
        if not am.id_map:
            raise SetupError("set the keyframe ID map (or choose actor masks / detect people)")
        masks["id_map"] = _abspath(am.id_map)
        masks["id_map_frame"] = am.id_map_keyframe if am.id_map_use_keyframe else None
        masks["names"] = tuple(n.strip() for n in am.id_map_names.split(",") if n.strip())
    if "ACTOR_MASKS" in am.masks_mode:
        masks["actor_masks"] = tuple(
            cli_client.ActorMask(m.name, _abspath(m.filepath),
                                 m.keyframe if m.use_keyframe else None)
            for m in am.actor_masks if m.filepath)
        if not masks["actor_masks"]:
            raise SetupError("add at least one actor mask (name and file)")
    if "MASK" in am.masks_mode and am.mask is None:
        raise SetupError("choose the Mask datablock (one layer per actor), or another kind of "
                         "keyframe masks")
    if not masks["detect"] and "id_map" not in masks and "actor_masks" not in masks \
            and "MASK" not in am.masks_mode:
        raise SetupError("choose the keyframe masks: ID map, actor masks, mask or detect people")
    return masks


def plate_first_file(am: node.ActorMatteNode, frame: int | None = None) -> str | None:
    """One file of the plate (``frame``'s, else the sequence's first), or None (no plate)."""
    try:
        plate, _, _ = plate_of(am)
    except SetupError:
        return None
    if frame is None:
        frame = keyframes.sequence_first_frame(plate)
    return cli_client.frame_path(plate, frame) if frame is not None else plate


def plate_size(context: bpy.types.Context, am: node.ActorMatteNode) -> tuple[int, int]:
    """The plate's (width, height) as Blender shows it, else the scene resolution.

    An EXR plate's data window (its header; a layered EXR's Image datablock reports (0, 0) until
    an Image node picks a pass), else the source image's or clip's size.
    """
    first = plate_first_file(am)
    header = exr_header.read_header(first) if first else None
    if header is not None:
        return header.data.width, header.data.height
    data = am.image if am.source_type == "IMAGE" else am.clip if am.source_type == "CLIP" else None
    size = tuple(getattr(data, "size", (0, 0)) or (0, 0))
    if len(size) == 2 and size[0] > 0 and size[1] > 0:
        return int(size[0]), int(size[1])
    render = context.scene.render
    return int(render.resolution_x), int(render.resolution_y)


def mask_keyframes(context: bpy.types.Context, am: node.ActorMatteNode, plate: str) -> list[int]:
    """The node's mask keyframes; empty: the first frame of the range."""
    if am.use_frame_range:
        first, last = am.frame_first, am.frame_last
    else:
        found = keyframes.sequence_first_frame(plate) if am.source_type != "CLIP" else None
        first, last = (found if found is not None else context.scene.frame_start), None
    try:
        return keyframes.parse_keyframes(am.mask_keyframes, first, last)
    except ValueError as error:
        raise SetupError(str(error)) from None


def render_masks(context: bpy.types.Context, am: node.ActorMatteNode, plate: str,
                 out: str) -> tuple[str, ...]:
    """Render the node's Mask at its keyframes into ``<out>/masks`` (``--mask-layers`` items)."""
    if "MASK" not in am.masks_mode or am.mask is None:
        return ()
    frames = mask_keyframes(context, am, plate)
    stem = f"{bpy.path.clean_name(am.name)}_masks"
    try:
        return tuple(mask_render.render_keyframes(am.mask, os.path.join(out, "masks"), stem,
                                                  frames, plate_size(context, am)))
    except ValueError as error:
        raise SetupError(str(error)) from None


def cache_dir(am: node.ActorMatteNode) -> str:
    """The node's cache folder as an absolute path."""
    folder = node.resolved_cache_dir(am)
    if folder.startswith("//") and not bpy.data.filepath:
        raise SetupError("save the blend file first (the cache defaults to //actormatte/ next to "
                         "it) or set an absolute cache folder")
    return _abspath(folder)


def build_request(context: bpy.types.Context, am: node.ActorMatteNode,
                  overwrite: bool) -> cli_client.RunRequest:
    """Map the node's properties to a CLI request."""
    plate, start_frame, space = plate_of(am)
    chosen = am.input_colorspace or colorspace.ocio_name(space, os.environ)
    frames = (am.frame_first, am.frame_last) if am.use_frame_range else None
    masks = _masks(am)
    out = cache_dir(am)
    return cli_client.RunRequest(
        plate=plate, out=out, frames=frames, start_frame=start_frame, size=am.size,
        xmem_size=am.xmem_size, device=am.device, input_colorspace=chosen,
        models=preferences.models_dir(context), overwrite=overwrite, preview=am.make_preview,
        mask_layers=render_masks(context, am, plate, out), **masks)


def start_session(context: bpy.types.Context, am: node.ActorMatteNode,
                  overwrite: bool) -> Session:
    """Start the CLI for a node.

    Raises:
        SetupError: The node is not ready to run or the CLI was not found.
    """
    key = f"{tree_key(am.id_data)}/{am.name}"
    if key in _RUNNING:
        raise SetupError(f"ActorMatte is already running for {am.name!r}")
    try:
        command = cli_client.build_run_command(preferences.cli_command(context),
                                               build_request(context, am, overwrite))
    except (ValueError, locate.CliNotFoundError) as error:
        raise SetupError(str(error)) from None
    out = command[command.index("--out") + 1]
    os.makedirs(out, exist_ok=True)
    job = cli_client.CliJob(command)
    session = Session(tree_key(am.id_data), am.name, out, job)
    _RUNNING[session.key] = session
    am.status = "running"
    return session


def finish(operator: bpy.types.Operator, context: bpy.types.Context, session: Session,
           code: int) -> set[str]:
    """Report the outcome and, on success, rebuild the node on the new mattes."""
    _RUNNING.pop(session.key, None)
    monitor = session.monitor
    am = find_node(context, session.tree_name, session.node_name)
    if code == 0 and monitor.done is not None:
        done = monitor.done
        try:
            node.build_inside(am, done["pattern"], int(done["first"]), int(done["last"]),
                              mask_render.in_mask_order(
                                  am.mask if "MASK" in am.masks_mode else None,
                                  [str(layer) for layer in done["layers"]]),
                              plate_first_file(am, int(done["first"])))
        except (KeyError, TypeError, ValueError) as error:
            am.status = f"ActorMatte could not load the mattes: {error}"
            operator.report({"ERROR"}, am.status)
            return {"CANCELLED"}
        am.status = keyframes.reuse_summary(done)
        flagged = node.store_qc(am, done)
        if flagged:
            am.status += f"; {flagged} flagged frames"
        for warning in monitor.warnings:
            operator.report({"WARNING"}, f"ActorMatte: {warning}")
        operator.report({"INFO"}, f"ActorMatte: {am.status}")
        return {"FINISHED"}
    if session.job.cancelled:
        am.status = (f"cancelled: {monitor.frames_written} new frames kept in {session.out}")
        operator.report({"WARNING"}, f"ActorMatte {am.status}")
        return {"CANCELLED"}
    am.status = cli_client.failure_message(code, monitor, session.job.stderr_tail)
    operator.report({"ERROR"}, am.status)
    return {"CANCELLED"}


def run_blocking(session: Session) -> int:
    """Follow a job to its end on this thread, printing progress (background mode)."""
    last = ""
    print(f"ActorMatte: started the core CLI (pid {session.job.pid}): "
          + " ".join(session.job.command), flush=True)
    try:
        while not session.job.stdout_closed:
            session.pump(timeout=0.5)
            if session.monitor.status != last:
                last = session.monitor.status
                print(f"{last} [{session.monitor.fraction:.0%}]", flush=True)
        return session.job.wait()
    except KeyboardInterrupt:
        print("ActorMatte: interrupted, stopping the CLI", flush=True)
        return session.job.cancel()


class ACTORMATTE_OT_run(bpy.types.Operator):
    """Compute the node's mattes with the ActorMatte core (reuses frames already in the cache)."""

    bl_idname = "actormatte.run"
    bl_label = "Run ActorMatte"
    bl_options = {"REGISTER"}

    tree_name: StringProperty(options={"SKIP_SAVE"},
                              description="Node group of the node (empty: the scene's compositor)")
    node_name: StringProperty(options={"SKIP_SAVE"}, description="Node (empty: the active node)")
    overwrite: BoolProperty(name="Recompute", options={"SKIP_SAVE"},
                            description="Recompute frames already in the cache")

    _session: Session | None = None
    _timer: Any = None

    def _start(self, context: bpy.types.Context) -> Session | None:
        try:
            am = find_node(context, self.tree_name, self.node_name)
            return start_session(context, am, self.overwrite)
        except SetupError as error:
            self.report({"ERROR"}, f"ActorMatte: {error}")
            return None

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Run to the end on this thread (background mode, scripts)."""
        session = self._start(context)
        if session is None:
            return {"CANCELLED"}
        return finish(self, context, session, run_blocking(session))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Start the CLI and follow it from a modal timer (interactive sessions)."""
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._session = self._start(context)
        if self._session is None:
            return {"CANCELLED"}
        wm = context.window_manager
        wm.progress_begin(0, 100)
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Drain the queue on each timer tick; Esc (or the Cancel button) stops the CLI."""
        session = self._session
        assert session is not None
        if event.type == "ESC" and event.value == "PRESS":
            session.cancel_requested = True
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        if session.cancel_requested:
            session.job.request_stop()
            session.job.kill_if_overdue()
        session.pump()
        context.window_manager.progress_update(int(100 * session.monitor.fraction))
        if context.workspace is not None:
            text = session.monitor.status + (" (cancelling)" if session.job.cancelled else
                                             " (Esc to cancel)")
            context.workspace.status_text_set(text)
        code = session.job.poll()
        if code is None:
            return {"RUNNING_MODAL"}
        self._stop_ui(context)
        return finish(self, context, session, code)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the modal (file load, quit): stop the CLI."""
        if self._session is not None:
            _RUNNING.pop(self._session.key, None)
            self._session.job.cancel()
        self._stop_ui(context)

    def _stop_ui(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)


class ACTORMATTE_OT_cancel(bpy.types.Operator):
    """Stop the running ActorMatte job of the node (frames already written stay in the cache)."""

    bl_idname = "actormatte.cancel"
    bl_label = "Cancel ActorMatte"

    tree_name: StringProperty(options={"SKIP_SAVE"})
    node_name: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Flag the job; the Run operator's timer stops the CLI on its next tick."""
        session = _RUNNING.get(f"{self.tree_name}/{self.node_name}")
        if session is None:
            self.report({"WARNING"}, "ActorMatte: nothing is running for this node")
            return {"CANCELLED"}
        session.cancel_requested = True
        return {"FINISHED"}


def running(am: node.ActorMatteNode) -> bool:
    """Whether a job is running for this node."""
    return f"{tree_key(am.id_data)}/{am.name}" in _RUNNING


def stop_all() -> None:
    """Stop every running CLI (the add-on is being disabled)."""
    for session in list(_RUNNING.values()):
        session.job.cancel()
    _RUNNING.clear()


CLASSES = (ACTORMATTE_OT_run, ACTORMATTE_OT_cancel)
