"""``actormatte info``: versions, devices, the models folder and which weights are there.

Hosts call ``actormatte info --json`` to check an installation (the Blender preferences and the
Nuke plugin show it). Weights are checked for presence and size only (cheap); ``--verify`` also
hashes them against the manifest, like ``actormatte weights verify``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from typing import Any

from actormatte import __version__
from actormatte.config import DEVICES, PRECISIONS, SPARSE_BACKENDS
from actormatte.errors import EXIT_OK, WeightsError

_PACKAGES = {
    "torch": "torch",
    "numpy": "numpy",
    "OpenImageIO": "OpenImageIO",
    "OpenColorIO": "PyOpenColorIO",
    "onnxruntime": "onnxruntime",
    "cv2": "cv2",
    "safetensors": "safetensors",
    "spconv": "spconv",
}


def add_parser(subparsers: Any) -> None:
    """Register ``info``."""
    parser = subparsers.add_parser("info", help="versions, devices, weights found",
                                   description="Show versions, devices and model weights.")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--models", metavar="DIR", default=None, help="models folder to check")
    parser.add_argument("--verify", action="store_true",
                        help="also check the weights' sha256 (reads every file)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="report what a job with this --device runs on (default auto)")
    parser.add_argument("--sparse-backend", choices=SPARSE_BACKENDS, default="auto",
                        help="report which sparse backend this setting gives (default auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="report which precision this setting gives (default auto)")
    parser.set_defaults(handler=handle, progress_bar=False)


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"actormatte": __version__,
                                       "python": platform.python_version()}
    for label, module_name in _PACKAGES.items():
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - any import failure means "not usable"
            versions[label] = None
            continue
        versions[label] = str(getattr(module, "__version__", getattr(module, "VERSION", "?")))
    return versions


def _devices() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {"cpu": True, "cuda": cuda, "cuda_devices": gpus, "default": "cuda" if cuda else "cpu",
            "torch_threads": torch.get_num_threads()}


def _weights(models_arg: str | None, verify: bool) -> dict[str, Any]:
    from actormatte.weights import REGISTRY, model_files, resolve_models_dir, verify_models

    models_dir = resolve_models_dir(models_arg)
    found: dict[str, Any] = {}
    for name, entry in REGISTRY.items():
        try:
            files = model_files(models_dir, name)
            found[name] = {"found": True, "required": entry.required,
                           "files": {k: str(v) for k, v in files.items()}}
        except WeightsError as exc:
            found[name] = {"found": False, "required": entry.required, "message": str(exc)}
    if verify:
        report = verify_models(models_dir)
        for name in found:
            # a model that is not usable (missing, or refused as run refuses it) never verifies
            found[name]["verified"] = found[name]["found"] and report.model_ok(name)
    ready = all(v["found"] for v in found.values() if v["required"])
    return {"models_dir": str(models_dir), "models": found, "ready": ready}


def handle(args: argparse.Namespace) -> int:
    """Print the report (JSON or text)."""
    from actormatte.device import describe_runtime

    runtime = describe_runtime(getattr(args, "device", "auto"),
                               getattr(args, "sparse_backend", "auto"),
                               getattr(args, "precision", "auto"))
    report = {"event": "info", "versions": _versions(), "devices": _devices(),
              "runtime": runtime, "executable": sys.executable,
              **_weights(args.models, args.verify)}
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        return EXIT_OK
    lines = [f"actormatte {__version__} ({sys.executable})"]
    lines += [f"  {k}: {v or 'not installed'}" for k, v in report["versions"].items()]
    devices = report["devices"]
    gpus = ", ".join(devices["cuda_devices"])
    lines.append(f"devices: cpu{', cuda ' + gpus if devices['cuda'] else ''} "
                 f"(default {devices['default']})")
    lines += _runtime_lines(runtime)
    lines.append(f"models: {report['models_dir']}")
    for name, status in report["models"].items():
        state = "found" if status["found"] else "MISSING"
        if "verified" in status:
            state += ", verified" if status["verified"] else ", NOT VERIFIED"
        lines.append(f"  {name}: {state}{'' if status['required'] else ' (optional)'}")
    sys.stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


def _runtime_lines(runtime: dict[str, Any]) -> list[str]:
    """Text lines of :func:`actormatte.device.describe_runtime`'s report."""
    lines = [f"runs on: {runtime['device']} ({runtime['device_reason']})"]
    for key in ("sparse_backend", "precision"):
        if key in runtime:
            lines.append(f"  {key.replace('_', ' ')}: {runtime[key]['name']} "
                         f"({runtime[key]['reason']})")
    lines += [f"  error: {message}" for message in runtime["errors"]]
    lines += [f"  warning: {message}" for message in runtime["warnings"]]
    return lines
