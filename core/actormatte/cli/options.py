"""Argument groups shared by ``run``, ``propagate`` and ``matte``, and their mapping to config.

Each ``add_*`` function adds one group of flags (docs/CLI.md, "Common options"); the matching
``*_from_args`` function turns parsed flags into the frozen config dataclasses the pipeline takes.
Also here: the bridge from the pipeline's ``events`` to the protocol reporter, and the bridge
from ``logging`` warnings to ``warning`` events.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from actormatte.cli.protocol import Reporter
from actormatte.config import (
    DEVICES,
    PRECISIONS,
    RESAMPLES,
    SCHEDULES,
    SPARSE_BACKENDS,
    UPSAMPLES,
    ExportConfig,
    MaskConfig,
    MatteConfig,
    PropagateConfig,
    ReadConfig,
)
from actormatte.export.comp import done_fields
from actormatte.pipeline import RunResult
from actormatte.shot import parse_frames


def add_plate(parser: argparse.ArgumentParser) -> None:
    """``PLATE``, ``--frames``, ``--start-frame``, ``--input-colorspace``."""
    parser.add_argument("plate", metavar="PLATE",
                        help="image sequence (shot.####.exr, shot.%%04d.exr, shot.@@@@.exr) "
                             "or movie")
    add_frames(parser)
    parser.add_argument("--start-frame", type=int, default=1, metavar="N",
                        help="frame number of a movie's first frame (default 1)")
    parser.add_argument("--input-colorspace", metavar="NAME", default=None,
                        help="OCIO colour space of the plate (default: sRGB for integer files, "
                             "lin_rec709 for float files)")


def add_frames(parser: argparse.ArgumentParser) -> None:
    """``--frames A-B``."""
    parser.add_argument("--frames", metavar="A-B", default=None,
                        help="frames to process, e.g. 1001-1048 or 1001 (default: all)")


def add_masks(parser: argparse.ArgumentParser) -> None:
    """The ``MASKS`` group."""
    group = parser.add_argument_group("MASKS (at least one; repeatable, mixable)")
    group.add_argument("--masks", action="append", default=[], metavar="PATH[@FRAME]",
                       help="instance-ID map for a keyframe (0 background, k actor k)")
    group.add_argument("--actor-mask", action="append", default=[], metavar="NAME=PATH[@FRAME]",
                       help="one binary mask of one actor at a keyframe")
    group.add_argument("--mask-layers", action="append", default=[], metavar="FILE[@FRAME]",
                       help="layered EXR of a keyframe: each layer (bob.alpha, bob.A or a "
                            "bare channel bob) is the mask of the actor of that name")
    group.add_argument("--names", default=None, metavar="a,b,...",
                       help="names of the ID-map actors in id order (default actor_01, ...)")
    group.add_argument("--detect", action="store_true",
                       help="find people automatically (ONNX Mask R-CNN)")
    group.add_argument("--detect-window", type=int, default=48, metavar="N",
                       help="frames searched for people from the range start (default 48)")
    group.add_argument("--detect-threshold", type=float, default=0.7, metavar="S",
                       help="detection score threshold (default 0.7)")
    group.add_argument("--detect-max", type=int, default=10, metavar="K",
                       help="most people kept (default 10)")


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--models``, ``--device``, ``--no-progress-bar``."""
    parser.add_argument("--models", metavar="DIR", default=None,
                        help="model weights folder (default $ACTORMATTE_MODELS, else the folder "
                             "install.py recorded)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="cuda when torch sees a GPU (auto, the default), cpu or cuda")
    parser.add_argument("--no-progress-bar", dest="progress_bar", action="store_false",
                        help="print 'Progress: N%%' lines on stderr even on a terminal")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (default $ACTORMATTE_THREADS, else torch's default); "
                             "CPU results depend on it: give every farm task the same N")


def add_propagation(parser: argparse.ArgumentParser) -> None:
    """``--xmem-size`` and the hidden XMem testing knobs."""
    parser.add_argument("--xmem-size", type=int, default=480, metavar="N",
                        help="propagation short side (default 480; -1 keeps the plate size)")
    parser.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                        help="a propagation checkpoint before every frame that is a multiple "
                             "of N (default 10)")
    parser.add_argument("--checkpoint-keep", type=int, default=10, metavar="N",
                        help="propagation checkpoints kept per pass for corrections (default "
                             "10; beyond it thinned far from the pass's end first)")
    parser.add_argument("--no-backfill", dest="backfill", action="store_false",
                        help="do not propagate actors keyed after the first keyframe backwards "
                             "from their keyframe (they stay empty before it)")
    # Testing knobs: a lighter XMem memory for long synthetic shots in the test suite.
    parser.add_argument("--xmem-mem-every", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--xmem-max-mid-term", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--xmem-min-mid-term", type=int, default=5, help=argparse.SUPPRESS)


