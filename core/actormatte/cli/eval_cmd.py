"""``actormatte eval``: score mattes against ground truth with MaGGIe's metrics (and IMQ).

Without ``--json`` stdout carries protocol events (``progress`` with stage ``read``, then one
``done`` event holding the metrics) and a table goes to stderr. With ``--json`` stdout is exactly
one JSON object, ``{"metrics": ..., "per_layer": ..., "frames": [...], ...}``, for pipelines
(``actormatte eval ... --json | jq .metrics``); progress then shows only on stderr. Bad input
(missing frames, unknown layers, size mismatch, unreadable files) exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from actormatte.cli.protocol import Reporter
from actormatte.errors import EXIT_OK, InputError
from actormatte.evaluation import (
    CLIP_METRICS,
    FRAME_METRICS,
    evaluate,
    open_exr_sequence,
    open_layer_sequences,
    parse_layer_patterns,
)
from actormatte.progress import ProgressEvent


def add_parser(subparsers: Any) -> None:
    """Register ``eval``."""
    parser = subparsers.add_parser(
        "eval", help="score mattes against ground truth (MaGGIe metrics, InstMatt IMQ)",
        description="Score a predicted matte sequence against ground truth on the whole clip: "
                    "MAD, MSE, SAD, Grad, Conn per frame and actor, dtSSD and MESSDdt per "
                    "actor, with MaGGIe's scale factors; InstMatt's IMQ when the layer sets "
                    "differ (or with --imq).")
    parser.add_argument("--pred", required=True, metavar="PATTERN",
                        help="predicted matte EXRs with <layer>.A channels (shot_mattes.####.exr)")
    parser.add_argument("--gt", default=None, metavar="PATTERN",
                        help="ground-truth matte EXRs with <layer>.A channels")
    parser.add_argument("--gt-layer", action="append", default=[], metavar="NAME=PATTERN",
                        help="ground truth of one layer as an image sequence (PNG/TIFF/EXR, "
                             "first channel); repeat per layer; instead of --gt")
    parser.add_argument("--layers", default=None, metavar="a,b",
                        help="score only these layers (default all)")
    parser.add_argument("--imq", action="store_true",
                        help="also compute IMQ when the layer sets are equal")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with metrics, per_layer and frames")
    parser.add_argument("--plot", default=None, metavar="FILE.png",
                        help="draw per-frame error curves per actor into a PNG")
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false",
                        help="print 'Progress: N%%' lines on stderr even on a terminal")
    parser.set_defaults(handler=handle, stages=("read",))


def handle(args: argparse.Namespace) -> int:
    """Open both sequences, score, print, plot."""
    if (args.gt is None) == (not args.gt_layer):
        raise InputError("give the ground truth with --gt PATTERN or with --gt-layer "
                         "NAME=PATTERN (one per layer), not both")
    pred = open_exr_sequence(args.pred, "--pred")
    gt = (open_exr_sequence(args.gt, "--gt") if args.gt is not None else
          open_layer_sequences(parse_layer_patterns(args.gt_layer, "--gt-layer"), "--gt-layer"))
    layers = None
    if args.layers is not None:
        layers = [name.strip() for name in args.layers.split(",") if name.strip()]
        if not layers:
            raise InputError("--layers is empty; give names such as --layers bob,alice")
    reporter = args.reporter
    with open(os.devnull, "w") as devnull:
        # With --json, progress goes to stderr only: stdout stays one JSON object.
        progress_to = (Reporter(stdout=devnull, bar=None if args.progress_bar else False,
                                stages=("read",)) if args.json else reporter)
        report = evaluate(pred, gt, layers=layers, imq=args.imq,
                          progress=lambda done, total: progress_to.progress(
                              ProgressEvent("read", done, total)))
        progress_to.finish()
    if args.plot:
        from actormatte.evaluation.plot import plot_frame_errors

        plot_frame_errors(report, args.plot)
    reporter.finish()
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        sys.stdout.flush()
    else:
        reporter.emit("done", command="eval", metrics=report["metrics"],
                      per_layer=report["per_layer"], frames_scored=report["frames_scored"],
                      plot=args.plot)
        sys.stderr.write(format_table(report))
        sys.stderr.flush()
    return EXIT_OK


def format_table(report: dict[str, Any]) -> str:
    """A fixed-width table of the overall and per-layer figures."""
    columns = (*FRAME_METRICS, *CLIP_METRICS)
    lines = [f"{'layer':<20}" + "".join(f"{c:>12}" for c in columns)]
    rows = [("ALL", report["metrics"]), *report["per_layer"].items()]
    for name, values in rows:
        cells = "".join(f"{_fmt(values.get(c)):>12}" for c in columns)
        lines.append(f"{name:<20}{cells}")
    imq = report["metrics"].get("IMQ")
    if imq:
        for thresh, row in imq.items():
            scores = ", ".join(f"{k} {row[k]:.4f}" for k in ("MAD", "MSE", "Grad", "Conn", "IoU"))
            lines.append(f"IMQ@{thresh}: {scores} (TP {row['TP']}, FP {row['FP']}, "
                         f"FN {row['FN']})")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
