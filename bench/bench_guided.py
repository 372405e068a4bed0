"""Bilinear vs guided upsampling of alphas on synthetic hair composites (issue #12, item 6).

Ground truth alpha at plate resolution: a soft-edged head with thin anti-aliased strands (1-2 px
wide at the plate) over a textured background; the low-resolution alpha is its area downsample to
the matting size (short side 576, the product's Resample sizes). Both methods start from it:
``bilinear`` = the product's aligned reverse + snap; ``guided`` = that, refined with
:func:`actormatte.matting.guided.guided_refine` using the composite as guide.

Metrics (lower is better), as in the alpha-matting benchmark (Rhemann et al. 2009): SAD = sum of
absolute differences / 1000; Grad = sum of squared differences of Gaussian-derivative
(sigma 1.4) gradient magnitudes / 1000; ms = wall time of the upsampling step per actor-frame.

    .venv/bin/python bench/bench_guided.py [--sizes 1080 2160] [--seeds 2] [--radius R --eps E]
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import torch

from actormatte.matting.guided import GuidedConfig, guided_refine
from actormatte.matting.resample import Resample


def composite(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic hair composite: ``(alpha (H, W) float32, rgb (H, W, 3) float32 0..1)``."""
    rng = np.random.default_rng(seed)
    unit = height / 1080.0
    alpha = np.zeros((height, width), np.float32)
    centre = (int(width * 0.5), int(height * 0.55))
    axes = (int(260 * unit), int(330 * unit))
    cv2.ellipse(alpha, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.5 * unit)
    strands = np.zeros_like(alpha)
    for _ in range(400):
        angle = rng.uniform(-np.pi, 0.0)
        start = np.array(centre) + np.array([np.cos(angle) * axes[0], np.sin(angle) * axes[1]])
        length = rng.uniform(80, 260) * unit
        bend = rng.uniform(-0.6, 0.6)
        t = np.linspace(0.0, 1.0, 40)[:, None]
        direction = np.array([np.cos(angle), np.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        points = start + t * length * direction + (t ** 2) * bend * length * normal
        thickness = 1 if rng.uniform() < 0.7 else 2
        cv2.polylines(strands, [np.round(points * 16).astype(np.int32)], False,
                      float(rng.uniform(0.6, 1.0)), thickness, cv2.LINE_AA, shift=4)
    alpha = np.maximum(alpha, strands)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.stack([0.45 + 0.25 * np.sin(xx / (97 * unit) + yy / (211 * unit)),
                           0.40 + 0.20 * np.cos(yy / (53 * unit)),
                           0.35 + 0.25 * np.sin((xx + yy) / (151 * unit))], -1)
    background += rng.normal(0, 0.02, background.shape).astype(np.float32)
    foreground = np.array([0.30, 0.18, 0.09], np.float32) + rng.normal(
        0, 0.03, (height, width, 3)).astype(np.float32)
    rgb = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    return alpha, np.clip(rgb, 0, 1).astype(np.float32)


def _snap(alpha: np.ndarray) -> np.ndarray:
    out = alpha.copy()
    out[alpha <= 1 / 255] = 0
    out[alpha >= 254 / 255] = 1
    return out


def sad(pred: np.ndarray, gt: np.ndarray) -> float:
    """Sum of absolute differences / 1000."""
    return float(np.abs(pred.astype(np.float64) - gt).sum() / 1000.0)


def grad_error(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    """Gradient error (Rhemann et al.): squared gradient-magnitude differences / 1000."""
    half = int(np.ceil(3 * sigma))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-x ** 2 / (2 * sigma ** 2))
    gauss /= gauss.sum()
    deriv = -x / sigma ** 2 * gauss
    deriv /= np.abs(deriv).sum()

    def magnitude(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float64)
        gx = cv2.sepFilter2D(image, cv2.CV_64F, deriv, gauss)
        gy = cv2.sepFilter2D(image, cv2.CV_64F, gauss, deriv)
        return np.sqrt(gx ** 2 + gy ** 2)

    return float(((magnitude(pred) - magnitude(gt)) ** 2).sum() / 1000.0)


def measure(height: int, seed: int, config: GuidedConfig) -> dict[str, float]:
    """Both methods on one composite of short side ``height`` (16:9)."""
    width = height * 16 // 9
    gt, rgb = composite(height, width, seed)
    plan = Resample.plan(height, width, 576)
    low = cv2.resize(gt, plan.resized_hw[::-1], interpolation=cv2.INTER_AREA)
    padded = np.zeros(plan.padded_hw, np.float32)
    padded[:low.shape[0], :low.shape[1]] = low
    begin = time.perf_counter()
    bilinear = _snap(plan.reverse(torch.from_numpy(padded)).numpy())
    bilinear_ms = (time.perf_counter() - begin) * 1000
    guide = np.round(rgb * 255).astype(np.uint8)  # what the stage reads: 8-bit sRGB
    begin = time.perf_counter()
    guided = guided_refine(bilinear, guide, 1.0 / plan.scale_yx[0], config)
    guided_ms = (time.perf_counter() - begin) * 1000
    return {"size": f"{width}x{height}", "seed": seed,
            "sad_bilinear": sad(bilinear, gt), "sad_guided": sad(guided, gt),
            "grad_bilinear": grad_error(bilinear, gt), "grad_guided": grad_error(guided, gt),
            "ms_bilinear": bilinear_ms, "ms_guided_extra": guided_ms}


def main() -> None:
    """Print one JSON line per size and seed, then the means per size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1080, 2160])
    parser.add_argument("--seeds", type=int, default=2)
    defaults = GuidedConfig()
    parser.add_argument("--radius", type=int, default=defaults.radius)
    parser.add_argument("--eps", type=float, default=defaults.eps)
    parser.add_argument("--subsample", type=int, default=defaults.subsample)
    args = parser.parse_args()
    config = GuidedConfig(radius=args.radius, eps=args.eps, subsample=args.subsample)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    for height in args.sizes:
        rows = [measure(height, seed, config) for seed in range(args.seeds)]
        for row in rows:
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}))
        keys = [k for k in rows[0] if k not in ("size", "seed")]
        print(json.dumps({"size": rows[0]["size"], "mean_of_seeds": args.seeds,
                          **{k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}}))


if __name__ == "__main__":
    main()