def add_matting(parser: argparse.ArgumentParser) -> None:
    """``--size``, ``--schedule``, ``--name``, ``--float32``, ``--overwrite``."""
    parser.add_argument("--size", type=int, default=576, metavar="N",
                        help="matting short side (default 576)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="window5",
                        help="window5: 5-frame windows, stride 3, chunkable (default); "
                             "reference: the official 3-frame loop")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="output file stem: <out>/<NAME>.<frame>.exr "
                             "(default <plate stem>_mattes)")
    parser.add_argument("--float32", action="store_true", help="write float32 channels")
    parser.add_argument("--resample", choices=RESAMPLES, default="auto",
                        help="plate <-> network transform: aligned (half-pixel centres both "
                             "ways), official (the authors' align_corners=True reverse); auto "
                             "(default) = official with --schedule reference, else aligned")
    parser.add_argument("--upsample", choices=UPSAMPLES, default="bilinear",
                        help="bilinear (default) or guided: refine each alpha at plate "
                             "resolution in its uncertain band with the plate as guide")
    parser.add_argument("--sparse-backend", choices=SPARSE_BACKENDS, default="auto",
                        help="MaGGIe detail branch: auto (spconv on CUDA when installed, else "
                             "torch; the default), torch or spconv (docs/GPU.md)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="MaGGIe precision: auto (fp32 on every device; the default), fp32, "
                             "tf32 (CUDA), fp16 (CUDA) or bf16 (docs/GPU.md)")
    add_comp(parser)


def add_comp(parser: argparse.ArgumentParser) -> None:
    """``--exclusive``, ``--residual``, ``--compression``, ``--foreground`` (comp output)."""
    parser.add_argument("--exclusive", action="store_true",
                        help="where actors overlap and their alphas sum above 1, scale them so "
                             "the sum is 1 (other pixels unchanged)")
    parser.add_argument("--residual", action="store_true",
                        help="also write rest.A = 1 - sum of the actors (what no actor covers); "
                             "'rest' is then a reserved actor name")
    parser.add_argument("--compression", default="zip",
                        choices=("zip", "zips", "piz", "dwaa", "dwab", "none"),
                        help="EXR compression (default zip; dwaa/dwab are lossy, a warning)")
    parser.add_argument("--foreground", action="store_true",
                        help="also write each actor's premultiplied colour <layer>.R/.G/.B in "
                             "the plate's own colour space (image-sequence plates)")


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """``--overwrite``."""
    parser.add_argument("--overwrite", action="store_true", help=what)


def frames_from_args(args: argparse.Namespace) -> tuple[int, int] | None:
    """``--frames`` as ``(first, last)`` or ``None``."""
    return None if args.frames is None else parse_frames(args.frames)


def read_from_args(args: argparse.Namespace) -> ReadConfig:
    """The :class:`ReadConfig` of the flags."""
    return ReadConfig(input_colorspace=args.input_colorspace, start_frame=args.start_frame)


