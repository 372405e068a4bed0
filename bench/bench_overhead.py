"""Pipeline overhead benchmark: the non-network time of ``pipeline.run`` per frame and stage.

The real pipeline runs with stand-in networks (XMem returns the keyframe's guidance, MaGGIe returns
its guidance masks; no arithmetic), so what is left is decoding, colour conversion, resizing and
normalising, upsampling and argmax, ID-map PNGs, matte transforms, EXR writes and the glue. Plates
are synthetic: 3 actors, sRGB 8-bit PNG and ACEScg half-float ZIP EXR, at 1080p and 4K.

Stage times are exclusive wall times of the functions each stage consists of (nested calls are
subtracted from their callers, per thread), so in a run that overlaps IO with compute the stage
sum can exceed the wall time. ``critical`` is the run's wall time per frame: what a user waits
for, i.e. the critical path as it ran; ``cpu`` is the process's CPU time per frame (all threads).

Every tree is run in its own subprocess with ``PYTHONPATH=<tree>/core``; trees alternate within a
repeat so noise on a shared machine hits them alike: compare the ratios, not absolute figures.

    git worktree add --detach /tmp/am-before <commit>
    .venv/bin/python bench/bench_overhead.py --trees before=/tmp/am-before,after=. \
        [--sizes 1080p,4k] [--formats png,exr] [--frames 8] [--frames-4k 5] [--repeats 1]

Per-frame totals of a short run include its one-off costs (keyframes, the job and checkpoint
files, the first frames before the overlap starts, the last writes after it): ``--frames 6,14``
runs both counts and prints the slope between them, the steady-state cost of one more frame.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

SIZES = {"1080p": (1920, 1080), "4k": (3840, 2160)}
ROOT = Path(__file__).resolve().parent.parent

#: (module, attribute path, stage). Missing ones are skipped, so any commit can be timed.
TIMED = [
    ("actormatte.io.image_sequence", "ImageSequencePlate.read", "decode"),
    ("actormatte.io.image_sequence", "ImageSequencePlate.read_uint8_or_float", "decode"),
    ("actormatte.io.colour", "ColourConverter.to_uint8", "colour"),
    ("actormatte.shot", "read_check", "read_check"),
    ("actormatte.shot", "check_frames_cheaply", "validate"),
    ("actormatte.propagate", "Propagator._image", "xmem_pre"),
    ("actormatte.propagate", "Propagator._to_ids", "xmem_post"),
    ("actormatte.propagate", "Propagator._resize_mask", "xmem_pre"),
    ("actormatte.propagation.preprocess", "prepare_xmem_frame", "xmem_pre"),
    ("actormatte.propagation.preprocess", "probs_to_labels", "xmem_post"),
    ("actormatte.jobs", "WorkFolder.write_mask", "idmap_write"),
    ("actormatte.jobs", "WorkFolder.read_mask", "idmap_read"),
    ("actormatte.matte", "ShotClipSource.image", "matte_pre"),
    ("actormatte.matte", "ShotClipSource.ids", "matte_pre"),
    ("actormatte.matte", "ShotClipSource.reverse", "matte_post"),
    ("actormatte.matte", "ShotClipSource.finish", "matte_post"),
    ("actormatte.matting.windows", "WindowRunner._matte_window", "matte_glue"),
    ("actormatte.export.exr", "MatteWriter.write", "exr_write"),
    ("actormatte.export.exr", "MatteWriter.is_complete", "exr_check"),
]
STAGE_ORDER = ["decode", "colour", "read_check", "validate", "xmem_pre", "xmem_post",
               "idmap_write", "idmap_read", "matte_pre", "matte_glue", "matte_post", "exr_write",
               "exr_check", "network", "other"]


# --------------------------------------------------------------------------- child: timers
class Timers:
    """Exclusive wall time per stage, nested calls subtracted per thread."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.main_thread: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = timers._local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            begin = timers._clock()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = timers._clock() - begin
                children = stack.pop()
                if stack:
                    stack[-1] += elapsed
                with timers._lock:
                    timers.seconds[stage] += elapsed - children
                    timers.calls[stage] += 1
                    if threading.current_thread() is threading.main_thread():
                        timers.main_thread[stage] += elapsed - children

        timed.__wrapped__ = fn  # type: ignore[attr-defined]
        return timed


