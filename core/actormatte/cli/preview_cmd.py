"""``actormatte preview``, and the preview/QC step that ``run`` adds after its mattes.

``preview --out DIR`` reads the matte sequence in DIR (the plate and actors come from the EXR
metadata) and writes ``DIR/preview/<name>/``: overlay PNGs, an H.264 MP4, a contact sheet and
``qc.json`` (:mod:`actormatte.preview`). ``run`` always writes ``qc.json`` and puts its flags in
the ``done`` event; ``run --preview`` also writes the pictures.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from actormatte.cli import options as opts
from actormatte.config import ReadConfig
from actormatte.errors import EXIT_OK, InputError
from actormatte.jobs import WorkFolder
from actormatte.preview import (
    MatteSequence,
    PreviewOptions,
    PreviewResult,
    cached_qc_fields,
    done_fields,
    find_sequence,
    make_preview,
    shot_qc,
)
from actormatte.progress import ProgressEvent
from actormatte.shot import open_shot

PREVIEW_FOLDER = "preview"


def add_parser(subparsers: Any) -> None:
    """Register ``preview``."""
    parser = subparsers.add_parser(
        "preview", help="overlay pictures, an H.264 movie, a contact sheet and qc.json",
        description="Write <out>/preview/<name>/: the plate with each actor's matte as a colour "
                    "overlay (PNG per frame and an H.264 MP4), a contact sheet of evenly spaced "
                    "frames, and qc.json (area, temporal change, propagation confidence, flags).")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the folder of the mattes (the --out of run/matte)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="the matte sequence <out>/<NAME>.<frame>.exr (default: the only one)")
    opts.add_frames(parser)
    parser.add_argument("--plate", default=None, metavar="PLATE",
                        help="the plate (default: the one recorded in the mattes' metadata)")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="work folder with the propagated ID maps "
                             "(default <out>/.actormatte/<NAME>)")
    parser.add_argument("--input-colorspace", default=None, metavar="NAME",
                        help="plate colour space (default: the one recorded in the mattes)")
    parser.add_argument("--start-frame", type=int, default=None, metavar="N",
                        help="frame number of a movie's first frame (default: from job.json)")
    parser.add_argument("--qc-only", action="store_true",
                        help="write only qc.json, reading only mattes changed since they were "
                             "last measured (the farm job's last task)")
    add_preview_options(parser)
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false",
                        help=argparse.SUPPRESS)
    parser.set_defaults(handler=handle)


def add_preview_options(parser: argparse.ArgumentParser) -> None:
    """``--fps`` and ``--contact-frames`` (``preview`` and ``run --preview``)."""
    parser.add_argument("--fps", type=float, default=24.0, metavar="F",
                        help="preview movie frame rate (default 24)")
    parser.add_argument("--contact-frames", type=int, default=8, metavar="N",
                        help="frames on the contact sheet (default 8)")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``run --preview`` (plus the preview knobs)."""
    parser.add_argument("--preview", action="store_true",
                        help="also write overlay pictures, an H.264 MP4 and a contact sheet "
                             "into <out>/preview/<name>/ (qc.json is always written)")
    add_preview_options(parser)


def _options(args: argparse.Namespace, pictures: bool) -> PreviewOptions:
    if args.contact_frames < 1 or args.fps <= 0:
        raise InputError("--contact-frames must be 1 or more and --fps above 0")
    return PreviewOptions(pictures=pictures, fps=args.fps, contact=args.contact_frames)


def _work(out: Path, name: str, work: str | None) -> Path:
    return Path(work).expanduser().absolute() if work else out / ".actormatte" / name


