"""``actormatte matte``: mattes for a frame range from a propagated work folder (farm step 2)."""

from __future__ import annotations

import argparse
from typing import Any

from actormatte import pipeline
from actormatte.cli import options as opts
from actormatte.cli import preview_cmd
from actormatte.errors import EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register ``matte``."""
    parser = subparsers.add_parser(
        "matte", help="mattes for frames A..B from a work folder (chunkable)",
        description="Matte a frame range from the masks `actormatte propagate` wrote. Chunks "
                    "of a shot matted separately equal one run over the shot.")
    parser.add_argument("--work", required=True, metavar="DIR",
                        help="work folder written by `actormatte propagate`")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    opts.add_frames(parser)
    opts.add_common(parser)
    opts.add_matting(parser)
    opts.add_overwrite(parser, "recompute frames that already exist")
    parser.set_defaults(handler=handle, stages=("read", "matte", "write"))


def handle(args: argparse.Namespace) -> int:
    """Matte and report ``done``."""
    options = pipeline.MatteOptions(
        work=args.work, out=args.out, frames=opts.frames_from_args(args), models=args.models,
        device=args.device, matte=opts.matte_from_args(args), export=opts.export_from_args(args))
    reporter = args.reporter
    with opts.WarningEvents(reporter):
        result = pipeline.matte(options, progress=reporter.progress, cancel=args.cancel,
                                events=opts.event_sink(reporter))
    opts.emit_written(reporter, "matte", result, **preview_cmd.after_matte(args, result))
    return EXIT_OK