def _patch_timers(timers: Timers) -> list[str]:
    import importlib

    found = []
    for module_name, attr_path, stage in TIMED:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: Any = module
        parts = attr_path.split(".")
        for part in parts[:-1]:
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is None or not hasattr(owner, parts[-1]):
            continue
        original = getattr(owner, parts[-1])
        wrapped = timers.wrap(original, stage)
        setattr(owner, parts[-1], wrapped)
        if owner is module:  # rebind module-level functions imported by name elsewhere
            for other in list(sys.modules.values()):
                if (other is not None and getattr(other, "__name__", "").startswith("actormatte")
                        and getattr(other, parts[-1], None) is original):
                    setattr(other, parts[-1], wrapped)
        found.append(f"{module_name}.{attr_path}")
    return found


# --------------------------------------------------------------------------- child: stand-ins
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
    """MaGGIe's interfaces: ``forward`` and the split encode/decode; returns the guidance."""

    def __init__(self, timers: Timers) -> None:
        self._timers = timers
        self.forward = timers.wrap(self._forward, "network")
        self.__call__ = self.forward
        self.encode_frames = timers.wrap(self._encode, "network")
        self.decode_frames = timers.wrap(self._decode, "network")
        self.is_video = True

    def _forward(self, image: Any, mask: Any) -> Any:
        import torch

        batch, frames = mask.shape[:2]
        zeros = torch.zeros((batch, frames, 1, *mask.shape[-2:]))
        return SimpleNamespace(refined=mask.float(), diff_forward=zeros, diff_backward=zeros)

    def _encode(self, image: Any, masks: Any) -> Any:
        return masks

    def _decode(self, features: Any, masks: Any) -> Any:
        return self._forward(None, masks)


def _empty_module() -> Any:
    import torch

    return torch.nn.Module()


def _patch_networks(timers: Timers) -> None:
    import actormatte

    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("actormatte"):
            continue
        if hasattr(module, "XMemProcessor"):
            module.XMemProcessor = StandInXMemProcessor
        if hasattr(module, "load_xmem"):
            # An empty module: the driver may walk its modules (the Winograd filter cache).
            module.load_xmem = timers.wrap(lambda *a, **k: _empty_module(), "network")
        if hasattr(module, "load_maggie"):
            module.load_maggie = timers.wrap(lambda *a, **k: StandInMaggie(timers), "network")
        if hasattr(module, "weights_sha256"):
            module.weights_sha256 = lambda *a, **k: "0" * 64
        features = getattr(module, "FrameFeatures", None)
        if features is not None and hasattr(features, "cat"):
            features.cat = staticmethod(lambda parts: parts[-1])
    del actormatte


def _models_dir(root: Path) -> Path:
    """Sparse files of the registered sizes (the loaders are stand-ins; nothing reads them)."""
    from actormatte.weights import get_model

    for name in ("xmem", "maggie-video", "maggie-image"):
        for weight in get_model(name).files:
            path = root / weight.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.truncate(weight.size or weight.approx_size or 1 << 20)
    return root


