"""``actormatte farm``: write render-farm job descriptions for a shot (docs/FARM.md).

Registered by :mod:`actormatte.cli.main`. Opens the plate (to learn the frame range and check it),
checks the mask files, then writes Open Job Description, OpenCue and/or Deadline job descriptions
under ``--job-dir`` with :func:`actormatte.farm.write_jobs`. Nothing is submitted and no network
is loaded. The ``propagate``/``matte`` flags are passed through to the farm tasks.

Events: one ``done`` with the files written per engine; stderr gets a summary.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from actormatte.cli import options as opts
from actormatte.errors import EXIT_OK, InputError
from actormatte.farm import ENGINES, EngineSettings, FarmJob, MaskArg, split_range, write_jobs
from actormatte.masks import parse_actor_mask_arg, parse_mask_arg
from actormatte.shot import open_shot
from actormatte.threads import FARM_THREADS
from actormatte.weights import resolve_models_dir

logger = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    """Register ``farm``."""
    parser = subparsers.add_parser(
        "farm", help="write farm job descriptions (OpenJD, OpenCue, Deadline) for a shot",
        description="Write job descriptions that propagate the shot once (one resumable task) "
                    "and matte it in chunks of frames on a render farm. Outputs equal a "
                    "one-machine `actormatte run`. Nothing is submitted.")
    opts.add_plate(parser)
    parser.add_argument("--work", required=True, metavar="DIR",
                        help="work folder every farm node sees (propagated masks, checkpoint)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--job-dir", required=True, metavar="DIR",
                        help="folder for the job descriptions")
    parser.add_argument("--engine", choices=(*ENGINES, "all"), default="all",
                        help="which engine's job description to write (default all)")
    parser.add_argument("--chunk", type=int, default=10, metavar="N",
                        help="frames per matte task (default 10)")
    parser.add_argument("--verify", action="store_true",
                        help="add a task that checks every frame and redoes missing ones")
    parser.add_argument("--preview", action="store_true",
                        help="the last task (qc.json of the shot) also writes the preview "
                             "pictures: overlay PNGs, an H.264 MP4, a contact sheet")
    parser.add_argument("--actormatte", metavar="PATH", default=None,
                        help="the actormatte program as the farm nodes see it (default: the one "
                             "of this venv)")
    parser.add_argument("--priority", type=int, default=50, metavar="N",
                        help="job priority (default 50)")
    parser.add_argument("--show", default="testing", help="OpenCue show (default testing)")
    parser.add_argument("--shot", default=None, help="OpenCue shot (default: the job name)")
    parser.add_argument("--pool", default=None, help="Deadline pool")
    parser.add_argument("--group", default=None, help="Deadline group")
    opts.add_masks(parser)
    opts.add_common(parser)
    opts.add_propagation(parser)
    opts.add_matting(parser)
    opts.add_overwrite(parser, "matte tasks recompute frames that already exist")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Check the shot, write the job descriptions and report ``done``."""
    engines = ENGINES if args.engine == "all" else (args.engine,)
    settings = EngineSettings(show=args.show, shot=args.shot, pool=args.pool, group=args.group)
    reporter = args.reporter
    with opts.WarningEvents(reporter):
        job = farm_job(args)
        if not Path(job.models).is_dir():
            logger.warning("the models folder %s does not exist on this machine; the farm nodes "
                           "must see it (pass --models DIR, the shared folder)", job.models)
        written = write_jobs(job, args.job_dir, engines, settings,
                             skip_unavailable=args.engine == "all")
    chunks = split_range(job.first, job.last, job.chunk)
    files = {engine: [str(path) for path in paths] for engine, paths in written.items()}
    reporter.emit("done", command="farm", job_dir=str(Path(args.job_dir).absolute()),
                  files=files, first=job.first, last=job.last, chunks=len(chunks),
                  name=job.name)
    sys.stderr.write(f"actormatte farm: {job.name} frames {job.first}-{job.last}: 1 propagate "
                     f"task, {len(chunks)} matte task(s) of up to {job.chunk} frames, 1 qc task\n")
    for paths in files.values():
        for path in paths:
            sys.stderr.write(f"  wrote {path}\n")
    return EXIT_OK


