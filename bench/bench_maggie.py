"""Benchmark one MaGGIe video forward: 5 frames x 3 instances at 576x1024.

CPU (default 2 threads, frozen spectral norm, generated weights): seconds per forward (median
of --repeat) and the process's peak RSS. With CUDA available, also fp32 and autocast-fp16
forwards: seconds per frame, peak VRAM and the fp16 deviation from fp32.

    .venv/bin/python bench/bench_maggie.py [--threads 2] [--repeat 3] [--weights W.safetensors]

The official code takes 23.5 s and 3.46 GB for this forward on the 2-core dev machine
(MAGGIE_SPEC §19, 1 thread). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "core"))
sys.path.insert(0, str(ROOT / "tests"))

from actormatte.matting import load_maggie  # noqa: E402
from actormatte.matting.model import MaggieNetwork  # noqa: E402


def synthetic_clip(frames: int, num: int, height: int, width: int,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth random frames and moving elliptic actor masks (1, T, ...)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(1, frames, 3, height // 16, width // 16, generator=gen)
    image = torch.nn.functional.interpolate(image[0], size=(height, width), mode="bilinear")
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = torch.zeros(1, frames, num, height, width)
    for t in range(frames):
        for j in range(num):
            cy = height * (0.45 + 0.05 * j) + 4 * t
            cx = width * (0.2 + 0.3 * j) + 6 * t
            ry, rx = height * 0.3, width * 0.08
            masks[0, t, j] = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()
    return image.unsqueeze(0), masks


def peak_rss_gb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def time_forward(net: MaggieNetwork, image: torch.Tensor, masks: torch.Tensor, repeat: int,
                 cuda: bool = False, fp16: bool = False) -> tuple[list[float], torch.Tensor]:
    times, refined = [], None
    for _ in range(repeat):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast("cuda", torch.float16, enabled=fp16):
            out = net(image, masks)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        refined = out.refined.float()
        del out
    assert refined is not None
    return times, refined


def bench_cpu(weights: Path, args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    net = load_maggie(weights, "video", spectral_norm="frozen")
    image, masks = synthetic_clip(args.frames, args.instances, args.height, args.width)
    rss_loaded = peak_rss_gb()
    times, refined = time_forward(net, image, masks, args.repeat)
    print(f"CPU, {args.threads} threads, {args.frames} frames x {args.instances} instances at "
          f"{args.height}x{args.width}, frozen spectral norm")
    print(f"  forward seconds: median {statistics.median(times):.2f} "
          f"(runs {', '.join(f'{t:.2f}' for t in times)}); "
          f"{statistics.median(times) / args.frames:.2f} s/frame")
    print(f"  peak RSS: {peak_rss_gb():.2f} GB (after loading the model and inputs: "
          f"{rss_loaded:.2f} GB)")
    print(f"  mean refined alpha {refined.mean():.4f}")


def bench_cuda(weights: Path, args: argparse.Namespace) -> None:
    device = torch.device("cuda")
    net = load_maggie(weights, "video", spectral_norm="frozen", device=device)
    image, masks = synthetic_clip(args.frames, args.instances, args.height, args.width)
    image, masks = image.to(device), masks.to(device)
    time_forward(net, image, masks, 1, cuda=True)  # warm-up
    reference: torch.Tensor | None = None
    for fp16 in (False, True):
        torch.cuda.reset_peak_memory_stats()
        try:
            times, refined = time_forward(net, image, masks, args.repeat, cuda=True, fp16=fp16)
        except (RuntimeError, TypeError) as exc:  # report, do not hide, a failing precision
            print(f"CUDA {'autocast fp16' if fp16 else 'fp32'}: failed: {exc}")
            continue
        if not fp16:
            reference = refined
        label = "autocast fp16" if fp16 else "fp32"
        line = (f"CUDA {label}: {statistics.median(times) / args.frames:.3f} s/frame, "
                f"peak VRAM {torch.cuda.max_memory_allocated() / 1024 ** 3:.2f} GB")
        if fp16 and reference is not None:
            line += f", max |fp16 - fp32| on refined {float((refined - reference).abs().max()):.4f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, help="video model.safetensors (default: generated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    weights = args.weights
    if weights is None:
        from conftest import maggie_weights  # the tests' deterministic generator and cache

        weights = maggie_weights("video", 1, "overrides_A.txt", 500)
    if not args.skip_cpu:
        bench_cpu(weights, args)
    if torch.cuda.is_available():
        bench_cuda(weights, args)
    else:
        print("CUDA: not available on this machine, skipped")


if __name__ == "__main__":
    main()
