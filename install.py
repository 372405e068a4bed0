#!/usr/bin/env python3
"""Set up ActorMatte's core: a virtual environment, its packages and the model weights.

Run it with any Python >= 3.10; it uses the standard library only.

    python3 install.py                          # venv + packages + weights (downloads them)
    python3 install.py --weights-from /mnt/w    # offline: copy weights from a local folder
    python3 install.py --no-weights             # venv + packages only (what the tests need)
    python3 install.py --no-weights --blender-test-venv   # + bpy venvs for tests/blender

Steps, each skipped when already done (a re-run takes a few seconds):
1. create the venv (``.venv`` at the repository root, ``--venv PATH`` to choose another);
2. install torch first, the build chosen by :func:`plan_install` (docs/GPU.md has the matrix): on a
   machine without a CUDA GPU the CPU build ``torch==2.13.0+cpu`` (never PyPI's CUDA 13 build, so
   no GBs of CUDA libraries); with a CUDA 13 driver PyPI's ``torch==2.13.0``; with a CUDA 12.6+
   driver ``+cu126``/``+cu128`` from the PyTorch index (``--torch-index`` for a mirror);
3. install this package (editable) with its test extras; on CUDA with Python 3.10-3.13 swap the
   test extra's CPU spconv for ``spconv-cu121`` (``--plan`` prints the choice and exits);
4. fetch or copy the model weights into the models folder and write their sha256 manifest, by
   running ``actormatte weights install`` from the new venv;
5. record the CLI path and the models folder in ``<venv>/actormatte-install.json``, which the
   Blender and Nuke plugins read to find the core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent
TORCH_VERSION = "2.13.0"
RECORD_NAME = "actormatte-install.json"
# Real Blender for tests/blender: the bpy wheels (cp311) need numpy<2, so each has its own venv.
BPY_TEST_VENVS = {".venv-bpy": "bpy==4.5.15", ".venv-bpy5": "bpy==5.0.1"}


def log(message: str) -> None:
    """Print one step of the installer."""
    print(f"[install] {message}", flush=True)


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    """Run a command, echoing it, and stop the installer if it fails."""
    log("$ " + " ".join(cmd))
    result = subprocess.run(cmd, env=env)
    if result.returncode != 0:
        sys.exit(f"install.py: command failed with exit code {result.returncode}: {' '.join(cmd)}")


def venv_python(venv_dir: Path) -> Path:
    """Path of the venv's interpreter on this platform."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def venv_cli(venv_dir: Path) -> Path:
    """Path of the ``actormatte`` console script inside the venv."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "actormatte.exe"
    return venv_dir / "bin" / "actormatte"


# The install matrix (docs/GPU.md). Facts checked against PyPI when this was written:
# torch 2.13.0 on PyPI (Linux x86_64, cp310-cp314) is a CUDA 13.0 build (cuda-toolkit 13.0.3,
# nvidia-cudnn-cu13); spconv-cu121 2.3.8 has cp310-cp313 wheels, spconv-cu120 2.3.6 only
# cp310/cp311; the CPU spconv 2.3.8 (test extra) has cp310-cp313.
PYTORCH_INDEX = "https://download.pytorch.org/whl"
#: CUDA 12 builds of torch on the PyTorch index, newest first: (min driver CUDA, tag).
TORCH_CUDA12_BUILDS = ((12, 8, "cu128"), (12, 6, "cu126"))
SPCONV_CUDA = "spconv-cu121==2.3.8"
SPCONV_PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13))
CPU_SPCONV_PACKAGES = ("spconv", "cumm")
# torch alone from the PyTorch index (its dependencies then come from PyPI with the package):
# an extra index would be asked for every dependency, each retried where it is unreachable.
_TORCH_INDEX_ARGS = ("--no-deps", "--index-url")


class InstallPlan(NamedTuple):
    """What install.py installs: the torch requirement and where from, the sparse backend."""

    device: str
    torch_args: list[str]
    spconv: str | None
    sparse_backend: str
    notes: list[str]


def parse_cuda_version(nvidia_smi_output: str) -> tuple[int, int] | None:
    """The highest CUDA version the driver supports, from plain ``nvidia-smi`` output."""
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", nvidia_smi_output)
    return (int(match.group(1)), int(match.group(2))) if match else None


def query_nvidia_smi() -> str | None:
    """Plain ``nvidia-smi`` output, or None when there is no working NVIDIA driver."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 and "CUDA Version" in out.stdout else None


