"""Where a window5 window's MaGGIe time goes: per-frame part (reusable) vs per-window part.

One thread (so thread CPU time is the cost), generated video weights, a 5-frame clip with 3
instances. Times: ``encode_frames`` per frame (encoder + ASPP + decoder trunk: computed once per
frame with encoder reuse), and the per-window rest split into the OS8 instance decoder
(attention + ConvGRU), the sparse detail branch (``predict_details``) and the remainder.

    .venv/bin/python bench/bench_matte_split.py [--height 288 --width 512] [--repeat 1]

``--side-by-side`` measures instead the real matte stage (``pipeline.matte`` on a propagated
synthetic shot, generated weights, ``--size`` = the plate's short side so nothing is resized)
in three modes alternating within one process (see :func:`side_by_side`): process CPU time per
output frame (all threads: reading, matting, EXR writes), the ratios, and the differences between
the runs' float32 EXRs.

    .venv/bin/python bench/bench_matte_split.py --side-by-side [--frames 14] [--repeat 2]

``--glue REV`` times the window runner's own work (inputs, masks, stacking, the temporal rule)
around a stand-in network at plate scale (``--height 576 --width 1024``, 3 actors), for
``windows.py`` of git revision ``REV`` and of the working tree alternately in one process.

    .venv/bin/python bench/bench_matte_split.py --glue HEAD --height 576 --width 1024
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import actormatte.matting.decoder as decoder_module  # noqa: E402
from actormatte.matting import load_maggie  # noqa: E402
from actormatte.matting.model import FrameFeatures  # noqa: E402

MODES = ("reuse", "whole", "recompute")


def side_by_side(args: argparse.Namespace) -> None:
    """Matte stage CPU per output frame in three modes, same shot, alternating in one process.

    ``reuse``: the default (``MatteConfig.encoder_reuse``); ``whole``: reuse off, whole-window
    forwards (what window5 did before reuse; batch-5 encodes round differently); ``recompute``:
    the split forward with each window encoding its frames again (the bits of ``reuse``, the
    encoder work of ``whole``): reuse vs recompute is the saving at equal outputs.
    """
    from actormatte import pipeline
    from actormatte.config import ExportConfig, MaskConfig, MatteConfig
    from actormatte.export import read_matte_exr
    from actormatte.matting.windows import WindowRunner
    from support.reference import maggie_weights, xmem_weights
    from support.shots import build_models_dir, write_shot

    reuse_window = WindowRunner.run_window

    def recompute_window(self: WindowRunner, session: Any, index: int) -> Any:
        session.features.clear()
        return reuse_window(self, session, index)

    with tempfile.TemporaryDirectory(prefix="bench_matte_reuse_") as name:
        tmp = Path(name)
        models = build_models_dir(tmp / "models", maggie_weights, xmem_weights)
        shot = write_shot(tmp / "plate", args.frames, args.width, args.height, actors=3)
        work = tmp / "work"
        pipeline.propagate(pipeline.PropagateOptions(
            plate=shot.pattern, work=str(work), masks=MaskConfig(masks=(str(shot.ids),)),
            models=str(models), device="cpu"))
        short = min(args.width, args.height)
        cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeat):
            for mode in (MODES if repeat % 2 == 0 else MODES[::-1]):
                config = MatteConfig(size=short, encoder_reuse=mode != "whole")
                options = pipeline.MatteOptions(
                    work=str(work), out=str(tmp / f"out_{mode}"), models=str(models),
                    device="cpu", matte=config, export=ExportConfig(overwrite=True, half=False))
                WindowRunner.run_window = (  # type: ignore[method-assign]
                    recompute_window if mode == "recompute" else reuse_window)
                before = os.times()
                result = pipeline.matte(options)
                after = os.times()
                WindowRunner.run_window = reuse_window  # type: ignore[method-assign]
                spent = (after.user - before.user) + (after.system - before.system)
                cpu[mode].append(spent / result.frames_written)
                print(f"repeat {repeat} {mode:9s}: {result.frames_written} frames, "
                      f"{spent:.2f} s CPU, {spent / result.frames_written * 1000:.0f} ms/frame",
                      flush=True)
        median = {k: float(np.median(v)) for k, v in cpu.items()}
        print(f"{args.width}x{args.height}, {args.frames} frames, 3 actors, torch threads "
              f"{torch.get_num_threads()}: matte CPU per output frame (median of {args.repeat})"
              + "".join(f", {mode} {median[mode] * 1000:.0f} ms" for mode in MODES))
        for mode in ("whole", "recompute"):
            worst, count, total = _differences(tmp / "out_reuse", tmp / f"out_{mode}",
                                               read_matte_exr)
            print(f"reuse / {mode} = {median['reuse'] / median[mode]:.3f}; max |reuse - {mode}| "
                  f"{worst:.2e}, {count} of {total} values differ by more than 1e-5")


class _StandIn:
    """A stand-in video network: fixed outputs, its own CPU time counted apart."""

    def __init__(self, frames: int, actors: int, height: int, width: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.refined = torch.rand(1, frames, actors, height, width, generator=gen)
        self.refined = (self.refined * 4).round() / 4  # exact agreements, as in real mattes
        self.diffs = torch.rand(2, 1, frames, 1, height, width, generator=gen)
        self.spent = 0.0

    def __call__(self, image: torch.Tensor, masks: torch.Tensor) -> Any:
        begin = time.thread_time()
        out = type("Out", (), {})()
        out.refined = self.refined.clone()
        out.diff_forward, out.diff_backward = self.diffs[0], self.diffs[1]
        self.spent += time.thread_time() - begin
        return out


class _GlueClip:
    """A ClipSource with frames and ID maps in memory (3 actors side by side)."""

    def __init__(self, frames: int, height: int, width: int) -> None:
        gen = torch.Generator().manual_seed(1)
        self.num_frames = frames
        self.actor_ids = [1, 2, 3]
        self._image = torch.randn(3, height, width, generator=gen)
        self._ids = torch.zeros(height, width, dtype=torch.int64)
        for k in range(3):
            left, right = (2 * k + 1) * width // 7, (2 * k + 2) * width // 7
            self._ids[height // 4:3 * height // 4, left:right] = k + 1

    def image(self, index: int) -> torch.Tensor:
        return self._image.clone()

    def ids(self, index: int) -> torch.Tensor:
        return self._ids.clone()

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        return alpha


def glue(args: argparse.Namespace) -> None:
    """Runner CPU per window around a stand-in network: ``windows.py`` at REV vs now."""
    import actormatte.matting.windows as current

    source = subprocess.run(["git", "show", f"{args.glue}:core/actormatte/matting/windows.py"],
                            cwd=ROOT, check=True, capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("windows_before", loader=None)
    assert spec is not None
    before = importlib.util.module_from_spec(spec)
    sys.modules["windows_before"] = before  # dataclasses look their module up
    exec(compile(source, "windows_before.py", "exec"), before.__dict__)  # noqa: S102
    modules = {"before": before, "now": current}
    clip = _GlueClip(args.frames, args.height, args.width)
    net = _StandIn(5, 3, args.height, args.width)
    spent: dict[str, list[float]] = {name: [] for name in modules}
    results: dict[str, dict[int, torch.Tensor]] = {}
    for repeat in range(args.repeat):
        for name in (modules if repeat % 2 == 0 else list(modules)[::-1]):
            runner = modules[name].WindowRunner(net, None)
            windows = len(runner.windows_needed(clip.num_frames, range(clip.num_frames)))
            net.spent = 0.0
            begin = time.thread_time()
            results[name] = dict(runner.run(clip, range(clip.num_frames)))
            total = time.thread_time() - begin - net.spent
            spent[name].append(total / windows)
            print(f"repeat {repeat} {name:6s}: {total / windows * 1000:.0f} ms CPU per window",
                  flush=True)
    median = {k: float(np.median(v)) for k, v in spent.items()}
    same = all(torch.equal(results["before"][i], results["now"][i]) for i in results["now"])
    print(f"{args.width}x{args.height}, 3 actors, {args.frames} frames, 1 thread: runner CPU "
          f"per window (stand-in network excluded, median of {args.repeat}): {args.glue} "
          f"{median['before'] * 1000:.0f} ms, now {median['now'] * 1000:.0f} ms "
          f"({median['now'] / median['before']:.2f}x); same alphas: {same}")


def _differences(left: Path, right: Path, read: Any) -> tuple[float, int, int]:
    worst, count, total = 0.0, 0, 0
    for path in sorted(left.glob("*.exr")):
        ours, _ = read(path)
        theirs, _ = read(right / path.name)
        for layer, alpha in ours.items():
            delta = np.abs(alpha - theirs[layer])
            worst = max(worst, float(delta.max()))
            count += int((delta > 1e-5).sum())
            total += delta.size
    return worst, count, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--side-by-side", action="store_true",
                        help="pipeline.matte with encoder reuse on and off")
    parser.add_argument("--frames", type=int, default=14,
                        help="shot length (--side-by-side, --glue)")
    parser.add_argument("--glue", metavar="REV",
                        help="runner glue of windows.py at git REV vs the working tree")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.glue:
        glue(args)
        return
    if args.side_by_side:
        side_by_side(args)
        return
    from support.reference import maggie_weights

    net = load_maggie(maggie_weights("video", 1, "overrides_A.txt", sn_power_iters=500))
    frames, height, width = 5, args.height, args.width
    image = torch.randn(frames, 3, height, width, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(frames, 3, height, width)
    for k in range(3):
        left, right = (2 * k + 1) * width // 7, (2 * k + 2) * width // 7
        masks[:, k, height // 4:3 * height // 4, left:right] = 1
    spent = {"details": 0.0, "coarse": 0.0}
    original_details = decoder_module.predict_details
    original_coarse = decoder_module.MaggieDecoder.coarse

    def timed_details(*a: object, **k: object) -> object:
        begin = time.thread_time()
        try:
            return original_details(*a, **k)
        finally:
            spent["details"] += time.thread_time() - begin

    def timed_coarse(self: object, *a: object) -> object:
        begin = time.thread_time()
        try:
            return original_coarse(self, *a)
        finally:
            spent["coarse"] += time.thread_time() - begin

    decoder_module.predict_details = timed_details  # type: ignore[assignment]
    decoder_module.MaggieDecoder.coarse = timed_coarse  # type: ignore[method-assign]
    with torch.inference_mode():
        for _ in range(args.repeat):
            spent.update(details=0.0, coarse=0.0)
            begin = time.thread_time()
            parts = [net.encode_frames(image[i:i + 1], masks[i:i + 1]) for i in range(frames)]
            encode = time.thread_time() - begin
            begin = time.thread_time()
            net.decode_frames(FrameFeatures.cat(parts), masks[None])
            decode = time.thread_time() - begin
            total = encode + decode
            rest = decode - spent["details"] - spent["coarse"]
            print(f"{width}x{height}, 5 frames, 3 instances, 1 thread: window {total:.2f} s = "
                  f"per-frame part {encode:.2f} s ({encode / total:.0%}, {encode / frames:.2f} "
                  f"s/frame) + OS8 decoder {spent['coarse']:.2f} s "
                  f"({spent['coarse'] / total:.0%}) + sparse detail branch "
                  f"{spent['details']:.2f} s ({spent['details'] / total:.0%}) + rest "
                  f"{rest:.2f} s ({rest / total:.0%})")
            print(f"window5 per output frame: before {total / 3:.2f} s, with reuse "
                  f"{(encode / frames * 3 + decode) / 3:.2f} s "
                  f"({(encode / frames * 3 + decode) / total:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