def masks_from_args(args: argparse.Namespace) -> MaskConfig:
    """The :class:`MaskConfig` of the flags."""
    names = None
    if args.names is not None:
        names = tuple(name.strip() for name in args.names.split(","))
    return MaskConfig(masks=tuple(args.masks), actor_masks=tuple(args.actor_mask), names=names,
                      detect=args.detect, detect_window=args.detect_window,
                      detect_threshold=args.detect_threshold, detect_max=args.detect_max,
                      mask_layers=tuple(getattr(args, "mask_layers", ())))


def propagate_from_args(args: argparse.Namespace) -> PropagateConfig:
    """The :class:`PropagateConfig` of the flags."""
    return PropagateConfig(size=args.xmem_size, checkpoint_every=args.checkpoint_every,
                           mem_every=args.xmem_mem_every,
                           max_mid_term_frames=args.xmem_max_mid_term,
                           min_mid_term_frames=args.xmem_min_mid_term,
                           checkpoint_keep=getattr(args, "checkpoint_keep", 10),
                           backfill=getattr(args, "backfill", True))


def matte_from_args(args: argparse.Namespace) -> MatteConfig:
    """The :class:`MatteConfig` of the flags."""
    return MatteConfig(size=args.size, schedule=args.schedule,
                       resample=getattr(args, "resample", "auto"),
                       upsample=getattr(args, "upsample", "bilinear"),
                       sparse_backend=getattr(args, "sparse_backend", "auto"),
                       precision=getattr(args, "precision", "auto"))


def export_from_args(args: argparse.Namespace) -> ExportConfig:
    """The :class:`ExportConfig` of the flags."""
    return ExportConfig(name=args.name, half=not args.float32, overwrite=args.overwrite,
                        exclusive=getattr(args, "exclusive", False),
                        residual=getattr(args, "residual", False),
                        compression=getattr(args, "compression", "zip"),
                        foreground=getattr(args, "foreground", False))


def comp_flags(args: argparse.Namespace) -> list[str]:
    """The comp flags (:func:`add_comp`) as command-line words, for generated farm commands."""
    flags = [f"--{name}" for name in ("exclusive", "residual", "foreground")
             if getattr(args, name, False)]
    if getattr(args, "compression", "zip") != "zip":
        flags += ["--compression", args.compression]
    return flags


def emit_written(reporter: Reporter, command: str, result: RunResult, **extra: Any) -> None:
    """The ``done`` event of the commands that write EXRs (``run``, ``matte``).

    ``extra``: more fields (``run``'s QC and preview, :mod:`actormatte.cli.preview_cmd`).
    """
    reporter.emit("done", command=command, frames_written=result.frames_written,
                  frames_skipped=result.frames_skipped, out=result.out, pattern=result.pattern,
                  first=result.first, last=result.last, layers=result.layers, work=result.work,
                  **done_fields(result.pattern, result.first),
                  **_propagation_counts(command, result), **extra)


def _propagation_counts(command: str, result: RunResult) -> dict[str, int]:
    """``run``'s ID maps computed by XMem and reused (a correction reuses most of them)."""
    if command != "run":
        return {}
    return {"frames_propagated": result.frames_propagated,
            "frames_resumed": result.frames_resumed}


def event_sink(reporter: Reporter) -> Any:
    """The pipeline's ``events`` callback writing to ``reporter``."""
    def events(name: str, fields: dict[str, Any]) -> None:
        reporter.emit(name, **fields)

    return events


class WarningEvents(logging.Handler):
    """Turns ``actormatte`` log warnings into protocol ``warning`` events while installed."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__(level=logging.WARNING)
        self._reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record as a ``warning`` event."""
        self._reporter.emit("warning", message=record.getMessage())

    def __enter__(self) -> WarningEvents:
        logging.getLogger("actormatte").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("actormatte").removeHandler(self)
