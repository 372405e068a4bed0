"""ActorMatte for Nuke: what the gizmo's buttons and callbacks call.

Public API (main thread; ``node`` defaults to ``nuke.thisNode()``):
- :func:`run` starts ``actormatte run`` for the node (GUI: worker thread + ProgressTask;
  ``nuke -t``: blocks, prints progress and raises :class:`ActorMatteNukeError` on failure);
- :func:`cancel` stops the node's running job; :func:`reload` re-reads the cached EXRs;
- :func:`add_keyframe` adds the current frame to the mask keyframes of the ``masks`` input;
- :func:`goto_flag` jumps to a QC-flagged frame, :func:`view_preview` reads the preview;
- :func:`on_create` (the gizmo's ``onCreate``) rebuilds the layer chain from the saved knobs.
Importing this package needs only Nuke's Python (stdlib): it never imports the core.
"""

from __future__ import annotations

from typing import Any

import nuke

from . import cli_client, knobs, masks, node, progress, qc

__all__ = ["ActorMatteNukeError", "add_keyframe", "cancel", "goto_flag", "jobs", "on_create",
           "reload", "run", "view_preview"]

jobs: dict[str, progress.Job] = {}
"""Running or last jobs by node full name."""


class ActorMatteNukeError(RuntimeError):
    """A job could not start or failed (raised in ``nuke -t``; shown in a dialog in the GUI)."""


def _this(target: Any) -> Any:
    return target if target is not None else nuke.thisNode()


def _fail(target: Any, message: str) -> None:
    text = f"ActorMatte: {message}"
    if target is not None and target.knob("status") is not None:
        target["status"].setValue(f"failed: {message.splitlines()[0][:120]}")
    if nuke.env.get("gui"):
        nuke.message(text)
    else:
        raise ActorMatteNukeError(text)


def run(target: Any = None) -> progress.Job | None:
    """Compute the node's mattes with the core CLI; returns the job (None when it did not start)."""
    target = _this(target)
    name = target.fullName()
    if name in jobs and jobs[name].running:
        _fail(target, "a job is already running for this node; Cancel it first")
        return None
    try:
        if target.input(0) is None:
            raise knobs.SettingsError("connect the plate to the ActorMatte node's input")
        cli = cli_client.find_cli(target["core_cli"].value())
        settings, prerender = node.read_settings(target)   # may pre-render the input
        argv = [cli, *knobs.build_run_args(settings)]
    except (knobs.SettingsError, cli_client.CliNotFoundError, RuntimeError) as exc:
        _fail(target, str(exc))
        return None
    gui = bool(nuke.env.get("gui"))
    job = progress.Job(argv, name, gui, lambda result: _finish(result, prerender))
    jobs[name] = job
    target["status"].setValue(f"running frames {settings.first}-{settings.last} ...")
    if gui:
        job.start()
    else:
        job.run()
    return job


def _finish(result: progress.JobResult, prerender: str | None) -> None:
    """Main thread: load the result into the node (looked up by name: it may be gone)."""
    target = nuke.toNode(result.node_name)
    if target is None:
        return
    if result.ok and result.done is not None:
        done = result.done
        node.set_cached(target, done["pattern"], int(done["first"]), int(done["last"]),
                        list(done.get("layers") or []), list(done.get("colour_layers") or []))
        problems = [p for p in (node.layer_problem(x) for x in done.get("layers") or []) if p]
        problems += [p for p in [node.geometry_problem(target)] if p]
        status = (f"{len(done.get('layers') or [])} actor(s), frames {done['first']}-"
                  f"{done['last']} ({knobs.reuse_summary(done)})")
        flagged = qc.set_results(target, done)
        if flagged:
            status += f"; {flagged} flagged frame(s): see 'flagged frames'"
        target["status"].setValue("; ".join([status, *problems, *result.warnings[:3]]))
        node.remove_prerender(prerender)
    elif result.cancelled:
        target["status"].setValue(result.message)
    else:
        _fail(target, result.message)


def add_keyframe(target: Any = None) -> list[int]:
    """The '+ this frame' button: add the current frame to the node's mask keyframes."""
    return masks.add_keyframe(_this(target))


def goto_flag(target: Any = None) -> int | None:
    """The 'go to' button: move the viewer to the selected flagged frame."""
    return qc.goto_flag(_this(target))


def view_preview(target: Any = None) -> Any:
    """The 'view preview' button: a Read of the preview overlays next to the node."""
    target = _this(target)
    try:
        return qc.view_preview(target)
    except knobs.SettingsError as exc:
        _fail(target, str(exc))
        return None


def cancel(target: Any = None) -> bool:
    """Stop the node's running job; returns whether one was running."""
    job = jobs.get(_this(target).fullName())
    if job is None or not job.running:
        return False
    job.cancel()
    return True


def reload(target: Any = None) -> str:
    """Re-read the cached EXRs and rebuild the layers; returns a status line."""
    target = _this(target)
    try:
        status = node.reload(target)
    except knobs.SettingsError as exc:
        status = str(exc)
    target["status"].setValue(status)
    return status


def on_create(target: Any = None) -> None:
    """``onCreate``: rebuild the layer chain from the saved knobs; never breaks script loading."""
    target = _this(target)
    try:
        node.rebuild(target)
        qc.refresh(target)
    except Exception as exc:  # noqa: BLE001 - a broken node must not stop the script loading
        print(f"ActorMatte: cannot rebuild {target.fullName()}: {exc}")
