#!/usr/bin/env python3
"""Generate the sample shot in ``examples/sample/`` (deterministic; numpy + OpenCV only).

Two soft-edged "actors" (a head with hair-like strands over a striped body) walk past each other
over a textured, slowly panning background. Output, 320x180, frames 1001-1024:

* ``plate.####.png``: the plate (8-bit sRGB);
* ``ids.png``: 8-bit instance-ID map for frame 1001 (0 background, 1 left actor, 2 right actor),
  the pixels where an actor's alpha is above 0.5 and in front;
* ``truth/actor_0K.####.png``: each actor's true alpha (8-bit), after occlusion, to score mattes.

Usage: ``python examples/make_sample.py [--out examples/sample]``. Try the shot with
``actormatte run examples/sample/plate.####.png --masks examples/sample/ids.png --out /tmp/m``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT = 320, 180
FIRST, COUNT = 1001, 24
SEED = 20240412
PNG = [cv2.IMWRITE_PNG_COMPRESSION, 9]


@dataclass(frozen=True)
class Actor:
    """One walking figure: where it starts, how it moves, how it looks."""

    start_x: float
    speed: float
    base_y: float
    scale: float
    shirt: tuple[int, int, int]
    hair: tuple[int, int, int]
    skin: tuple[int, int, int]


ACTORS = (
    Actor(start_x=80, speed=4.0, base_y=105, scale=1.0, shirt=(40, 90, 200),
          hair=(40, 25, 15), skin=(205, 160, 130)),
    Actor(start_x=245, speed=-3.0, base_y=110, scale=1.1, shirt=(200, 60, 50),
          hair=(150, 110, 60), skin=(170, 120, 90)),
)


def background(rng: np.random.Generator, frame_index: int) -> np.ndarray:
    """A smooth, textured wall and floor, panned one pixel every two frames. Shape (H, W, 3)."""
    pad = COUNT
    coarse = rng.random((12, 24, 3)).astype(np.float32)
    texture = cv2.resize(coarse, (WIDTH + pad, HEIGHT), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH + pad].astype(np.float32)
    bricks = 0.5 + 0.5 * np.sin(xx / 9.0) * np.sin(yy / 7.0)
    wall = 0.35 + 0.25 * texture + 0.08 * bricks[:, :, None]
    floor = yy[:, :, None] > 135
    image = np.where(floor, 0.25 + 0.2 * texture[:, :, ::-1], wall)
    shift = frame_index // 2
    return np.clip(image[:, shift:shift + WIDTH] * 255, 0, 255).astype(np.float32)


def figure(actor: Actor, frame_index: int, rng: np.random.Generator,
           ) -> tuple[np.ndarray, np.ndarray]:
    """Colour and alpha of one actor at one frame. Shapes (H, W, 3) float, (H, W) float 0..1."""
    cx = actor.start_x + actor.speed * frame_index
    cy = actor.base_y + 3.0 * np.sin(frame_index * 0.7)
    s = actor.scale
    body = np.zeros((HEIGHT, WIDTH), np.float32)
    head_c = (int(round(cx * 4)), int(round((cy - 45 * s) * 4)))
    cv2.ellipse(body, (int(round(cx * 4)), int(round((cy + 10 * s) * 4))),
                (int(22 * s * 4), int(42 * s * 4)), 0, 0, 360, 1.0, -1, cv2.LINE_AA, 2)
    cv2.ellipse(body, head_c, (int(12 * s * 4), int(15 * s * 4)), 0, 0, 360, 1.0, -1,
                cv2.LINE_AA, 2)
    hair = np.zeros_like(body)
    strand_rng = np.random.default_rng(rng.integers(1 << 31))
    for _ in range(90):  # thin strands around the top of the head: the soft part of the matte
        angle = strand_rng.uniform(np.pi * 0.95, np.pi * 2.05)
        length = strand_rng.uniform(10, 20) * s
        sway = 0.15 * np.sin(frame_index * 0.5 + angle * 3)
        x0 = cx + np.cos(angle) * 11 * s
        y0 = cy - 45 * s + np.sin(angle) * 14 * s
        x1 = x0 + np.cos(angle + sway) * length
        y1 = y0 + np.sin(angle + sway) * length
        cv2.line(hair, (int(x0 * 4), int(y0 * 4)), (int(x1 * 4), int(y1 * 4)),
                 float(strand_rng.uniform(0.3, 0.8)), 1, cv2.LINE_AA, 2)
    alpha = np.maximum(cv2.GaussianBlur(body, (0, 0), 0.8), hair)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    stripes = (0.8 + 0.2 * np.sin((yy - cy) / 2.5))[:, :, None]
    colour = np.asarray(actor.shirt, np.float32) * stripes
    head = ((xx - cx) / (12 * s)) ** 2 + ((yy - (cy - 45 * s)) / (15 * s)) ** 2 < 1.1
    colour = np.where(head[:, :, None], np.asarray(actor.skin, np.float32), colour)
    colour = np.where((hair > body)[:, :, None], np.asarray(actor.hair, np.float32), colour)
    return colour, np.clip(alpha, 0.0, 1.0)


def render(out: Path) -> None:
    """Write the plate, the ID map and the true alphas."""
    (out / "truth").mkdir(parents=True, exist_ok=True)
    background_rng = np.random.default_rng(SEED)
    wall_seed = background_rng.integers(1 << 31)
    for index in range(COUNT):
        frame = FIRST + index
        image = background(np.random.default_rng(wall_seed), index)
        alphas = []
        # Actor 2 is drawn last: it walks in front where the two cross.
        for actor_index, actor in enumerate(ACTORS):
            rng = np.random.default_rng(SEED + 7 * actor_index)
            colour, alpha = figure(actor, index, rng)
            image = image * (1 - alpha[:, :, None]) + colour * alpha[:, :, None]
            alphas = [a * (1 - alpha) for a in alphas] + [alpha]
        rgb = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        cv2.imwrite(str(out / f"plate.{frame:04d}.png"), rgb[:, :, ::-1], PNG)
        for actor_id, alpha in enumerate(alphas, start=1):
            truth = np.rint(alpha * 255).astype(np.uint8)
            cv2.imwrite(str(out / "truth" / f"actor_{actor_id:02d}.{frame:04d}.png"), truth, PNG)
        if index == 0:
            ids = np.zeros((HEIGHT, WIDTH), np.uint8)
            for actor_id, alpha in enumerate(alphas, start=1):
                ids[alpha > 0.5] = actor_id
            cv2.imwrite(str(out / "ids.png"), ids, PNG)


def main() -> None:
    """Parse the arguments and render the shot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "sample")
    render(parser.parse_args().out)


if __name__ == "__main__":
    main()
