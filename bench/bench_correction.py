"""What a keyframe correction costs next to a full run (issue 13: <= 25% at frame 80 of 100).

Writes a synthetic shot (tests/support, generated XMem and MaGGIe weights, no download), then:

1. a full ``propagate`` with one keyframe at the first frame (and ``matte`` with ``--matte``);
2. a correction: a second keyframe at frame ``--correct-at`` (1-based in the shot) whose ID map is
   the propagated one with actor 1 shifted by 3 pixels, propagated into the same work folder
   (and matted into the same output folder: only frames whose inputs changed are recomputed,
   where the matte stage has frame provenance);
3. unless ``--no-verify``: a fresh propagation with both keyframes, compared bit for bit.

Prints wall and CPU times (this process; the CPU ratio is the steadier one on a shared machine),
the computed/reused counts, the ratios and the disk used by checkpoints and pass maps, then one
JSON line. Example (the figures in docs/PROPAGATION.md)::

    .venv/bin/python bench/bench_correction.py --frames 100 --size 64 --correct-at 80

``--run --qc`` is what a host's Run costs: ``run`` plus the CLI's QC step (``qc.json``).
Before/after comparisons run this same script against two trees in one session, e.g.
``PYTHONPATH=/tmp/before/core .venv/bin/python bench/bench_correction.py ...`` (the
``actormatte`` field of the JSON line says which tree was measured).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import actormatte  # noqa: E402
from actormatte import pipeline  # noqa: E402
from actormatte.cli import preview_cmd  # noqa: E402
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig  # noqa: E402
from actormatte.jobs import WorkFolder  # noqa: E402
from support.reference import maggie_weights, xmem_weights  # noqa: E402
from support.shots import build_models_dir, write_shot  # noqa: E402


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=64, help="plate width and height")
    parser.add_argument("--correct-at", type=int, default=80, help="1-based frame of the shot")
    parser.add_argument("--checkpoint-every", type=int, default=PropagateConfig.checkpoint_every)
    parser.add_argument("--checkpoint-keep", type=int, default=PropagateConfig.checkpoint_keep)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--matte", action="store_true", help="also matte (window5)")
    parser.add_argument("--matte-size", type=int, default=64, help="MaGGIe processing size")
    parser.add_argument("--qc", action="store_true",
                        help="with --run: also time the CLI's QC step after each run (qc.json)")
    parser.add_argument("--run", action="store_true",
                        help="time `run` (propagate + matte in one call) instead of the two")
    parser.add_argument("--no-verify", dest="verify", action="store_false")
    parser.add_argument("--drop-filters", action="store_true",
                        help="delete the cached Winograd filters before the correction (what "
                             "a correction costs without them)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="ACTORMATTE_CACHE for the runs (default: a new temporary folder, "
                             "so the full run transforms the filters, as on a new machine)")
    return parser.parse_args()


class _Silent:
    """A reporter that drops the QC step's progress events."""

    def progress(self, event: Any) -> None:
        """Ignore ``event``."""


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def filter_files(work: Path) -> list[Path]:
    """The cached Winograd filter files (the cache folder; older trees: the work folder)."""
    return [*Path(os.environ["ACTORMATTE_CACHE"]).glob("xmem-filters-*.pt"),
            *work.glob("xmem-filters-*.pt")]


def drop_filters(work: Path, args: argparse.Namespace) -> None:
    """``--drop-filters``: remove the transformed Winograd filters cached for the runs."""
    if args.drop_filters:
        for path in filter_files(work):
            path.unlink()


def correction_map(work: Path, frame: int) -> np.ndarray:
    """The propagated ID map of ``frame`` with actor 1 shifted right by 3 pixels."""
    ids = cv2.imread(str(WorkFolder(work).mask_path(frame)), cv2.IMREAD_UNCHANGED)
    actor = np.roll(ids == 1, 3, axis=1)
    return np.where(actor, 1, np.where(ids == 1, 0, ids)).astype(np.uint16)


class Bench:
    """The shot, folders and options of one benchmark run."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        os.environ["ACTORMATTE_CACHE"] = args.cache or str(tmp / "cache")
        self.models = str(build_models_dir(tmp / "models", maggie_weights, xmem_weights))
        self.shot = write_shot(tmp / "shot", args.frames, width=args.size, height=args.size)
        self.qc_fields: dict[str, Any] = {}
        self.xmem = PropagateConfig(size=-1, checkpoint_every=args.checkpoint_every,
                                    checkpoint_keep=args.checkpoint_keep)

    def propagate(self, work: Path, masks: tuple[str, ...]) -> tuple[float, float, Any]:
        """Wall seconds, CPU seconds of this process and result of one ``propagate``."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = pipeline.propagate(pipeline.PropagateOptions(
            plate=self.shot.pattern, work=str(work), masks=MaskConfig(masks=masks),
            models=self.models, device="cpu", propagate=self.xmem))
        return time.perf_counter() - wall, time.process_time() - cpu, result

    def run(self, masks: tuple[str, ...]) -> tuple[float, float, Any]:
        """Wall seconds, CPU seconds and result of one ``run`` into ``<tmp>/out``."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = pipeline.run(pipeline.RunOptions(
            plate=self.shot.pattern, out=str(self.tmp / "out"), masks=MaskConfig(masks=masks),
            models=self.models, device="cpu", propagate=self.xmem,
            matte=MatteConfig(size=self.args.matte_size), work=str(self.tmp / "work")))
        if self.args.qc:
            self.qc_fields = preview_cmd.after_run(argparse.Namespace(
                preview=False, fps=24.0, contact_frames=8, plate=None, reporter=_Silent()),
                result)
        return time.perf_counter() - wall, time.process_time() - cpu, result

    def matte(self, work: Path) -> tuple[float, float, Any]:
        """Wall seconds, CPU seconds and result of one ``matte`` into ``<tmp>/out``."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = pipeline.matte(pipeline.MatteOptions(
            work=str(work), out=str(self.tmp / "out"), models=self.models, device="cpu",
            matte=MatteConfig(size=self.args.matte_size)))
        return time.perf_counter() - wall, time.process_time() - cpu, result


