"""End-to-end pipeline benchmark: seconds per frame for each stage (read, propagate, matte, write).

A synthetic 1920x1080 shot (24 frames, 3 moving actors, PNG) goes through ``pipeline.run`` for
each schedule (window5, reference) on the CPU, and on CUDA where torch sees a GPU. Weights are the
generated test weights (real architecture and size; their values do not change the cost) laid out
as a models folder, unless ``--models`` points at a real one.

Stage times are attributed from the progress events: the time since the previous event goes to
the stage of the current event, so ``propagate`` includes loading the networks (which happens
between the read check and the first propagated frame) and ``setup`` is everything before the
first event (validation, hashing the weights).

    .venv/bin/python bench/bench_pipeline.py [--frames 24] [--width 1920 --height 1080]
        [--schedules window5,reference] [--devices cpu,cuda] [--models DIR] [--threads N]

``--trees before=DIR,after=DIR`` instead times the ``matte`` stage alone (after an untimed
``propagate``) of each source tree in its own process (``PYTHONPATH=<tree>/core``), alternating
trees per ``--repeats``: process CPU seconds and wall seconds per output frame, their ratio, and
the largest difference between the two trees' EXRs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from actormatte import pipeline  # noqa: E402
from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig  # noqa: E402
from actormatte.progress import ProgressEvent  # noqa: E402


class StageClock:
    """Attributes wall time between progress events to the event's stage."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.last = self.start
        self.seconds: dict[str, float] = defaultdict(float)
        self.first_event: float | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = time.perf_counter()
        if self.first_event is None:
            self.first_event = now
            self.seconds["setup"] += now - self.start
            self.last = now
            return
        self.seconds[event.stage] += now - self.last
        self.last = now


def make_models(folder: Path) -> Path:
    """A models folder of generated weights (tests/conftest.py's cache)."""
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "tests" / "conftest.py")
    assert spec is not None and spec.loader is not None
    root_conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root_conftest)
    from support.shots import build_models_dir

    return build_models_dir(folder, root_conftest.maggie_weights, root_conftest.xmem_weights)


def bench(shot, models: Path, out: Path, schedule: str, device: str, size: int,
          xmem_size: int) -> tuple[dict[str, float], float]:
    clock = StageClock()
    options = pipeline.RunOptions(
        plate=shot.pattern, out=str(out), masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models), device=device, propagate=PropagateConfig(size=xmem_size),
        matte=MatteConfig(size=size, schedule=schedule), export=ExportConfig(overwrite=True))
    begin = time.perf_counter()
    result = pipeline.run(options, progress=clock)
    total = time.perf_counter() - begin
    assert result.frames_written == shot.last - shot.first + 1
    return dict(clock.seconds), total


def matte_child(args: argparse.Namespace) -> None:
    """Propagate (untimed), then time ``pipeline.matte``: wall and process CPU per frame."""
    import json
    import os

    import actormatte

    work = Path(args.child_dir) / "work"
    pipeline.propagate(pipeline.PropagateOptions(
        plate=args.plate, work=str(work), masks=MaskConfig(masks=(args.ids,)),
        models=str(args.models), device="cpu", propagate=PropagateConfig(size=args.xmem_size)))
    cpu0, wall0 = os.times(), time.perf_counter()
    result = pipeline.matte(pipeline.MatteOptions(
        work=str(work), out=str(Path(args.child_dir) / "out"), models=str(args.models),
        device="cpu", matte=MatteConfig(size=args.size), export=ExportConfig(overwrite=True)))
    wall, cpu1 = time.perf_counter() - wall0, os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    print(json.dumps({"tree": actormatte.__file__, "frames": result.frames_written,
                      "wall": wall, "cpu": cpu}))


def matte_side_by_side(args: argparse.Namespace) -> None:
    """``--trees``: the matte stage of each source tree on one shot, alternating, repeated."""
    import json
    import os
    import subprocess

    import numpy as np
    import OpenImageIO as oiio

    from support.shots import write_shot

    trees = dict(item.split("=", 1) for item in args.trees.split(","))
    with tempfile.TemporaryDirectory(prefix="bench_matte_") as tmp:
        root = Path(tmp)
        models = args.models or make_models(root / "models")
        shot = write_shot(root / "shot", args.frames, width=args.width, height=args.height,
                          actors=args.actors)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for repeat in range(args.repeats):
            order = list(trees.items())[::-1 if repeat % 2 else 1]
            for name, tree in order:
                env = dict(os.environ, PYTHONPATH=str(Path(tree).resolve() / "core"))
                command = [sys.executable, __file__, "--child-matte", str(root / name),
                           "--plate", shot.pattern, "--ids", str(shot.ids), "--models",
                           str(models), "--size", str(args.size), "--xmem-size",
                           str(args.xmem_size), "--threads", str(args.threads or 0)]
                done = subprocess.run(command, env=env, capture_output=True, text=True,
                                      check=False)
                if done.returncode:
                    raise SystemExit(f"{name}: the matte child failed\n{done.stderr[-3000:]}")
                runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"matte stage, {args.width}x{args.height}, {args.frames} frames, {args.actors} "
              f"actors, MaGGIe short side {args.size}, window5; per output frame, median of "
              f"{args.repeats}")
        for name in trees:
            cpu = np.median([r["cpu"] / r["frames"] for r in runs[name]])
            wall = np.median([r["wall"] / r["frames"] for r in runs[name]])
            print(f"  {name:10s} CPU {cpu:7.2f} s  wall {wall:7.2f} s")
        names = list(trees)
        if len(names) == 2:
            first, second = (np.median([r["cpu"] / r["frames"] for r in runs[n]]) for n in names)
            worst = 0.0
            for path in sorted((root / names[0] / "out").glob("*.exr")):
                a = oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)
                b = oiio.ImageBuf(str(root / names[1] / "out" / path.name)).get_pixels(oiio.FLOAT)
                worst = max(worst, float(np.abs(a - b).max()))
            print(f"  CPU ratio {names[1]}/{names[0]} = {second / first:.3f}; largest alpha "
                  f"difference between the trees' EXRs {worst:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=None,
                        help="name=path,... : time the matte stage of each source tree")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child-matte", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plate", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--actors", type=int, default=3)
    parser.add_argument("--size", type=int, default=576)
    parser.add_argument("--xmem-size", type=int, default=480)
    parser.add_argument("--schedules", default="window5,reference")
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_matte:
        args.child_dir = args.child_matte
        matte_child(args)
        return
    if args.trees:
        matte_side_by_side(args)
        return
    from support.shots import write_shot

    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        root = Path(tmp)
        models = args.models or make_models(root / "models")
        shot = write_shot(root / "shot", args.frames, width=args.width, height=args.height,
                          actors=args.actors)
        print(f"shot {args.width}x{args.height}, {args.frames} frames, {args.actors} actors; "
              f"MaGGIe short side {args.size}, XMem {args.xmem_size}; torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")
        devices = [d for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
        for device in devices:
            for schedule in args.schedules.split(","):
                seconds, total = bench(shot, models, root / f"out_{device}_{schedule}",
                                       schedule, device, args.size, args.xmem_size)
                per_frame = {k: v / args.frames for k, v in seconds.items()}
                stages = "  ".join(f"{k} {per_frame.get(k, 0.0):7.3f}"
                                   for k in ("setup", "read", "propagate", "matte", "write"))
                print(f"{device:4s} {schedule:9s} s/frame: {stages}  total "
                      f"{total / args.frames:7.3f}  ({total:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
