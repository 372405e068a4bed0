"""Benchmark XMem propagation: per-frame seconds and peak RSS (CPU), and a CUDA section.

Usage:
    .venv/bin/python bench/bench_xmem.py [--frames 20] [--size 480x854] [--objects 2]
        [--threads 2] [--weights XMem.pth]

Without --weights the deterministic generated weights (seed 1, stable profile) are used.
Eval defaults (top_k 30, mem_every 5, ...), fp32. The CPU section also splits the time of
frames 1.. by stage (key encoder, memory read, decoder, value encoder, memory write, the rest),
timed by wrapping the stage methods of this run's network and memory manager. The CUDA section
(fp32 and autocast fp16, s/frame and max deviation from fp32) runs only where torch sees a GPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch

from actormatte.propagation import XMemConfig, XMemProcessor, load_xmem

ROOT = Path(__file__).resolve().parent.parent
XMEM_REF = ROOT.parent / "shared" / "reference" / "xmem"


def default_weights() -> Path:
    out = ROOT / ".cache" / "bench" / "xmem_seed1.pth"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(XMEM_REF / "gen_weights.py"),
                        str(XMEM_REF / "xmem_state.tsv"), "--seed", "1", "--profile", "stable",
                        "--out", str(out)], check=True)
    return out


class LazyFrames:
    """Frames made on demand (so the benchmark's RSS is XMem's, not the test video's)."""

    def __init__(self, base: torch.Tensor, frames: int) -> None:
        self.base, self.frames = base, frames

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, t: int) -> torch.Tensor:
        return self.base.roll(4 * t, dims=2)

    def __iter__(self):  # noqa: ANN204
        return (self[t] for t in range(self.frames))


def synthetic_shot(frames: int, height: int, width: int, objects: int
                   ) -> tuple[LazyFrames, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.randn(1, 3, height // 16, width // 16,
                                                       generator=gen),
                                           size=(height, width), mode="bilinear")[0]
    images = LazyFrames(base, frames)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    mask = torch.zeros(objects, height, width)
    for i in range(objects):
        cy, cx = height * (i + 1) / (objects + 1), width * (i + 1) / (objects + 1)
        mask[i] = (((yy - cy) / (height / 5)) ** 2 + ((xx - cx) / (width / 8)) ** 2 < 1).float()
    return images, mask


STAGES = {"key encoder": "encode_key", "memory read": "match_memory", "decoder": "segment",
          "value encoder": "encode_value", "memory write": "add_memory"}


class StageTimer:
    """Accumulates wall time per stage by wrapping stage methods on one network/memory instance."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.calls = dict.fromkeys(STAGES, 0)
        self.enabled = False
        self.wrapped: list[tuple[Any, str]] = []

    def wrap(self, owner: Any, stage: str) -> None:
        inner: Callable[..., Any] = getattr(owner, STAGES[stage])

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = inner(*args, **kwargs)
            if self.enabled:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1
            return out

        setattr(owner, STAGES[stage], timed)  # instance attribute: shadows the method
        self.wrapped.append((owner, STAGES[stage]))

    def unwrap(self) -> None:
        for owner, name in self.wrapped:
            delattr(owner, name)
        self.wrapped.clear()

    def report(self, total: float, frames: int) -> str:
        rows = [f"  stages over frames 1..{frames} (s/frame; calls; s/call):"]
        for stage, sec in self.seconds.items():
            per_call = sec / self.calls[stage] if self.calls[stage] else 0.0
            rows.append(f"    {stage:<14} {sec / frames:6.3f}  {self.calls[stage]:3d}  "
                        f"{per_call:6.3f}")
        rest = total - sum(self.seconds.values())
        rows.append(f"    {'rest':<14} {rest / frames:6.3f}")
        return "\n".join(rows)


def run(net: torch.nn.Module, images: LazyFrames, mask: torch.Tensor,
        device: torch.device, autocast: bool = False, timer: StageTimer | None = None
        ) -> tuple[list[float], list[torch.Tensor]]:
    proc = XMemProcessor(net, XMemConfig().for_shot(len(images)))  # type: ignore[arg-type]
    proc.set_all_labels(list(range(1, mask.shape[0] + 1)))
    if timer is not None:
        for stage in STAGES:
            timer.wrap(proc.memory if stage.startswith("memory") else net, stage)
    times, outs = [], []
    for t, image in enumerate(images):
        if timer is not None:
            timer.enabled = t > 0
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=autocast):
            prob = proc.step(image.to(device), mask.to(device) if t == 0 else None,
                             end=t == len(images) - 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        outs.append(prob.float().cpu())
    return times, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", default="480x854")
    ap.add_argument("--objects", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    height, width = (int(s) for s in args.size.split("x"))
    weights = args.weights or default_weights()
    images, mask = synthetic_shot(args.frames, height, width, args.objects)
    rss_base = psutil.Process().memory_info().rss
    net = load_xmem(weights)
    rss_model = psutil.Process().memory_info().rss
    timer = StageTimer()
    cpu_start = time.process_time()
    times, cpu_outs = run(net, images, mask, torch.device("cpu"), timer=timer)
    cpu_seconds = time.process_time() - cpu_start
    timer.unwrap()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"CPU {args.threads} threads, {height}x{width}, {args.objects} objects, "
          f"{args.frames} frames, fp32, torch {torch.__version__}")
    print("  per-frame s: " + " ".join(f"{s:.2f}" for s in times))
    print(f"  median {statistics.median(times):.2f} s/frame (frame 0 {times[0]:.2f} s); "
          f"peak RSS {peak / 2**30:.2f} GiB = {peak / 1e9:.2f} GB (after model load "
          f"{rss_model / 2**30:.2f} GiB, before {rss_base / 2**30:.2f} GiB)")
    print(f"  CPU time of all threads {cpu_seconds / len(times):.2f} s/frame (mean; compare "
          f"with {args.threads} x wall on a busy machine); load average {os.getloadavg()[0]:.1f}")
    print(timer.report(sum(times[1:]), len(times) - 1))
    if not torch.cuda.is_available():
        print("CUDA: not available on this machine, section skipped")
        return
    cuda = torch.device("cuda")
    net = net.to(cuda)
    for autocast in (False, True):
        run(net, LazyFrames(images.base, 3), mask, cuda, autocast)  # warm-up
        torch.cuda.reset_peak_memory_stats()
        times, outs = run(net, images, mask, cuda, autocast)
        dev = max(float((a - b).abs().max()) for a, b in zip(outs, cpu_outs, strict=True))
        print(f"CUDA {'autocast fp16' if autocast else 'fp32'}: median "
              f"{statistics.median(times):.3f} s/frame, max|dprob| vs CPU fp32 {dev:.2e}, "
              f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
