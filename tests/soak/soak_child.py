"""Child process of the soak test: ``pipeline.run`` over a long tiny shot with stand-in networks.

Run as ``python soak_child.py PLATE IDS OUT MODELS``; prints one JSON object: samples of
(frame, RSS bytes, open fds, threads) taken every ``SAMPLE_EVERY`` frames of each stage, and the
result. The stand-ins (as ``bench/bench_overhead.py``'s) do no arithmetic: XMem returns the
keyframe's guidance, MaGGIe its guidance masks, so everything else is the real pipeline code:
decoding, colour, resizing, ID maps, checkpoints, windows, EXR writes, locks.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

SAMPLE_EVERY = 250


class StandInXMemProcessor:
    """XMemProcessor's interface; every step returns the last keyframe's one-hot guidance."""

    def __init__(self, net: Any = None, config: Any = None, **_: Any) -> None:
        self._probs: Any = None

    @classmethod
    def restore(cls, net: Any, config: Any, snapshot: Any) -> StandInXMemProcessor:
        return cls(net, config)

    def set_all_labels(self, labels: list[int]) -> None:
        pass

    @property
    def all_labels(self) -> list[int]:
        return []

    def step(self, image: Any, mask: Any = None, valid: Any = None, end: bool = False) -> Any:
        import torch

        if mask is not None:
            self._probs = torch.cat([1 - mask.amax(0, keepdim=True), mask])  # (K+1, h, w)
        return self._probs

    def snapshot(self) -> Any:
        return SimpleNamespace(to_dict=dict)


class StandInMaggie:
    """MaGGIe's interfaces (``forward``, split encode/decode); returns the guidance."""

    is_video = True

    def __call__(self, image: Any, mask: Any) -> Any:
        return self.forward(image, mask)

    def forward(self, image: Any, mask: Any) -> Any:
        import torch

        batch, frames = mask.shape[:2]
        zeros = torch.zeros((batch, frames, 1, *mask.shape[-2:]))
        return SimpleNamespace(refined=mask.float(), diff_forward=zeros, diff_backward=zeros)

    def encode_frames(self, image: Any, masks: Any) -> Any:
        return masks

    def decode_frames(self, features: Any, masks: Any) -> Any:
        return self.forward(None, masks)


def _empty_network() -> Any:
    """A stand-in XMem: an empty module (the driver walks its modules for the filter cache)."""
    import torch

    return torch.nn.Module()


def patch_networks() -> None:
    """Replace the networks and their loaders in every loaded actormatte module."""
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("actormatte"):
            continue
        if hasattr(module, "XMemProcessor"):
            module.XMemProcessor = StandInXMemProcessor
        if hasattr(module, "load_xmem"):
            module.load_xmem = lambda *a, **k: _empty_network()
        if hasattr(module, "load_maggie"):
            module.load_maggie = lambda *a, **k: StandInMaggie()
        if hasattr(module, "weights_sha256"):
            module.weights_sha256 = lambda *a, **k: "0" * 64
        features = getattr(module, "FrameFeatures", None)
        if features is not None and hasattr(features, "cat"):
            features.cat = staticmethod(lambda parts: parts[-1])


def usage() -> tuple[int, int, int]:
    """(RSS bytes, open fds, threads) of this process, from /proc."""
    rss = threads = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, len(os.listdir("/proc/self/fd")), threads


def main() -> None:
    """Run the shot and print the samples."""
    import actormatte.cli.main  # noqa: F401 - import everything the pipeline uses
    from actormatte import pipeline
    from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig
    from actormatte.progress import ProgressEvent

    plate, ids, out, models = sys.argv[1:5]
    patch_networks()
    samples: list[dict[str, Any]] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def progress(event: ProgressEvent) -> None:
        if event.done % SAMPLE_EVERY == 0 or event.done == event.total:
            rss, fds, threads = usage()
            with lock:
                samples.append({"stage": event.stage, "done": event.done, "rss": rss,
                                "fds": fds, "threads": threads,
                                "t": round(time.perf_counter() - start, 2)})

    options = pipeline.RunOptions(
        plate=plate, out=out, masks=MaskConfig(masks=(ids,)), models=models, device="cpu",
        propagate=PropagateConfig(size=-1, checkpoint_every=100),
        matte=MatteConfig(size=32), export=ExportConfig())
    rss0, fds0, threads0 = usage()
    result = pipeline.run(options, progress=progress)
    json.dump({"frames_written": result.frames_written, "samples": samples,
               "start": {"rss": rss0, "fds": fds0, "threads": threads0},
               "wall": round(time.perf_counter() - start, 1)}, sys.stdout)


if __name__ == "__main__":
    main()