def _cuda_torch(driver_cuda: tuple[int, int], index: str | None) -> tuple[list[str], str]:
    """The pip arguments for torch on a driver supporting ``driver_cuda``, and a note."""
    if driver_cuda >= (13, 0):
        args = [f"torch=={TORCH_VERSION}"] + (["--index-url", index] if index else [])
        return args, f"CUDA {driver_cuda[0]}.{driver_cuda[1]} driver: torch {TORCH_VERSION} " \
                     "(PyPI's build is CUDA 13.0)"
    for major, minor, tag in TORCH_CUDA12_BUILDS:
        if driver_cuda >= (major, minor):
            url = index or f"{PYTORCH_INDEX}/{tag}"
            return ([f"torch=={TORCH_VERSION}+{tag}", *_TORCH_INDEX_ARGS, url],
                    f"CUDA {driver_cuda[0]}.{driver_cuda[1]} driver: torch {TORCH_VERSION}+{tag} "
                    f"from {url} (PyPI's CUDA 13 build needs a driver for CUDA 13)")
    raise SystemExit(
        f"install.py: the NVIDIA driver supports CUDA {driver_cuda[0]}.{driver_cuda[1]}; torch "
        f"{TORCH_VERSION} needs CUDA 12.6 or newer (driver 560+). Update the NVIDIA driver, or "
        "install the CPU build with --device cpu.")


def plan_install(python: tuple[int, int], device: str, driver_cuda: tuple[int, int] | None,
                 torch_index: str | None = None) -> InstallPlan:
    """Choose the torch build and the sparse backend (a pure function: see docs/GPU.md).

    Args:
        python: (major, minor) of the venv's Python.
        device: "cpu" or "cuda" (after --device auto was resolved).
        driver_cuda: the driver's CUDA version from nvidia-smi, None without a driver.
        torch_index: --torch-index, a mirror of the PyTorch index for this build (or None).
    """
    if device == "cpu":
        url = torch_index or f"{PYTORCH_INDEX}/cpu"
        # the +cpu local version never matches PyPI's CUDA 13 build: no GBs of CUDA libraries
        return InstallPlan("cpu", [f"torch=={TORCH_VERSION}+cpu", *_TORCH_INDEX_ARGS, url],
                           None, "torch", [f"CPU build torch {TORCH_VERSION}+cpu from {url}"])
    if driver_cuda is None:
        raise SystemExit("install.py: --device cuda but nvidia-smi finds no working NVIDIA "
                         "driver; install the driver (560+ for CUDA 12.6, 580+ for CUDA 13) or "
                         "use --device cpu")
    torch_args, note = _cuda_torch(driver_cuda, torch_index)
    notes = [note]
    if python in SPCONV_PYTHONS:
        notes.append(f"{SPCONV_CUDA}: sparse backend spconv (auto picks it when it imports)")
        return InstallPlan("cuda", torch_args, SPCONV_CUDA, "spconv", notes)
    notes.append(f"no spconv CUDA wheel for Python {python[0]}.{python[1]}: the exact "
                 "pure-PyTorch sparse backend runs on CUDA (use Python 3.10-3.13 for spconv)")
    return InstallPlan("cuda", torch_args, None, "torch", notes)


def packages_stamp(plan: InstallPlan) -> str:
    """A hash of everything that decides which packages the venv needs."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{plan.torch_args}|{plan.spconv}|{sys.version_info[:2]}".encode())
    return digest.hexdigest()


def install_packages(venv_dir: Path, plan: InstallPlan) -> None:
    """Install torch first, then the package with its extras, unless the stamp says it is done."""
    stamp_file = venv_dir / ".actormatte-packages"
    stamp = packages_stamp(plan)
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        log("packages are up to date")
        return
    for note in plan.notes:
        log(note)
    python = str(venv_python(venv_dir))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    # torch before anything that depends on it: a bare `torch` requirement would otherwise pull
    # the newest build with several GB of CUDA packages onto a CPU-only machine.
    run(pip + plan.torch_args)
    run(pip + ["-e", f"{ROOT}[test,download]"])
    if plan.spconv is not None:
        # the test extra's CPU spconv and spconv-cu12x install the same `spconv` package
        run([python, "-m", "pip", "uninstall", "-y", *CPU_SPCONV_PACKAGES])
        run(pip + [plan.spconv])
    stamp_file.write_text(stamp)


def install_weights(venv_dir: Path, models: Path, weights_from: Path | None) -> None:
    """Fetch or copy the weights with the core's own command (it checks every sha256)."""
    cmd = [str(venv_cli(venv_dir)), "weights", "install", "--models", str(models)]
    if weights_from is not None:
        cmd += ["--weights-from", str(weights_from)]
    run(cmd)


