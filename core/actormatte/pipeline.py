"""The shot pipeline: the only module that knows the whole order (read, propagate, matte, write).

Called by the CLI (``actormatte run|propagate|matte``) and by anything that drives ActorMatte from
Python. Each entry point takes a frozen options dataclass, a progress callback and a cancel token:

- :func:`propagate`: XMem over the shot into a work folder (resumable; farm step 1);
- :func:`matte`: mattes for a frame range from a work folder (chunkable; farm step 2);
- :func:`run`: both, with the work folder under ``<out>/.actormatte/<name>`` by default.

Every cheap check (plate, frame range, colour space, masks, names, output and work folders,
weights files, device) runs before a network is loaded or a file is written; then every frame's
header and end are checked without decoding it (the ``read`` stage), so a bad or truncated file
fails with exit code 2 before any output exists. :func:`run` is one streaming pass: each frame is
decoded and colour-converted once (read ahead in worker threads), feeds XMem, and each matte
window runs as soon as the ID maps it needs exist; EXRs are written behind the compute. A frame
that still fails to decode mid-run exits 2 naming it, leaving complete frames only. Optional
``events`` receive the protocol's ``start`` and ``frame`` events.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from actormatte import __version__
from actormatte.config import (
    ExportConfig,
    MaskConfig,
    MatteConfig,
    PropagateConfig,
    ReadConfig,
    resolve_device,
)
from actormatte.errors import InputError
from actormatte.export import check_output_collision, make_layer_names
from actormatte.export.comp import make_writer
from actormatte.jobs import Job, WorkFolder, check_folder_writable
from actormatte.locks import check_work_unlocked, lock_output, lock_work, releases_locks
from actormatte.mask_memo import MaskMemo
from actormatte.masks import KeyframeSet
from actormatte.matte import MatteOutputs, MatteStage, MatteStream
from actormatte.matting.guided import refine_stream
from actormatte.matting.resample import plan_for_shot
from actormatte.pipeline_options import (
    MatteOptions,
    PropagateOptions,
    PropagateResult,
    RunOptions,
    RunResult,
)
from actormatte.progress import CancelToken, ProgressCallback, ProgressEvent, ignore_progress
from actormatte.propagate import make_job, plan_passes, run_propagation, work_state
from actormatte.propagation import load_xmem
from actormatte.shot import Shot, check_frames, load_shot_keyframes, open_shot, weights_sha256
from actormatte.threads import check_output_threads, current_threads
from actormatte.weights import model_path, resolve_models_dir

logger = logging.getLogger(__name__)

#: ``events(name, fields)`` receives the protocol's ``start`` and ``frame`` events.
EventCallback = Callable[[str, dict[str, Any]], None]
#: The masks options; an alias kept for callers that think in CLI terms.
MaskOptions = MaskConfig


def _no_events(name: str, fields: dict[str, Any]) -> None:
    """An event callback that drops everything."""


@releases_locks
def propagate(options: PropagateOptions, *, progress: ProgressCallback = ignore_progress,
              cancel: CancelToken | None = None,
              events: EventCallback = _no_events) -> PropagateResult:
    """Propagate the keyframe masks over the shot into ``options.work`` (resumable).

    Raises:
        InputError: Bad plate, masks, flags or folders (nothing written).
        WeightsError: Missing or wrong XMem weights (nothing written).
        CancelledError: ``cancel`` was set; the checkpoint lets a re-run resume.
    """
    cancel = cancel or CancelToken()
    device = resolve_device(options.device)
    models = resolve_models_dir(options.models)
    xmem_path = model_path(models, "xmem")
    work = WorkFolder(options.work)
    work.check_writable()
    shot = open_shot(options.plate, options.frames, options.read)
    keyframes = load_shot_keyframes(shot, options.masks, models, device)
    layers = make_layer_names([actor.name for actor in keyframes.actors])
    job = make_job(shot, keyframes, options.propagate, weights_sha256(models, "xmem", xmem_path))
    lock_work(work.root, "propagate")
    state = work_state(work, job, options.overwrite)
    events("start", _start_fields("propagate", shot, job, layers, work))
    network = None
    if state != "complete":
        check_frames(shot, shot.first, shot.last, progress, cancel)
        network = load_xmem(xmem_path, device=device)
    done = resumed = 0
    steps = run_propagation(shot, keyframes, job, work, network, options.propagate, device, state,
                            cancel=cancel)
    del network
    order = _propagation_order(keyframes, shot, options.propagate.backfill)
    with shot.streaming(order, resume_hint=_resume("propagate")):
        for frame, was_resumed in steps:
            done += 1
            resumed += was_resumed
            progress(ProgressEvent("propagate", done, shot.num_frames, frame))
            cancel.check()
    return PropagateResult(str(work.root), shot.first, shot.last, done - resumed, resumed)


@releases_locks
def matte(options: MatteOptions, *, progress: ProgressCallback = ignore_progress,
          cancel: CancelToken | None = None, events: EventCallback = _no_events) -> RunResult:
    """Matte ``options.frames`` from a propagated work folder and write the EXRs.

    Raises:
        InputError: Bad work folder, frames or output (nothing written).
        WeightsError: Missing or wrong MaGGIe weights (nothing written).
        CancelledError: ``cancel`` was set; finished frames stay on disk.
    """
    cancel = cancel or CancelToken()
    device = resolve_device(options.device)
    models = resolve_models_dir(options.models)
    work = WorkFolder(options.work)
    job = work.read_job()
    if not job.complete:
        raise InputError(f"--work {work.root}: the propagation is not complete; run (or resume) "
                         "`actormatte propagate` with the same options first")
    first, last = options.frames or (job.first, job.last)
    if first < job.first or last > job.last:
        raise InputError(f"--frames {first}-{last} is outside the propagated range "
                         f"{job.first}-{job.last} of --work {work.root}; pass --frames within it")
    shot = open_shot(job.plate, (job.first, job.last), ReadConfig(start_frame=job.start_frame),
                     colorspace=job.input_colorspace)
    if (shot.plate.width, shot.plate.height) != (job.width, job.height):
        raise InputError(f"the plate {job.plate} is now {shot.plate.width}x{shot.plate.height}, "
                         f"it was {job.width}x{job.height} when propagated; propagate again")
    stage, weights = _matte_stage(shot, job, work, options.out, options.matte, options.export,
                                  models, device)
    lock_output(stage.writer.out_dir, stage.writer.name, (first, last), "matte")
    check_work_unlocked(work.root)
    check_output_threads(stage.writer.out_dir, stage.writer.name, job.threads, device)
    events("start", {**_start_fields("matte", shot, job, list(stage.writer.layers), work,
                                     (first, last)), **_output_fields(stage)})
    todo, skipped = stage.split(first, last, options.export.overwrite)
    window_frames = stage.frames_read(todo)
    if window_frames is not None:
        check_frames(shot, *window_frames, progress, cancel)
        stage.load_networks(weights)
    stream = MatteStream(stage, todo, masks_on_disk=True)
    with shot.streaming(stage.read_order(todo), stream.needs, _resume("matte")):
        return _write(stage, stream, (first, last), todo, skipped, progress, cancel, events)


@releases_locks
def run(options: RunOptions, *, progress: ProgressCallback = ignore_progress,
        cancel: CancelToken | None = None, events: EventCallback = _no_events) -> RunResult:
    """The whole shot: propagate, matte and write.

    Raises:
        InputError: Bad plate, masks, flags or folders (nothing written).
        WeightsError: Missing or wrong weights (nothing written).
        CancelledError: ``cancel`` was set; finished frames stay on disk.
    """
    cancel = cancel or CancelToken()
    device = resolve_device(options.device)
    models = resolve_models_dir(options.models)
    xmem_path = model_path(models, "xmem")
    out = Path(options.out).expanduser().absolute()
    check_folder_writable(out, "--out")
    shot = open_shot(options.plate, options.frames, options.read)
    name = options.export.name or shot.default_name()
    work = MaskMemo(options.work or out / ".actormatte" / name)
    work.check_writable()
    keyframes = load_shot_keyframes(shot, options.masks, models, device)
    job = make_job(shot, keyframes, options.propagate, weights_sha256(models, "xmem", xmem_path))
    stage, weights = _matte_stage(shot, job, work, str(out), options.matte, options.export,
                                  models, device)
    lock_work(work.root, "run")
    lock_output(stage.writer.out_dir, stage.writer.name, (shot.first, shot.last), "run")
    state = work_state(work, job, options.export.overwrite)
    events("start", {**_start_fields("run", shot, job, list(stage.writer.layers), work),
                     **_output_fields(stage)})
    tally = [0, 0]  # ID maps propagated, reused (the done event's counts)
    propagated_first = state in ("correct", "resume")
    if propagated_first:
        state = _propagate_first(shot, keyframes, job, work, xmem_path, options.propagate, device,
                                 state, progress, cancel, tally)
    todo, skipped = stage.split(shot.first, shot.last, options.export.overwrite)
    if state != "complete":
        check_frames(shot, shot.first, shot.last, progress, cancel)
    elif (span := stage.frames_read(todo)) is not None:
        check_frames(shot, span[0], span[1], progress, cancel)
    network = load_xmem(xmem_path, device=device) if state != "complete" else None
    if todo:
        stage.load_networks(weights)
    # One pass: each frame is decoded once for XMem and the windows that read it; a window runs
    # as soon as its ID maps exist (they are kept in memory for it, see MaskMemo).
    stream = MatteStream(stage, todo, masks_on_disk=state == "complete")
    work.keep = stream.needs
    steps = run_propagation(shot, keyframes, job, work, network, options.propagate, device, state,
                            cancel=cancel)
    del network  # the propagation generator holds it until it is exhausted
    if not propagated_first:
        steps = _counted(steps, tally)
    order = (_propagation_order(keyframes, shot, options.propagate.backfill)
             if state != "complete"
             else stage.read_order(todo))
    try:
        with shot.streaming(order, stream.needs, _resume("run")):
            result = _write(stage, stream, (shot.first, shot.last), todo, skipped, progress,
                            cancel, events, steps)
        work.flush()  # the ID maps written behind (raises a failed write)
    finally:
        work.close()
    return dataclasses.replace(result, frames_propagated=tally[0], frames_resumed=tally[1])


def _propagate_first(shot: Shot, keyframes: KeyframeSet, job: Job, work: MaskMemo,
                     xmem_path: Path, config: PropagateConfig, device: str, state: str,
                     progress: ProgressCallback, cancel: CancelToken, tally: list[int]) -> str:
    """Re-propagate before the matte split when ID maps under existing EXRs may change.

    A correction (other keyframes) or a resumed propagation rewrites ID maps that the EXRs'
    provenance keys were computed from; the split must see the new maps, or changed frames
    would be reused (and new frames keyed on old maps). No streaming overlap in this case.
    ``tally`` (``[propagated, reused]`` ID-map counts) is incremented.

    Returns:
        ``complete``: the state the rest of :func:`run` continues with.
    """
    check_frames(shot, shot.first, shot.last, progress, cancel)
    network = load_xmem(xmem_path, device=device)
    steps = run_propagation(shot, keyframes, job, work, network, config, device, state,
                            cancel=cancel)
    del network  # the generator holds it until exhausted
    order = _propagation_order(keyframes, shot, config.backfill)
    try:
        with shot.streaming(order, resume_hint=_resume("run")):
            for done, (frame, reused) in enumerate(steps, 1):
                tally[int(reused)] += 1
                progress(ProgressEvent("propagate", done, shot.num_frames, frame))
                cancel.check()
        work.flush()
    finally:
        work.close()
    return "complete"


def _counted(steps: Iterator[tuple[int, bool]], tally: list[int]
             ) -> Iterator[tuple[int, bool]]:
    """``steps`` unchanged, counting ``[propagated, reused]`` into ``tally``."""
    for frame, reused in steps:
        tally[int(reused)] += 1
        yield frame, reused


def _matte_stage(shot: Shot, job: Job, work: WorkFolder, out: str, config: MatteConfig,
                 export: ExportConfig, models: Path, device: str) -> tuple[MatteStage, Path]:
    """Check names, output folder and MaGGIe weights; build the stage (nothing written)."""
    layers = make_layer_names([actor.name for actor in job.actors])
    name = export.name or shot.default_name()
    out_dir = Path(out).expanduser().absolute()
    check_folder_writable(out_dir, "--out")
    check_output_collision(out_dir, name, shot.plate)
    stage_model = "maggie-image" if job.first == job.last else "maggie-video"
    weights = model_path(models, stage_model)
    instances = {layer: {"name": actor.name, "id": actor.id, "keyframe": actor.keyframe}
                 for layer, actor in zip(layers, job.actors, strict=True)}
    resized = plan_for_shot(shot, job, config).resized_hw  # the real MaGGIe size (pixel aspect)
    metadata = {
        "instances": json.dumps(instances),
        "matting_model": stage_model,
        "matting_sha256": weights_sha256(models, stage_model, weights),
        "propagation_model": "xmem",
        "propagation_sha256": job.xmem_sha256,
        "input_colorspace": job.input_colorspace,
        "plate": job.plate,
        "schedule": config.schedule,
        "window_size": str(config.window if config.schedule == "window5" else 3),
        "window_stride": str(config.stride if config.schedule == "window5" else 1),
        "processing_size": f"{resized[1]}x{resized[0]}",
        "propagation_size": str(job.xmem_size),
        "software": f"actormatte {__version__}",
        "threads": str(current_threads()),
    }
    writer = make_writer(export, shot.plate, out_dir, name, layers, job.width, job.height,
                         padding=shot.padding(),
                         half=export.half, metadata=metadata, geometry=shot.plate.geometry,
                         plate_attributes=shot.plate.carried_attributes)
    return MatteStage(shot, job, work, writer, config, device), weights


def _write(stage: MatteStage, stream: MatteStream, span: tuple[int, int], todo: list[int],
           skipped: list[int], progress: ProgressCallback, cancel: CancelToken,
           events: EventCallback, steps: Iterator[tuple[int, bool]] | None = None) -> RunResult:
    """Report skipped frames, then matte ``todo`` as ``steps`` (propagation) make it ready.

    The EXRs are written behind the compute; whatever ends the loop (an error, a cancel), the
    writes in flight finish first, so only complete frames are left.
    """
    outputs = MatteOutputs(stage, span[1] - span[0] + 1, progress, events)
    outputs.skip(skipped)
    if todo:
        stage.writer.check_writable()
        stage.writer.cleanup_stale_temps()
    try:
        for done, (frame, _) in enumerate(steps or (), 1):
            progress(ProgressEvent("propagate", done, stage.source.num_frames, frame))
            stream.mask_ready(frame)
            outputs.add(refine_stream(stream.ready(), stage), cancel)
            cancel.check()
        outputs.add(refine_stream(stream.ready(), stage), cancel)
        outputs.finish()
    finally:
        outputs.close()
    return RunResult(outputs.written, len(skipped), str(stage.writer.out_dir),
                     stage.writer.pattern, span[0], span[1], list(stage.writer.layers),
                     str(stage.work.root))


def _propagation_order(keyframes: KeyframeSet, shot: Shot, backfill: bool = True) -> list[int]:
    """The frames XMem reads, in its order (for the read-ahead)."""
    return [frame for step in plan_passes(keyframes, shot.first, shot.last, backfill)
            for frame in step.order]


def _resume(command: str) -> str:
    return (f"; frames finished so far are kept: fix that frame, then run the same `actormatte "
            f"{command}` command again to resume")


def _start_fields(command: str, shot: Shot, job: Job, layers: list[str], work: WorkFolder,
                  frames: tuple[int, int] | None = None) -> dict[str, Any]:
    actors = [{"layer": layer, "name": actor.name, "id": actor.id, "keyframe": actor.keyframe}
              for layer, actor in zip(layers, job.actors, strict=True)]
    return {"command": command, "version": __version__, "plate": job.plate,
            "frames": list(frames or (job.first, job.last)), "actors": actors,
            "work": str(work.root), "input_colorspace": job.input_colorspace,
            "input_colorspace_reason": shot.colorspace_reason}


def _output_fields(stage: MatteStage) -> dict[str, Any]:
    return {"out": str(stage.writer.out_dir), "pattern": stage.writer.pattern}