def run_mode(bench: Bench, figures: dict[str, Any]) -> None:
    """``--run``: a full ``run``, then a ``run`` with the correction."""
    first = (f"{bench.shot.ids}@{bench.shot.first}",)
    figures["full_run_s"], figures["full_run_cpu_s"], _ = bench.run(first)
    frame = bench.shot.first + bench.args.correct_at - 1
    drop_filters(bench.tmp / "work", bench.args)
    key = bench.tmp / "correction.png"
    cv2.imwrite(str(key), correction_map(bench.tmp / "work", frame))
    figures["correction_run_s"], figures["correction_run_cpu_s"], result = bench.run(
        (*first, f"{key}@{frame}"))
    for field in ("frames_written", "frames_skipped", "frames_propagated", "frames_resumed"):
        figures[f"correction_{field}"] = getattr(result, field)
    if bench.args.qc:
        figures["correction_qc_frames_measured"] = bench.qc_fields.get("qc_frames_measured")
    figures["filters_bytes"] = sum(p.stat().st_size for p in filter_files(bench.tmp / "work"))
    figures["checkpoint_bytes"] = folder_bytes(bench.tmp / "work" / "checkpoint")
    figures["ratio"] = round(figures["correction_run_s"] / figures["full_run_s"], 4)
    figures["ratio_cpu"] = round(figures["correction_run_cpu_s"] / figures["full_run_cpu_s"], 4)


def main() -> None:
    """Run the benchmark and print the figures."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        with tempfile.TemporaryDirectory(prefix="bench_correction_") as name:
            figures: dict[str, Any] = {"mode": "run", "frames": args.frames, "size": args.size,
                                       "matte_size": args.matte_size, "qc": args.qc,
                                       "correct_at": args.correct_at,
                                       "checkpoint_every": args.checkpoint_every,
                                       "checkpoint_keep": args.checkpoint_keep,
                                       "actormatte": actormatte.__file__}
            run_mode(Bench(args, Path(name)), figures)
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="bench_correction_") as name:
        bench = Bench(args, Path(name))
        work, first = bench.tmp / "work", (f"{bench.shot.ids}@{bench.shot.first}",)
        figures = {"frames": args.frames, "size": args.size,
                   "correct_at": args.correct_at, "threads": args.threads,
                   "checkpoint_every": args.checkpoint_every,
                   "checkpoint_keep": args.checkpoint_keep, "actormatte": actormatte.__file__}
        figures["full_propagate_s"], figures["full_propagate_cpu_s"], _ = bench.propagate(
            work, first)
        if args.matte:
            figures["full_matte_s"], figures["full_matte_cpu_s"], full = bench.matte(work)
            figures["full_matte_written"] = full.frames_written
        frame = bench.shot.first + args.correct_at - 1
        key = bench.tmp / "correction.png"
        cv2.imwrite(str(key), correction_map(work, frame))
        both = (*first, f"{key}@{frame}")
        drop_filters(work, args)
        figures["correction_propagate_s"], figures["correction_propagate_cpu_s"], corr = (
            bench.propagate(work, both))
        figures["frames_propagated"] = corr.frames_propagated
        figures["frames_resumed"] = corr.frames_resumed
        stages = ["propagate"]
        if args.matte:
            stages.append("matte")
            figures["correction_matte_s"], figures["correction_matte_cpu_s"], matted = (
                bench.matte(work))
            figures["correction_matte_written"] = matted.frames_written
            figures["correction_matte_skipped"] = matted.frames_skipped
        for clock in ("s", "cpu_s"):
            full_s = sum(figures[f"full_{stage}_{clock}"] for stage in stages)
            corr_s = sum(figures[f"correction_{stage}_{clock}"] for stage in stages)
            figures["ratio" if clock == "s" else "ratio_cpu"] = round(corr_s / full_s, 4)
        figures["checkpoint_bytes"] = folder_bytes(work / "checkpoint")
        figures["pass_maps_bytes"] = folder_bytes(work / "passes")
        figures["filters_bytes"] = sum(p.stat().st_size for p in filter_files(work))
        if args.verify:
            bench.propagate(bench.tmp / "fresh", both)
            figures["bit_identical"] = all(
                WorkFolder(work).mask_path(f).read_bytes()
                == WorkFolder(bench.tmp / "fresh").mask_path(f).read_bytes()
                for f in range(bench.shot.first, bench.shot.last + 1))
    for name_, value in figures.items():
        print(f"{name_:>26}: {value:.3f}" if isinstance(value, float) else
              f"{name_:>26}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
