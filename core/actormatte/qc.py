"""Quality figures of a matted shot, per frame and actor, and the frames an artist should look at.

Called by :mod:`actormatte.preview` (``actormatte preview`` and ``run``), which reads the mattes
back and feeds them here frame by frame in order; the result is written as ``qc.json`` and its
flags go into the CLI's ``done`` event, which the hosts list with jump-to-frame.

Per frame and actor:

* ``area``: the matte's area as a fraction of the frame (sum of alpha / pixels);
* ``change``: temporal change of alpha, ``sum |alpha_t - alpha_(t-1)| / max(sum alpha_t,
  sum alpha_(t-1))`` (0 = still, 1 = completely different, ``None`` on the first frame);
* ``confidence``: agreement of XMem's propagated mask (the work folder's ID map) with the matte,
  the IoU of ``ids == actor`` and ``alpha > 0.5`` (1 when both are empty; ``None`` without the
  ID maps). XMem's probabilities are not kept by the propagation stage, so this is a proxy: it
  drops where MaGGIe and XMem disagree, which is where propagation tends to have drifted.

Flags (:class:`QCConfig` holds the thresholds): an actor **lost** (present, then absent), an
**area jump** between consecutive frames, a **low confidence** frame.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actormatte.errors import ShapeError

QC_VERSION = 1
CONFIDENCE_SOURCE = ("IoU of the propagated ID map (XMem argmax) with alpha > 0.5; XMem "
                     "probabilities are not exposed by the propagation stage")


@dataclass(frozen=True)
class QCConfig:
    """Flag thresholds.

    Attributes:
        absent_pixels: An actor whose alpha sums to fewer pixels than this is absent.
        jump: Relative area change between consecutive frames that is flagged (0.35 = 35 %).
        jump_min_pixels: Area jumps are checked only when both frames hold this many pixels.
        low_confidence: Confidence below this is flagged.
    """

    absent_pixels: float = 16.0
    jump: float = 0.35
    jump_min_pixels: float = 64.0
    low_confidence: float = 0.5


@dataclass(frozen=True)
class Flag:
    """One frame to look at.

    Attributes:
        frame: Plate frame.
        actor: Actor name.
        kind: ``lost``, ``jump`` or ``low_confidence``.
        message: What to tell the artist, e.g. ``bob lost at 1043``.
    """

    frame: int
    actor: str
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        """The flag as a JSON object."""
        return {"frame": self.frame, "actor": self.actor, "kind": self.kind,
                "message": self.message}


@dataclass(frozen=True)
class FrameFigures:
    """The measured figures of one frame, per actor in actor order (what :func:`measure` gives).

    Attributes:
        pixels: Pixels in the frame.
        sums: Sum of each actor's alpha.
        change: Temporal change against the previous frame (``None``: no previous frame).
        confidence: Propagation confidence (``None``: no ID map).
    """

    pixels: float
    sums: tuple[float, ...]
    change: tuple[float | None, ...]
    confidence: tuple[float | None, ...]

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON object (the per-frame QC records)."""
        return {"pixels": self.pixels, "sums": list(self.sums), "change": list(self.change),
                "confidence": list(self.confidence)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameFigures:
        """Parse :meth:`to_json` (raises KeyError/TypeError/ValueError when malformed)."""
        figures = cls(float(data["pixels"]), tuple(float(v) for v in data["sums"]),
                      tuple(None if v is None else float(v) for v in data["change"]),
                      tuple(None if v is None else float(v) for v in data["confidence"]))
        if not len(figures.sums) == len(figures.change) == len(figures.confidence):
            raise ValueError("per-actor lists of different lengths")
        return figures


def measure(alphas: np.ndarray, propagated: np.ndarray | None,
            previous: np.ndarray | None) -> FrameFigures:
    """The figures of one frame.

    Args:
        alphas: The actors' mattes in [0, 1].
        propagated: The propagated masks of the same actors, or None.
        previous: The previous frame's mattes, or None (first frame).

    Shape:
        alphas: (N, H, W) float; propagated: (N, H, W) bool; previous: (N, H, W) float.
    """
    count = alphas.shape[0]
    sums = alphas.reshape(count, -1).sum(axis=1, dtype=np.float64)  # (N, H, W) -> (N,)
    before = None
    if previous is not None and previous.shape == alphas.shape:
        before = previous.reshape(count, -1).sum(axis=1, dtype=np.float64)  # (N,)
    change: list[float | None] = []
    for index in range(count):
        if previous is None or before is None:
            change.append(None)
            continue
        scale = max(float(sums[index]), float(before[index]))
        change.append(0.0 if scale <= 0.0 else
                      float(np.abs(alphas[index] - previous[index]).sum(dtype=np.float64))
                      / scale)
    return FrameFigures(float(alphas.shape[1] * alphas.shape[2]),
                        tuple(float(v) for v in sums), tuple(change),
                        tuple(_iou(propagated, alphas, i) for i in range(count)))


@dataclass
class QCReport:
    """Figures and flags of a shot, filled frame by frame by :meth:`add` or :meth:`add_figures`.

    Attributes:
        names: Actor names in actor order.
        config: Thresholds.
        frames: Frame -> actor -> figures.
        flags: Flags in frame order.
    """

    names: list[str]
    config: QCConfig = field(default_factory=QCConfig)
    frames: dict[int, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    _previous: np.ndarray | None = field(default=None, repr=False)
    _previous_sums: tuple[float, ...] | None = field(default=None, repr=False)

    def add(self, frame: int, alphas: np.ndarray, propagated: np.ndarray | None = None) -> None:
        """Take the next frame (frames must come in increasing order).

        Args:
            frame: Plate frame.
            alphas: The actors' mattes in [0, 1].
            propagated: The propagated masks of the same actors, or None.

        Shape:
            alphas: (N, H, W) float; propagated: (N, H, W) bool.
        """
        if alphas.ndim != 3 or alphas.shape[0] != len(self.names):
            raise ShapeError(f"alphas must be (N={len(self.names)}, H, W), got {alphas.shape}")
        self.add_figures(frame, measure(alphas, propagated, self._previous))
        self._previous = alphas.astype(np.float32, copy=True)

    def add_figures(self, frame: int, figures: FrameFigures) -> None:
        """Take the next frame's figures, measured earlier (frames in increasing order)."""
        if len(figures.sums) != len(self.names):
            raise ShapeError(f"figures of {len(figures.sums)} actors, expected "
                             f"{len(self.names)}")
        self.frames[frame] = {
            name: {"area": figures.sums[index] / figures.pixels,
                   "change": figures.change[index], "confidence": figures.confidence[index]}
            for index, name in enumerate(self.names)}
        for index in range(len(self.names)):
            self._flag(frame, index, figures.sums, figures.confidence[index])
        self._previous_sums = figures.sums

    def _flag(self, frame: int, index: int, sums: tuple[float, ...],
              confidence: float | None) -> None:
        name, config, area = self.names[index], self.config, float(sums[index])
        present = area >= config.absent_pixels
        if self._previous_sums is not None:
            before = float(self._previous_sums[index])
            if before >= config.absent_pixels and not present:
                self.flags.append(Flag(frame, name, "lost", f"{name} lost at {frame}"))
            elif min(before, area) >= config.jump_min_pixels:
                relative = (area - before) / before
                if abs(relative) > config.jump:
                    self.flags.append(Flag(frame, name, "jump", f"{name} area {relative:+.0%} "
                                           f"at {frame}: consider a keyframe"))
        if confidence is not None and confidence < config.low_confidence and present:
            self.flags.append(Flag(frame, name, "low_confidence",
                                   f"{name} low propagation confidence {confidence:.2f} at "
                                   f"{frame}: consider a keyframe"))

    def flagged_frames(self) -> list[int]:
        """Frames with at least one flag, sorted."""
        return sorted({flag.frame for flag in self.flags})

    def to_json(self) -> dict[str, Any]:
        """The report as written to ``qc.json``."""
        return {"version": QC_VERSION, "actors": list(self.names),
                "confidence_source": CONFIDENCE_SOURCE,
                "thresholds": {"absent_pixels": self.config.absent_pixels,
                               "jump": self.config.jump,
                               "jump_min_pixels": self.config.jump_min_pixels,
                               "low_confidence": self.config.low_confidence},
                "frames": {str(frame): figures for frame, figures in sorted(self.frames.items())},
                "flagged_frames": self.flagged_frames(),
                "flags": [flag.to_json() for flag in self.flags]}

    def write(self, path: Path) -> Path:
        """Write ``qc.json`` atomically (a temporary name in the same folder, then a rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.replace(temp, path)
        return path


def _iou(propagated: np.ndarray | None, alphas: np.ndarray, index: int) -> float | None:
    if propagated is None or propagated.shape != alphas.shape:
        return None
    matte = alphas[index] > 0.5
    mask = propagated[index]
    union = int(np.logical_or(matte, mask).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(matte, mask).sum()) / union
