"""GPU figures in one run: MaGGIe forward, XMem per frame and end-to-end, per precision.

Called by bench/gpu_check.sh (which also runs ``pytest -m gpu``); writes ``gpu_bench.json`` and
``gpu_bench.md`` into ``--out``. Every section is timed and caught on its own: a failing
precision or backend is reported, never hidden, and the others still run.

* MaGGIe video forward, 5 frames x 3 instances at 576x1024, per precision (fp32, tf32, fp16,
  bf16) and sparse backend (torch, spconv): median s/forward, peak VRAM, deviation of ``refined``
  from fp32/torch, host syncs in one forward (``torch.cuda.set_sync_debug_mode``).
* XMem, 3 objects at 480x854: median s/frame and host syncs per frame, per precision.
* End to end, ``pipeline.run`` on a synthetic 1920x1080 shot with 3 actors, per precision.

``--device cpu --quick`` runs the same code at toy sizes on the CPU (the dry run of the script).

    python bench/gpu_bench.py --device cuda --out $OUT
    python bench/gpu_bench.py --device cpu --quick --out /tmp/gpu_dry
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "core"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_maggie import synthetic_clip  # noqa: E402

from actormatte.device import precision_context, precision_forward, resolve_precision  # noqa: E402
from actormatte.matting import load_maggie  # noqa: E402
from actormatte.matting.sparse_spconv import spconv_available  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_host_syncs(device: torch.device, fn: Callable[[], Any]) -> int | None:
    """Synchronising CUDA calls made by ``fn`` (None on the CPU, where there are none)."""
    if device.type != "cuda":
        fn()
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def timed(device: torch.device, fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall seconds of ``repeat`` calls (after the caller's warm-up) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times, result


def _peak_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 1024 ** 3 if device.type == "cuda" else None


def bench_maggie(device: torch.device, sizes: dict[str, int], precisions: list[str],
                 repeat: int) -> list[dict[str, Any]]:
    from support.reference import maggie_weights

    weights = maggie_weights("video", 1, "overrides_A.txt", 500)
    image, masks = synthetic_clip(sizes["frames"], sizes["instances"], sizes["height"],
                                  sizes["width"])
    image, masks = image.to(device), masks.to(device)
    backends = ["torch"] + (["spconv"] if spconv_available() else [])
    rows, reference = [], None
    for backend in backends:
        net = load_maggie(weights, "video", device=device, sparse_backend=backend)  # type: ignore[arg-type]
        for name in precisions:
            row: dict[str, Any] = {"section": "maggie", "backend": backend, "precision": name}
            try:
                forward = precision_forward(net, resolve_precision(name, device.type))

                def call(forward: Callable[..., Any] = forward) -> Any:
                    return forward(image, masks)

                with torch.inference_mode():
                    call()  # warm-up (cuDNN plans, allocator)
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats()
                    times, out = timed(device, call, repeat)
                    row["host_syncs_per_forward"] = count_host_syncs(device, call)
                refined = out.refined.float().cpu()
                if reference is None:
                    reference = refined
                diff = (refined - reference).abs()
                row.update(s_per_forward=statistics.median(times),
                           s_per_frame=statistics.median(times) / sizes["frames"],
                           peak_vram_gb=_peak_gb(device), max_dev_vs_fp32_torch=float(diff.max()),
                           mean_dev_vs_fp32_torch=float(diff.mean()))
            except Exception as exc:  # noqa: BLE001 - report a failing precision, keep going
                row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def bench_xmem(device: torch.device, sizes: dict[str, int], precisions: list[str]
               ) -> list[dict[str, Any]]:
    from actormatte.propagation import XMemConfig, XMemProcessor, load_xmem
    from support.reference import xmem_weights

    net = load_xmem(xmem_weights(1)).to(device)
    height, width, objects, frames = (sizes["xmem_height"], sizes["xmem_width"],
                                      sizes["instances"], sizes["xmem_frames"])
    gen = torch.Generator().manual_seed(0)
    clip = torch.randn(frames, 3, height, width, generator=gen).to(device)
    first_mask = torch.zeros(objects, height, width, device=device)
    for j in range(objects):
        first_mask[j, height // 4: 3 * height // 4, (j * width) // objects:
                   ((j + 1) * width) // objects] = 1.0
    rows = []
    for name in precisions:
        row: dict[str, Any] = {"section": "xmem", "precision": name}
        try:
            settings = resolve_precision(name, device.type)
            proc = XMemProcessor(net, XMemConfig())
            proc.set_all_labels(list(range(1, objects + 1)))
            times, syncs = [], []
            with torch.inference_mode(), precision_context(settings):
                for t in range(frames):
                    def step(t: int = t, proc: XMemProcessor = proc) -> Any:
                        return proc.step(clip[t], first_mask if t == 0 else None,
                                         end=t == frames - 1)
                    if t == frames - 1:
                        syncs.append(count_host_syncs(device, step))
                        continue
                    times += timed(device, step, 1)[0]
            steady = times[2:] or times
            row.update(s_per_frame=statistics.median(steady), frames=frames,
                       host_syncs_per_frame=syncs[0], peak_vram_gb=_peak_gb(device))
        except Exception as exc:  # noqa: BLE001
            row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def bench_end_to_end(device: torch.device, sizes: dict[str, int], precisions: list[str]
                     ) -> list[dict[str, Any]]:
    from actormatte import pipeline
    from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig
    from support.reference import maggie_weights, xmem_weights
    from support.shots import build_models_dir, write_shot

    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        root = Path(tmp)
        models = build_models_dir(root / "models", maggie_weights, xmem_weights)
        shot = write_shot(root / "shot", sizes["e2e_frames"], width=sizes["e2e_width"],
                          height=sizes["e2e_height"], actors=sizes["instances"])
        for name in precisions:
            row: dict[str, Any] = {"section": "end_to_end", "precision": name,
                                   "plate": f"{sizes['e2e_width']}x{sizes['e2e_height']}",
                                   "frames": sizes["e2e_frames"], "actors": sizes["instances"]}
            try:
                options = pipeline.RunOptions(
                    plate=shot.pattern, out=str(root / f"out_{name}"),
                    masks=MaskConfig(masks=(str(shot.ids),)), models=str(models),
                    device=device.type,
                    propagate=PropagateConfig(size=sizes["e2e_xmem_size"]),
                    matte=MatteConfig(size=sizes["e2e_matte_size"], precision=name),
                    export=ExportConfig(overwrite=True))
                start = time.perf_counter()
                result = pipeline.run(options)
                total = time.perf_counter() - start
                row.update(seconds=total, s_per_frame=total / sizes["e2e_frames"],
                           frames_written=result.frames_written)
            except Exception as exc:  # noqa: BLE001
                row["error"] = f"{type(exc).__name__}: {exc}"
                row["traceback"] = traceback.format_exc(limit=4)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
    return rows


SIZES = {
    "full": {"frames": 5, "instances": 3, "height": 576, "width": 1024, "xmem_height": 480,
             "xmem_width": 864, "xmem_frames": 24, "e2e_width": 1920, "e2e_height": 1080,
             "e2e_frames": 12, "e2e_matte_size": 576, "e2e_xmem_size": 480},
    "quick": {"frames": 2, "instances": 3, "height": 64, "width": 96, "xmem_height": 64,
              "xmem_width": 96, "xmem_frames": 4, "e2e_width": 96, "e2e_height": 64,
              "e2e_frames": 3, "e2e_matte_size": 64, "e2e_xmem_size": 64},
}


def markdown(report: dict[str, Any]) -> str:
    """The figures as markdown tables, for the issue note."""
    lines = [f"# GPU figures ({report['device']}, torch {report['torch']}, "
             f"{report['gpu'] or 'no GPU'})", "", f"sizes: `{json.dumps(report['sizes'])}`", ""]
    columns = {
        "maggie": ("backend", "precision", "s_per_forward", "s_per_frame", "peak_vram_gb",
                   "max_dev_vs_fp32_torch", "mean_dev_vs_fp32_torch", "host_syncs_per_forward"),
        "xmem": ("precision", "s_per_frame", "host_syncs_per_frame", "peak_vram_gb"),
        "end_to_end": ("precision", "plate", "frames", "actors", "s_per_frame", "seconds"),
    }
    for section, keys in columns.items():
        rows = [row for row in report["rows"] if row["section"] == section]
        if not rows:
            continue
        lines += [f"## {section}", "", "| " + " | ".join(keys) + " | error |",
                  "|" + "---|" * (len(keys) + 1)]
        for row in rows:
            cells = [f"{row[k]:.4g}" if isinstance(row.get(k), float) else str(row.get(k, ""))
                     for k in keys]
            lines.append("| " + " | ".join(cells) + f" | {row.get('error', '')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="toy sizes (the CPU dry run)")
    parser.add_argument("--sections", default="maggie,xmem,end_to_end")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_bench: torch sees no CUDA GPU; use --device cpu for the dry run")
    sizes = SIZES["quick" if args.quick else "full"]
    cuda = device.type == "cuda"
    maggie_precisions = ["fp32", "tf32", "fp16", "bf16"] if cuda else ["fp32", "bf16"]
    report: dict[str, Any] = {
        "device": args.device, "torch": torch.__version__, "torch_cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None, "sizes": sizes,
        "spconv": spconv_available(), "threads": torch.get_num_threads(), "rows": []}
    sections: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "maggie": lambda: bench_maggie(device, sizes, maggie_precisions, args.repeat),
        "xmem": lambda: bench_xmem(device, sizes, ["fp32", "tf32", "fp16"] if cuda
                                   else ["fp32"]),
        "end_to_end": lambda: bench_end_to_end(device, sizes, ["fp32", "fp16"] if cuda
                                               else ["fp32"]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.sections.split(","):
        start = time.perf_counter()
        try:
            report["rows"] += sections[name]()
        except Exception as exc:  # noqa: BLE001 - a section that cannot start at all
            report["rows"].append({"section": name, "error": f"{type(exc).__name__}: {exc}"})
        report[f"{name}_seconds"] = time.perf_counter() - start
        (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "gpu_bench.md").write_text(markdown(report))
    print(f"wrote {args.out / 'gpu_bench.json'} and {args.out / 'gpu_bench.md'}")


if __name__ == "__main__":
    main()
