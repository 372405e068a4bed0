"""``actormatte propagate``: XMem over the shot into a work folder (farm step 1, resumable)."""

from __future__ import annotations

import argparse
from typing import Any

from actormatte import pipeline
from actormatte.cli import options as opts
from actormatte.errors import EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``propagate``."""
    parser = subparsers.add_parser(
        "propagate", help="propagate keyframe masks over the shot (resumable)",
        description="Carry the keyframe masks through the shot with XMem and write one ID map "
                    "per frame into the work folder. A killed run resumes from its checkpoint.")
    opts.add_plate(parser)
    parser.add_argument("--work", required=True, metavar="DIR",
                        help="work folder for job.json, masks/ and checkpoint/")
    opts.add_masks(parser)
    opts.add_common(parser)
    opts.add_propagation(parser)
    opts.add_overwrite(parser, "start over even if the work folder holds this propagation")
    parser.set_defaults(handler=handle, stages=("read", "propagate"))


def handle(args: argparse.Namespace) -> int:
    """Propagate and report ``done``."""
    options = pipeline.PropagateOptions(
        plate=args.plate, work=args.work, masks=opts.masks_from_args(args),
        frames=opts.frames_from_args(args), models=args.models, device=args.device,
        read=opts.read_from_args(args), propagate=opts.propagate_from_args(args),
        overwrite=args.overwrite)
    reporter = args.reporter
    with opts.WarningEvents(reporter):
        result = pipeline.propagate(options, progress=reporter.progress, cancel=args.cancel,
                                    events=opts.event_sink(reporter))
    reporter.emit("done", command="propagate", work=result.work, first=result.first,
                  last=result.last, frames_propagated=result.frames_propagated,
                  frames_resumed=result.frames_resumed)
    return EXIT_OK