def farm_job(args: argparse.Namespace) -> FarmJob:
    """The :class:`FarmJob` of the parsed flags (opens the plate; checks the mask files).

    Raises:
        InputError: Bad plate, range, masks, chunk size or program path.
    """
    if args.chunk < 1:
        raise InputError(f"--chunk {args.chunk}: a matte task needs at least one frame; pass "
                         "--chunk 1 or more")
    shot = open_shot(args.plate, opts.frames_from_args(args), opts.read_from_args(args))
    masks = _mask_args(args)
    if getattr(args, "mask_layers", None):  # the job templates do not carry them yet
        raise InputError("farm: --mask-layers is not supported in farm jobs yet; run "
                         "`actormatte propagate` with it, or pass --masks/--actor-mask")
    if not masks and not args.detect:
        raise InputError("no keyframe masks: give --masks PATH[@FRAME], --actor-mask "
                         "NAME=PATH[@FRAME] or --detect")
    name = args.name or shot.default_name()
    return FarmJob(
        name=name, executable=_executable(args.actormatte), plate=shot.plate_path,
        work=_absolute(args.work), out=_absolute(args.out),
        models=_absolute(str(resolve_models_dir(args.models))), first=shot.first,
        last=shot.last, chunk=args.chunk, padding=shot.padding(), masks=tuple(masks),
        propagate_options=tuple(_propagate_options(args)),
        matte_options=tuple(_matte_options(args, name)), overwrite=args.overwrite,
        verify=args.verify, priority=args.priority, preview=args.preview)


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _executable(arg: str | None) -> str:
    """``--actormatte``, else the ``actormatte`` next to this Python, else the one on PATH."""
    if arg:
        return _absolute(arg) if os.sep in arg else arg
    found = (shutil.which("actormatte", path=str(Path(sys.executable).parent))
             or shutil.which("actormatte"))
    if found is None:
        raise InputError("no actormatte program found next to this Python or on PATH; pass "
                         "--actormatte PATH (the program as the farm nodes see it)")
    return _absolute(found)


def _mask_args(args: argparse.Namespace) -> list[MaskArg]:
    """The mask flags with absolute paths (every file must exist)."""
    result = []
    for text in args.masks:
        path, frame = parse_mask_arg(text)
        result.append(MaskArg(_existing(path, f"--masks {text}"), frame))
    for text in args.actor_mask:
        actor, path, frame = parse_actor_mask_arg(text)
        result.append(MaskArg(_existing(path, f"--actor-mask {text}"), frame, actor))
    return result


def _existing(path: Path, flag: str) -> str:
    if not path.expanduser().is_file():
        raise InputError(f"{flag}: {path} is not a file; give an existing mask image")
    return _absolute(str(path))


def _propagate_options(args: argparse.Namespace) -> list[str]:
    """The ``propagate`` flags other than paths and frames."""
    options = ["--device", args.device, "--start-frame", str(args.start_frame),
               "--xmem-size", str(args.xmem_size),
               "--checkpoint-every", str(args.checkpoint_every),
               "--xmem-mem-every", str(args.xmem_mem_every),
               "--xmem-max-mid-term", str(args.xmem_max_mid_term),
               "--xmem-min-mid-term", str(args.xmem_min_mid_term),
               *_threads(args)]
    if args.input_colorspace:
        options += ["--input-colorspace", args.input_colorspace]
    if args.names:
        options += ["--names", args.names]
    if args.detect:
        options += ["--detect", "--detect-window", str(args.detect_window),
                    "--detect-threshold", str(args.detect_threshold),
                    "--detect-max", str(args.detect_max)]
    return options


def _threads(args: argparse.Namespace) -> list[str]:
    """``--threads N`` for every task: CPU results depend on it (docs/FARM.md, "Threads")."""
    return ["--threads", str(args.threads or FARM_THREADS)]


def _matte_options(args: argparse.Namespace, name: str) -> list[str]:
    """The ``matte`` flags other than paths, frames and ``--overwrite``."""
    options = ["--device", args.device, "--size", str(args.size), "--schedule", args.schedule,
               "--name", name, *_threads(args)]
    if args.float32:
        options.append("--float32")
    options += opts.comp_flags(args)  # --exclusive/--residual/--foreground/--compression (#14)
    return options
