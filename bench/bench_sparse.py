"""Benchmark the pure-PyTorch sparse detail branch on a synthetic, realistically sparse case.

Random weights and features; the OS1 sites are boundary bands around random ellipses (one per
instance and frame), tuned to the requested site fraction. Prints time per call and the peak RSS
the call adds on top of its inputs.

    .venv/bin/python bench/bench_sparse.py --threads 2            # 576x1024, 5 frames x 3 inst
    .venv/bin/python bench/bench_sparse.py --max-sites 65536      # smaller chunks
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import psutil
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from actormatte.matting.sparse import DEFAULT_MAX_SITES, detail_layer_modules, predict_details


class _FFN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(64, 64), nn.Linear(64, 64)
        self.norm = nn.LayerNorm(64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(z + self.linear2(torch.relu(self.linear1(z))))


class _Layers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inst_spec_layer = _FFN()
        for name, module in detail_layer_modules():
            self.add_module(name, module)
        for name, tensor in self.state_dict(keep_vars=True).items():
            if name.endswith("running_var"):
                tensor.data.uniform_(0.8, 1.2)
            elif tensor.dim() >= 2:
                tensor.data.normal_(0.0, math.sqrt(2.0 / tensor[0].numel()))
            elif tensor.is_floating_point():
                tensor.data.normal_(0.0, 0.05)


def band_masks(frames: int, instances: int, height: int, width: int, band: int,
               generator: torch.Generator) -> torch.Tensor:
    """Boundary bands of random ellipses, (T, N, H, W) bool."""
    ys = torch.arange(height).view(-1, 1).float()
    xs = torch.arange(width).view(1, -1).float()
    masks = torch.zeros(frames, instances, height, width, dtype=torch.bool)
    for t in range(frames):
        for j in range(instances):
            cy, cx = (torch.rand(2, generator=generator) * 0.5 + 0.25).tolist()
            ry, rx = (torch.rand(2, generator=generator) * 0.2 + 0.2).tolist()
            inside = (((ys / height - cy) / ry) ** 2 + ((xs / width - cx) / rx) ** 2) <= 1.0
            eroded = -F.max_pool2d(-inside[None, None].float(), 2 * band + 1, 1, band)
            dilated = F.max_pool2d(inside[None, None].float(), 2 * band + 1, 1, band)
            masks[t, j] = (dilated - eroded)[0, 0] > 0
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--band", type=int, default=25, help="half-width of the site band, px")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-sites", type=int, default=DEFAULT_MAX_SITES)
    parser.add_argument("--subm3", choices=("auto", "tiles", "taps"), default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    t, n, h, w = args.frames, args.instances, args.height, args.width
    layers = _Layers().eval()
    unknown = band_masks(t, n, h, w, args.band, gen)
    feat_os8 = torch.randn(t, 64, h // 8, w // 8, generator=gen)
    kernels = torch.randn(t, n, 64, generator=gen)
    fea1 = torch.randn(t, 32, h, w, generator=gen)
    fea2 = torch.randn(t, 32, h // 2, w // 2, generator=gen)
    fea3 = torch.randn(t, 64, h // 4, w // 4, generator=gen)
    print(f"{t} frames x {n} instances at {h}x{w}, {args.threads} threads, subm3={args.subm3}: "
          f"{int(unknown.sum())} OS1 sites ({unknown.float().mean().item():.1%})")
    base_rss = psutil.Process().memory_info().rss
    times, cpu_times = [], []
    with torch.inference_mode():
        for _ in range(args.repeat):
            start, cpu_start = time.perf_counter(), time.process_time()
            predict_details(layers, feat_os8, kernels, fea1, fea2, fea3, unknown,
                            backend="torch", max_sites=args.max_sites, subm3=args.subm3)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"time per call: median {sorted(times)[len(times) // 2]:.2f} s "
          f"(runs {', '.join(f'{x:.2f}' for x in times)}); process CPU time median "
          f"{sorted(cpu_times)[len(cpu_times) // 2]:.2f} s (all threads; less load-sensitive)")
    print(f"inputs+model RSS {base_rss / 2**20:.0f} MB; peak RSS {peak_rss / 2**20:.0f} MB "
          f"(+{(peak_rss - base_rss) / 2**20:.0f} MB during the calls)")


if __name__ == "__main__":
    main()
