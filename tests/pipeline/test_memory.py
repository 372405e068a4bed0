"""A long shot keeps memory bounded: frames stream through one pass of ``run``.

The thresholds are below what a cache of every decoded frame or every ID map would add over the
sampled span, so such a leak fails the test (the figures are in each test).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import torch

from actormatte import pipeline
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig
from actormatte.progress import ProgressEvent

MB = 1 << 20


def _sampler(stage: str, samples: list[int]):
    process = psutil.Process()

    def sample(event: ProgressEvent) -> None:
        if event.stage == stage:
            samples.append(process.memory_info().rss)

    return sample


@pytest.mark.slow
def test_300_frame_run_rss_is_bounded(tmp_path, make_shot, models_dir):
    # 256x384 frames: over the 240 sampled frames a cache of every decoded frame would add
    # 240 * 295 KB = 71 MB (uint8 RGB), of every ID map 240 * 197 KB = 47 MB (uint16).
    shot = make_shot(300, width=384, height=256, actors=1)
    samples: list[int] = []
    result = pipeline.run(pipeline.RunOptions(
        plate=shot.pattern, out=str(tmp_path / "out"), masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu",
        propagate=PropagateConfig(size=32, checkpoint_every=100), matte=MatteConfig(size=32)),
        progress=_sampler("write", samples))
    assert result.frames_written == 300 and len(samples) == 300
    growth = max(samples[60:]) - samples[60]
    assert growth < 20 * MB, f"run RSS grew {growth / MB:.1f} MB over 240 frames"


class _StandInProcessor:
    """XMem's processor interface; every step returns the keyframe's guidance (no network)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._probs: torch.Tensor | None = None

    @classmethod
    def restore(cls, *args: object) -> _StandInProcessor:
        return cls()

    def set_all_labels(self, labels: list[int]) -> None:
        pass

    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None,
             valid: object = None, end: bool = False) -> torch.Tensor:
        if mask is not None:
            self._probs = torch.cat([1 - mask.amax(0, keepdim=True), mask])  # (K+1, h, w)
        assert self._probs is not None
        return self._probs

    def snapshot(self) -> SimpleNamespace:
        return SimpleNamespace(to_dict=dict)


class _StandInMaggie:
    """MaGGIe's interfaces returning the guidance masks (no network)."""

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> SimpleNamespace:
        zeros = torch.zeros((*mask.shape[:2], 1, *mask.shape[-2:]))
        return SimpleNamespace(refined=mask.float(), diff_forward=zeros, diff_backward=zeros)

    def encode_frames(self, image: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return masks

    def decode_frames(self, frames: torch.Tensor, mask: torch.Tensor) -> SimpleNamespace:
        return self(frames, mask)


@pytest.mark.slow
def test_2000_frame_run_rss_is_flat(tmp_path, make_shot, models_dir, monkeypatch):
    """Stand-in networks, so the pipeline around them is what is measured."""
    for name, module in list(sys.modules.items()):
        if name.startswith("actormatte") and module is not None:
            if hasattr(module, "XMemProcessor"):
                monkeypatch.setattr(module, "XMemProcessor", _StandInProcessor)
            if hasattr(module, "load_xmem"):
                monkeypatch.setattr(module, "load_xmem", lambda *a, **k: torch.nn.Module())
            if hasattr(module, "load_maggie"):
                monkeypatch.setattr(module, "load_maggie", lambda *a, **k: _StandInMaggie())
    monkeypatch.setattr("actormatte.matting.model.FrameFeatures.cat",
                        staticmethod(lambda parts: torch.cat(parts)))
    shot = make_shot(2000, width=96, height=64, actors=2)
    samples: list[int] = []
    result = pipeline.run(pipeline.RunOptions(
        plate=shot.pattern, out=str(Path(tmp_path) / "out"),
        masks=MaskConfig(masks=(str(shot.ids),)), models=str(models_dir), device="cpu",
        propagate=PropagateConfig(size=-1, checkpoint_every=500), matte=MatteConfig(size=64)),
        progress=_sampler("write", samples))
    assert result.frames_written == 2000 and len(samples) == 2000
    growth = (max(samples[200:]) - samples[200]) / samples[200]
    assert growth < 0.05, f"RSS grew {growth:.1%} after the first 200 of 2,000 frames"