def child(args: argparse.Namespace) -> None:
    import actormatte
    import actormatte.cli.main  # noqa: F401 - import everything the pipeline uses
    from actormatte import pipeline
    from actormatte.config import ExportConfig, MaskConfig, ReadConfig

    if args.clock == "cpu":  # each stage's own CPU; torch ops then run on the calling thread
        import torch

        torch.set_num_threads(1)
    timers = Timers(time.thread_time if args.clock == "cpu" else time.perf_counter)
    found = _patch_timers(timers)
    _patch_networks(timers)
    models = _models_dir(Path(args.tmp) / "models")
    span = (1001, 1000 + int(args.frames))
    options = pipeline.RunOptions(
        plate=args.plate, out=args.out, masks=MaskConfig(masks=(args.ids,)), models=str(models),
        device="cpu", read=ReadConfig(input_colorspace=args.colorspace),
        export=ExportConfig(overwrite=True), frames=span)
    cpu0, wall0 = os.times(), time.perf_counter()
    result = pipeline.run(options)
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    frames = result.frames_written
    assert frames == int(args.frames), (frames, args.frames)
    stages, main, calls = dict(timers.seconds), dict(timers.main_thread), dict(timers.calls)
    # A second run over complete outputs: what it costs (should decode nothing).
    again0 = time.perf_counter()
    pipeline.run(pipeline.RunOptions(
        plate=args.plate, out=args.out, masks=MaskConfig(masks=(args.ids,)), models=str(models),
        device="cpu", read=ReadConfig(input_colorspace=args.colorspace), frames=span))
    rerun = time.perf_counter() - again0
    json.dump({"tree": actormatte.__file__, "timed": found, "frames": frames, "wall": wall,
               "cpu": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
               "stages": stages, "main": main, "calls": calls, "rerun_wall": rerun,
               "rerun_decodes": timers.calls.get("decode", 0) - calls.get("decode", 0)},
              sys.stdout)


# --------------------------------------------------------------------------- parent
def _draw(index: int, width: int, height: int, actors: int) -> tuple[np.ndarray, np.ndarray]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.shots import draw_frame

    return draw_frame(index, width, height, actors)


def write_plates(folder: Path, size: str, fmt: str, frames: int, actors: int) -> tuple[str, str]:
    """The plate pattern and the keyframe ID map of a synthetic shot."""
    import cv2
    import OpenImageIO as oiio

    width, height = SIZES[size]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        rgb, ids = _draw(index, width, height, actors)
        if index == 0:
            cv2.imwrite(str(folder / "ids.png"), ids)
        path = folder / f"plate.{1001 + index:04d}.{fmt}"
        if fmt == "png":
            cv2.imwrite(str(path), rgb[:, :, ::-1])
            continue
        linear = ((rgb.astype(np.float32) / 255.0) ** 2.2 * 1.4).astype(np.float16)  # "ACEScg"
        spec = oiio.ImageSpec(width, height, 3, oiio.HALF)
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(path))
        out.open(str(path), spec)
        out.write_image(linear)
        out.close()
    return str(folder / f"plate.####.{fmt}"), str(folder / "ids.png")


def run_child(tree: Path, plate: str, ids: str, colorspace: str, frames: int,
              tmp: Path, clock: str = "wall") -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree / "core"))
    shutil.rmtree(tmp, ignore_errors=True)  # a fresh run: no work folder or output to reuse
    out = tmp / "out"
    command = [sys.executable, __file__, "--child", "--plate", plate, "--ids", ids,
               "--colorspace", colorspace, "--frames", str(frames), "--out", str(out),
               "--tmp", str(tmp), "--clock", clock]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: child failed\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not str(result["tree"]).startswith(str(tree.resolve())):
        raise SystemExit(f"{tree}: imported actormatte from {result['tree']}")
    return result


Result = dict[str, Any]


def _rows() -> list[tuple[str, Callable[[Result], float]]]:
    """(label, seconds of one run) for each reported row."""

    def other(r: Result) -> float:
        return float(r["wall"] - sum(r["main"].values()))

    rows: list[tuple[str, Callable[[Result], float]]] = [
        (stage, lambda r, s=stage: float(r["stages"].get(s, 0.0))) for stage in STAGE_ORDER[:-1]]
    rows += [("other(main)", other),
             ("stage sum", lambda r: sum(r["stages"].values()) - r["stages"].get("network", 0.0)
              + max(other(r), 0.0)),
             ("critical", lambda r: r["wall"] - r["main"].get("network", 0.0)),
             ("cpu", lambda r: float(r["cpu"])), ("rerun", lambda r: float(r["rerun_wall"]))]
    return rows


