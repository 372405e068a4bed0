"""``actormatte run``: the whole shot (propagate, matte, write) in one process."""

from __future__ import annotations

import argparse
from typing import Any

from actormatte import pipeline
from actormatte.cli import options as opts
from actormatte.cli import preview_cmd
from actormatte.errors import EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``run``."""
    parser = subparsers.add_parser(
        "run", help="the whole shot: propagate, matte, write",
        description="Propagate the keyframe masks over the shot, matte every frame and write "
                    "one EXR per plate frame with one <layer>.A channel per actor.")
    opts.add_plate(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="propagated masks and checkpoints (default <out>/.actormatte/<NAME>)")
    opts.add_masks(parser)
    opts.add_common(parser)
    opts.add_propagation(parser)
    opts.add_matting(parser)
    opts.add_overwrite(parser, "recompute frames (and the propagation) that already exist")
    preview_cmd.add_run_options(parser)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the whole pipeline and report ``done``."""
    options = pipeline.RunOptions(
        plate=args.plate, out=args.out, masks=opts.masks_from_args(args),
        frames=opts.frames_from_args(args), models=args.models, device=args.device,
        read=opts.read_from_args(args), propagate=opts.propagate_from_args(args),
        matte=opts.matte_from_args(args), export=opts.export_from_args(args), work=args.work)
    reporter = args.reporter
    with opts.WarningEvents(reporter):
        result = pipeline.run(options, progress=reporter.progress, cancel=args.cancel,
                              events=opts.event_sink(reporter))
    opts.emit_written(reporter, "run", result, **preview_cmd.after_run(args, result))
    return EXIT_OK
