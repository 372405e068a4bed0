"""Per-actor foreground colour (--foreground): accuracy on synthetic composites, ms per frame.

Three scene-linear composites with a known foreground, built at the chosen resolution:

- ``hair``: a soft head with ~300 thin anti-aliased strands (drawn 2x larger and area-downsampled,
  so strands are fractional alphas) over a high-contrast striped background;
- ``motion_blur``: a textured actor blurred along x by a 41 px box (premultiplied blur: the true
  colour is blur(F * m), alpha blur(m));
- ``overlap``: two soft actors, A in front of B; B's visible alpha is (1 - aA) * aB.

For each actor the estimate (``estimate_foreground``: pymatting ML inside the actor's box +
32 px) and the naive ``plate * alpha`` are compared with the true premultiplied colour: mean
absolute error over 0 < alpha < 1 (premultiplied, and divided by alpha where alpha > 0.05).
Timing: ms per actor per frame of ``estimate_foreground`` (median of --repeat), at each size.

    .venv/bin/python bench/bench_foreground.py [--sizes 1080p,4k] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import cv2
import numpy as np

SIZES = {"1080p": (1080, 1920), "4k": (2160, 3840), "512": (512, 512)}


def _texture(height: int, width: int, seed: int, base: tuple[float, float, float]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 1, (height // 8 + 1, width // 8 + 1, 3)).astype(
        np.float32), (0, 0), 1.5)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR)
    return (np.asarray(base, np.float32) * (0.6 + 0.8 * noise)).astype(np.float32)


def _stripes(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = max(8, width // 120)
    stripe = ((xx + yy * 0.5) // period) % 2
    return np.stack([0.05 + 1.6 * stripe, 0.8 - 0.6 * stripe, 0.2 + 0.9 * (yy / height)],
                    axis=-1).astype(np.float32)


def _disc(height: int, width: int, cy: float, cx: float, ry: float, rx: float,
          soft: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dist = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - dist) * min(ry, rx) / soft, 0, 1).astype(np.float32)


def hair_scene(height: int, width: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Plate and [(alpha, true premultiplied colour)] for one actor with hair-like strands."""
    big = np.zeros((height * 2, width * 2), np.uint8)  # drawn at 2x, area-downsampled
    rng = np.random.default_rng(1)
    cy, cx, r = big.shape[0] * 0.5, big.shape[1] * 0.5, big.shape[0] * 0.28
    cv2.ellipse(big, (int(cx), int(cy)), (int(r * 0.8), int(r)), 0, 0, 360, 255, -1)
    for _ in range(300):
        angle = rng.uniform(-np.pi, 0)
        start = (int(cx + np.cos(angle) * r * 0.7), int(cy + np.sin(angle) * r * 0.9))
        length = rng.uniform(0.3, 0.7) * r
        bend = rng.uniform(-0.4, 0.4)
        points = [(start[0] + np.cos(angle + bend * t) * length * t,
                   start[1] + np.sin(angle + bend * t) * length * t) for t in np.linspace(0, 1, 8)]
        cv2.polylines(big, [np.int32(points)], False, 255, 1, cv2.LINE_AA)
    mask = cv2.resize(big.astype(np.float32) / 255.0, (width, height),
                      interpolation=cv2.INTER_AREA)
    alpha = np.clip(cv2.GaussianBlur(mask, (0, 0), 0.7), 0, 1).astype(np.float32)
    fg = _texture(height, width, 2, (0.9, 0.55, 0.25))
    bg = _stripes(height, width)
    plate = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return plate.astype(np.float32), [(alpha, fg * alpha[..., None])]


