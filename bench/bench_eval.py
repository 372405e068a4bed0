"""Time ``actormatte eval`` on a synthetic matte sequence (seconds per frame per actor).

Writes ``--frames`` frames of ``--actors`` moving soft discs at ``--size`` (GT) and a noisy,
shifted prediction as float32 matte EXRs into a temporary folder, then runs the evaluation
(both passes, all metrics) in-process and prints the wall time and the metrics.

    .venv/bin/python bench/bench_eval.py [--size 1080p] [--frames 10] [--actors 2] [--imq]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from actormatte.evaluation import evaluate, open_exr_sequence
from actormatte.export.exr import MatteWriter

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840), "576p": (576, 1024)}


def _disc(height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.hypot(yy - cy, xx - cx)
    return np.clip((radius - dist) / 8.0, 0, 1).astype(np.float32)


def write_sequences(root: Path, size: str, frames: int, actors: int) -> tuple[str, str]:
    """GT and prediction EXR sequences; returns their patterns."""
    height, width = SIZES[size]
    layers = [f"actor_{k:02d}" for k in range(actors)]
    gt = MatteWriter(root, "gt", layers, width, height, half=False)
    pred = MatteWriter(root, "pred", layers, width, height, half=False)
    rng = np.random.default_rng(0)
    for t in range(frames):
        gt_alphas, pred_alphas = {}, {}
        for k, layer in enumerate(layers):
            cx = width * (k + 1) / (actors + 1) + 4 * t
            alpha = _disc(height, width, height / 2, cx, height / 4)
            gt_alphas[layer] = alpha
            noisy = np.roll(alpha, 2, axis=1) + rng.normal(0, 0.02, alpha.shape) * (alpha > 0)
            pred_alphas[layer] = np.clip(noisy, 0, 1).astype(np.float32)
        gt.write(1001 + t, gt_alphas)
        pred.write(1001 + t, pred_alphas)
    return pred.pattern, gt.pattern


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1080p", choices=sorted(SIZES))
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--imq", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        pred_pattern, gt_pattern = write_sequences(Path(folder), args.size, args.frames,
                                                   args.actors)
        start = time.perf_counter()
        report = evaluate(open_exr_sequence(pred_pattern, "--pred"),
                          open_exr_sequence(gt_pattern, "--gt"), imq=args.imq)
        seconds = time.perf_counter() - start
    print(json.dumps({"size": args.size, "frames": args.frames, "actors": args.actors,
                      "imq": args.imq, "seconds": seconds,
                      "s_per_frame_actor": seconds / (args.frames * args.actors),
                      "load_average": os.getloadavg(), "metrics": report["metrics"]}, indent=1))


if __name__ == "__main__":
    main()
