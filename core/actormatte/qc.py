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


@dataclass
class QCReport:
    """Figures and flags of a shot, filled frame by frame by :meth:`add`.

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
    _previous: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

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
        sums = alphas.reshape(len(self.names), -1).sum(axis=1, dtype=np.float64)  # (N,)
        pixels = float(alphas.shape[1] * alphas.shape[2])
        figures: dict[str, dict[str, float | None]] = {}
        for index, name in enumerate(self.names):
            figures[name] = {"area": float(sums[index]) / pixels,
                             "change": self._change(alphas, sums, index),
                             "confidence": _iou(propagated, alphas, index)}
            self._flag(frame, index, sums, figures[name]["confidence"])
        self.frames[frame] = figures
        self._previous = (alphas.astype(np.float32, copy=True), sums)

    def _change(self, alphas: np.ndarray, sums: np.ndarray, index: int) -> float | None:
        if self._previous is None:
            return None
        before, before_sums = self._previous
        if before.shape != alphas.shape:
            return None
        scale = max(float(sums[index]), float(before_sums[index]))
        if scale <= 0.0:
            return 0.0
        return float(np.abs(alphas[index] - before[index]).sum(dtype=np.float64)) / scale

    def _flag(self, frame: int, index: int, sums: np.ndarray, confidence: float | None) -> None:
        name, config, area = self.names[index], self.config, float(sums[index])
        present = area >= config.absent_pixels
        if self._previous is not None:
            before = float(self._previous[1][index])
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