def motion_blur_scene(height: int, width: int,
                      ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """A textured actor blurred along x (premultiplied blur)."""
    mask = _disc(height, width, height * 0.5, width * 0.5, height * 0.3, width * 0.12, 2.0)
    fg = _texture(height, width, 3, (0.3, 0.7, 1.4))
    kernel = np.ones((1, 41), np.float32) / 41.0
    alpha = cv2.filter2D(mask, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    premult = cv2.filter2D(fg * mask[..., None], -1, kernel, borderType=cv2.BORDER_REPLICATE)
    bg = _stripes(height, width)
    plate = premult + (1 - alpha[..., None]) * bg
    return plate.astype(np.float32), [(alpha.astype(np.float32), premult.astype(np.float32))]


def overlap_scene(height: int, width: int,
                  ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Two soft actors, A in front of B."""
    alpha_a = _disc(height, width, height * 0.5, width * 0.42, height * 0.3, width * 0.12, 12.0)
    alpha_b = _disc(height, width, height * 0.55, width * 0.55, height * 0.3, width * 0.12, 12.0)
    fg_a = _texture(height, width, 4, (1.2, 0.3, 0.3))
    fg_b = _texture(height, width, 5, (0.2, 0.9, 0.3))
    bg = _stripes(height, width)
    behind = alpha_b[..., None] * fg_b + (1 - alpha_b[..., None]) * bg
    plate = alpha_a[..., None] * fg_a + (1 - alpha_a[..., None]) * behind
    visible_b = (1 - alpha_a) * alpha_b
    return plate.astype(np.float32), [(alpha_a, fg_a * alpha_a[..., None]),
                                      (visible_b.astype(np.float32),
                                       (fg_b * visible_b[..., None]).astype(np.float32))]


SCENES = {"hair": hair_scene, "motion_blur": motion_blur_scene, "overlap": overlap_scene}


def _errors(estimate: np.ndarray, truth: np.ndarray, alpha: np.ndarray) -> dict[str, float]:
    edge = (alpha > 0) & (alpha < 1)
    solid = alpha > 0.05
    premult = float(np.abs(estimate - truth)[edge].mean())
    unpremult = float((np.abs(estimate - truth) / np.maximum(alpha, 1e-6)[..., None])[
        edge & solid].mean())
    return {"premult_mae": premult, "unpremult_mae": unpremult}


def accuracy(size: str) -> dict[str, object]:
    """Errors of the estimate and of plate * alpha per scene and actor at one size."""
    from actormatte.export.foreground import estimate_foreground, naive_foreground

    height, width = SIZES[size]
    out: dict[str, object] = {}
    for name, build in SCENES.items():
        plate, actors = build(height, width)
        for k, (alpha, truth) in enumerate(actors):
            est = _errors(estimate_foreground(plate, alpha), truth, alpha)
            naive = _errors(naive_foreground(plate, alpha), truth, alpha)
            out[f"{name}/{k}"] = {"estimate": est, "naive": naive,
                                  "edge_pixels": int(((alpha > 0) & (alpha < 1)).sum())}
    return out


def timing(size: str, repeat: int) -> dict[str, float]:
    """Median ms of estimate_foreground per actor per frame at one size (hair and overlap)."""
    from actormatte.export.foreground import actor_box, estimate_foreground

    height, width = SIZES[size]
    out: dict[str, float] = {}
    for name in ("hair", "overlap"):
        plate, actors = SCENES[name](height, width)
        alpha = actors[0][0]
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            estimate_foreground(plate, alpha)
            times.append((time.perf_counter() - start) * 1000.0)
        box = actor_box(alpha, 32)
        assert box is not None
        out[f"{name}_ms"] = float(np.median(times))
        out[f"{name}_box_px"] = int((box[0].stop - box[0].start) * (box[1].stop - box[1].start))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1080p,4k")
    parser.add_argument("--accuracy-size", default="1080p")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    from actormatte.export.foreground import estimate_foreground

    # The first call loads pymatting's estimator module (JIT-compiled, or numba's cache).
    estimate_foreground(np.zeros((8, 8, 3), np.float32), np.full((8, 8), 0.5, np.float32))
    first_call_s = time.perf_counter() - start
    report: dict[str, object] = {"first_call_s": first_call_s,
                                 "load_average": os.getloadavg(), "cpus": os.cpu_count(),
                                 "accuracy": accuracy(args.accuracy_size),
                                 "accuracy_size": args.accuracy_size}
    report["timing"] = {size: timing(size, args.repeat) for size in args.sizes.split(",")}
    report["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