def make_blender_test_venvs() -> None:
    """Create ``.venv-bpy`` (bpy 4.5 LTS) and ``.venv-bpy5`` (bpy 5.0) for tests/blender."""
    if sys.version_info[:2] != (3, 11):
        sys.exit("install.py: --blender-test-venv needs Python 3.11 (the bpy wheels are cp311)")
    for name, requirement in BPY_TEST_VENVS.items():
        venv_dir = ROOT / name
        stamp = venv_dir / ".actormatte-bpy"
        if stamp.is_file() and stamp.read_text() == requirement:
            log(f"{name}: {requirement} is up to date")
            continue
        if not venv_python(venv_dir).is_file():
            log(f"creating bpy test venv {venv_dir}")
            venv.EnvBuilder(with_pip=True).create(venv_dir)
        run([str(venv_python(venv_dir)), "-m", "pip", "install", "--disable-pip-version-check",
             requirement, "numpy<2"])
        stamp.write_text(requirement)


def write_record(venv_dir: Path, models: Path, plan: InstallPlan) -> None:
    """Record where the CLI and the models are, for the host plugins."""
    record = {
        "cli": str(venv_cli(venv_dir)),
        "python": str(venv_python(venv_dir)),
        "models": str(models),
        "device": plan.device,
        "sparse_backend": plan.sparse_backend,
        "repository": str(ROOT),
    }
    (venv_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    log(f"recorded {venv_dir / RECORD_NAME}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the installer."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv", help="venv folder")
    parser.add_argument("--models", type=Path, default=None,
                        help="models folder (default: $ACTORMATTE_MODELS, else ./models)")
    parser.add_argument("--weights-from", type=Path, default=None,
                        help="copy weights from this local folder instead of downloading")
    parser.add_argument("--no-weights", action="store_true", help="skip the weights step")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="which torch build to install (auto: cuda when nvidia-smi sees a GPU)")
    parser.add_argument("--torch-index", default=None, metavar="URL",
                        help="index (or mirror) holding the chosen torch build (default: the "
                             "PyTorch index for +cpu/+cu12x builds, PyPI for CUDA 13)")
    parser.add_argument("--plan", action="store_true",
                        help="print the install plan (torch build, sparse backend) and exit")
    parser.add_argument("--blender-test-venv", action="store_true",
                        help="also create .venv-bpy (bpy 4.5.15) and .venv-bpy5 (bpy 5.0.1) for "
                             "the Blender tests")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the installer."""
    args = parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 - runs under whatever python3 the user has
        sys.exit("install.py: ActorMatte needs Python 3.10 or newer")
    smi = query_nvidia_smi() if args.device != "cpu" else None
    driver_cuda = parse_cuda_version(smi) if smi else None
    device = args.device if args.device != "auto" else ("cuda" if driver_cuda else "cpu")
    plan = plan_install(sys.version_info[:2], device, driver_cuda, args.torch_index)
    if args.plan:
        print(json.dumps(plan._asdict(), indent=2))
        return
    venv_dir = args.venv.resolve()
    models = args.models or Path(os.environ.get("ACTORMATTE_MODELS", ROOT / "models"))
    models = models.resolve()
    if not venv_python(venv_dir).is_file():
        log(f"creating venv {venv_dir}")
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    install_packages(venv_dir, plan)
    if args.blender_test_venv:
        make_blender_test_venvs()
    if args.no_weights:
        log("--no-weights: skipping the weights step")
    else:
        install_weights(venv_dir, models, args.weights_from)
    write_record(venv_dir, models, plan)
    log(f"done: CLI at {venv_cli(venv_dir)}")


if __name__ == "__main__":
    main()