def preview(sequence: MatteSequence, frames: list[int], work: Path, options: PreviewOptions,
            reporter: Any, plate: str | None = None, colorspace: str | None = None,
            start_frame: int | None = None) -> PreviewResult:
    """Open the plate (when pictures are wanted) and write the preview of ``frames``."""
    read_plate = None
    if options.pictures:
        plate = plate or sequence.plate
        if not plate:
            raise InputError(f"{sequence.path(frames[0])} does not record its plate; pass "
                             "--plate")
        if start_frame is None:
            folder = WorkFolder(work)
            start_frame = folder.read_job().start_frame if folder.job_path.is_file() else 1
        shot = open_shot(plate, (frames[0], frames[-1]), ReadConfig(start_frame=start_frame),
                         colorspace=colorspace or sequence.colorspace)
        read_plate = shot.read_uint8

    def progress(done: int, total: int, frame: int) -> None:
        reporter.progress(ProgressEvent("preview", done, total, frame))

    dest = sequence.folder / PREVIEW_FOLDER / sequence.name
    return make_preview(sequence, frames, dest, read_plate, work, options, progress)


def handle(args: argparse.Namespace) -> int:
    """Write the preview and report ``done`` with the files and the QC flags."""
    out = Path(args.out).expanduser().absolute()
    sequence = find_sequence(out, args.name)
    first, last = opts.frames_from_args(args) or (sequence.frames[0], sequence.frames[-1])
    frames = [f for f in sequence.frames if first <= f <= last]
    if not frames:
        raise InputError(f"--frames {first}-{last}: no mattes of {sequence.name} there "
                         f"(they cover {sequence.frames[0]}-{sequence.frames[-1]})")
    result = preview(sequence, frames, _work(out, sequence.name, args.work),
                     _options(args, not args.qc_only), args.reporter, args.plate,
                     args.input_colorspace, args.start_frame)
    args.reporter.emit("done", command="preview", out=str(out), name=sequence.name,
                       first=frames[0], last=frames[-1], **done_fields(result))
    return EXIT_OK


def after_run(args: argparse.Namespace, result: Any) -> dict[str, Any]:
    """``run``'s QC (always) and pictures (``--preview``); the ``done`` event's extra fields."""
    sequence, frames = _result_frames(result)
    options = _options(args, bool(getattr(args, "preview", False)))
    return _shot_qc(args, sequence, frames, Path(result.work), options)


def after_matte(args: argparse.Namespace, result: Any) -> dict[str, Any]:
    """``matte``'s QC: the ``done`` event's extra fields.

    Matting the whole propagated range writes ``qc.json`` as ``run`` does. A chunk
    (``--frames`` inside the range, e.g. a farm task) records its frames' figures only
    (:mod:`actormatte.qc_records`): ``qc.json`` needs the whole shot, so the farm job's last
    task (``preview --qc-only``) assembles it, reading only frames whose record is stale.
    """
    sequence, frames = _result_frames(result)
    work = Path(result.work)
    job = WorkFolder(work).read_job()
    if (result.first, result.last) == (job.first, job.last):
        return _shot_qc(args, sequence, frames, work, PreviewOptions(pictures=False))
    _, measured = shot_qc(sequence, frames, sequence.folder / PREVIEW_FOLDER / sequence.name,
                          work, PreviewOptions().qc)
    return {"qc": None, "qc_frames_recorded": len(frames), "qc_frames_measured": measured}


def _result_frames(result: Any) -> tuple[MatteSequence, list[int]]:
    """The matte sequence a ``run``/``matte`` result wrote, and its frames in the result's range."""
    name = re.sub(r"\.#+\.exr$", "", Path(result.pattern).name)
    sequence = find_sequence(Path(result.out), name)
    return sequence, [f for f in sequence.frames if result.first <= f <= result.last]


def _shot_qc(args: argparse.Namespace, sequence: MatteSequence, frames: list[int], work: Path,
             options: PreviewOptions) -> dict[str, Any]:
    """``qc.json`` (and the pictures when asked) of ``frames``; the ``done`` event's fields."""
    if not options.pictures:  # nothing changed since the last QC: reuse it
        inputs = [sequence.path(f) for f in frames] + [work / "masks" / f"{f:04d}.png"
                                                       for f in frames]
        qc_path = sequence.folder / PREVIEW_FOLDER / sequence.name / "qc.json"
        cached = cached_qc_fields(qc_path, frames, inputs)
        if cached is not None:
            return cached
    outcome = preview(sequence, frames, work, options, args.reporter,
                      getattr(args, "plate", None), getattr(args, "input_colorspace", None),
                      getattr(args, "start_frame", None))
    return done_fields(outcome)