def report(name: str, results: dict[str, dict[int, list[Result]]]) -> None:
    """Per frame at each frame count (totals: one-off costs included) and the slope between
    the two counts (the steady state: each further frame's cost, one-off costs cancelled)."""
    trees = list(results)
    counts = sorted(results[trees[0]])
    pair = len(trees) == 2
    heads = [f"{t}@{n}" for n in counts for t in trees]
    if len(counts) == 2:
        heads += [f"{t} slope" for t in trees]
    print(f"\n== {name}: non-network ms per frame (median of {len(results[trees[0]][counts[0]])}"
          f"; @N = total of an N-frame run / N; slope = (T[{counts[-1]}] - T[{counts[0]}]) / "
          f"{counts[-1] - counts[0]}) ==")
    ratio_head = "   ratio" * (len(counts) + (len(counts) == 2)) if pair else ""
    print(f"{'stage':12s}" + "".join(f"{h:>12s}" for h in heads) + ratio_head)

    def median(tree: str, count: int, key: Callable[[Result], float]) -> float:
        return float(np.median([key(r) for r in results[tree][count]]))

    for label, key in _rows():
        columns: list[list[float]] = [
            [median(t, n, key) / n * 1000.0 for t in trees] for n in counts]
        if len(counts) == 2:
            low, high = counts
            columns.append([(median(t, high, key) - median(t, low, key)) / (high - low) * 1000.0
                            for t in trees])
        values = [v for column in columns for v in column]
        if label in STAGE_ORDER and not any(abs(v) > 0.05 for v in values):
            continue
        ratios = "".join(f"{c[1] / c[0]:8.2f}" if c[0] > 0 else f"{'':8s}"
                         for c in columns) if pair else ""
        print(f"{label:12s}" + "".join(f"{v:12.1f}" for v in values) + ratios)
    last = counts[-1]
    print("decodes per frame: " + "  ".join(
        f"{t} {results[t][last][0]['calls'].get('decode', 0) / results[t][last][0]['frames']:.2f}"
        for t in trees) + "; decodes in a rerun over complete outputs: " + "  ".join(
        f"{t} {results[t][last][0]['rerun_decodes']}" for t in trees))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=f"current={ROOT}",
                        help="name=path,... of source trees (each with core/)")
    parser.add_argument("--sizes", default="1080p,4k")
    parser.add_argument("--formats", default="png,exr")
    parser.add_argument("--frames", default="8",
                        help="frames at 1080p; two counts (A,B) also print the slope")
    parser.add_argument("--frames-4k", default="5", help="frames at 4K (A or A,B)")
    parser.add_argument("--actors", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="stage times as wall (default) or each thread's CPU time, torch "
                             "on one thread (what each stage costs, not what overlaps)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--plate", "--ids", "--colorspace", "--out", "--tmp"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    trees = {k: Path(v).resolve() for k, v in (item.split("=", 1)
                                                for item in args.trees.split(","))}
    print(f"trees: {', '.join(f'{k}={v}' for k, v in trees.items())}; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; {args.actors} actors; stand-in networks")
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp_name:
        tmp = Path(tmp_name)
        for size in args.sizes.split(","):
            spec = args.frames if size == "1080p" else args.frames_4k
            counts = sorted(int(n) for n in str(spec).split(","))
            for fmt in args.formats.split(","):
                plate, ids = write_plates(tmp / f"{size}_{fmt}", size, fmt, counts[-1],
                                          args.actors)
                colorspace = "ACEScg" if fmt == "exr" else "sRGB"
                results: dict[str, dict[int, list[Result]]] = {
                    name: {n: [] for n in counts} for name in trees}
                for repeat in range(args.repeats):
                    for count in counts:
                        order = list(trees.items())
                        if repeat % 2:
                            order.reverse()
                        for name, tree in order:
                            results[name][count].append(run_child(
                                tree, plate, ids, colorspace, count, tmp / f"run_{name}_{count}",
                                args.clock))
                report(f"{size} {fmt} ({colorspace}), {'/'.join(map(str, counts))} frames",
                       results)
                sys.stdout.flush()


if __name__ == "__main__":
    main()
