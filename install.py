#!/usr/bin/env python3
"""Set up ActorMatte's core: a virtual environment, its packages and the model weights.

Run it with any Python >= 3.10; it uses the standard library only.

    python3 install.py                          # venv + packages + weights (downloads them)
    python3 install.py --weights-from /mnt/w    # offline: copy weights from a local folder
    python3 install.py --no-weights             # venv + packages only (what the tests need)
    python3 install.py --no-weights --blender-test-venv   # + bpy venvs for tests/blender

Steps, each skipped when already done (a re-run takes a few seconds):
1. create the venv (``.venv`` at the repository root, ``--venv PATH`` to choose another);
2. install torch first: on a machine without a CUDA GPU the CPU build ``torch==2.13.0``; with a CUDA
   GPU the CUDA build, then spconv-cu120 for the sparse refinement;
3. install this package (editable) with its test extras;
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
import shutil
import subprocess
import sys
import venv
from pathlib import Path

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


def has_cuda_gpu() -> bool:
    """Whether an NVIDIA GPU with a working driver is visible (``nvidia-smi -L`` lists one)."""
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def packages_stamp(device: str) -> str:
    """A hash of everything that decides which packages the venv needs."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{device}|{TORCH_VERSION}|{sys.version_info[:2]}".encode())
    return digest.hexdigest()


def install_packages(venv_dir: Path, device: str) -> None:
    """Install torch first, then the package with its extras, unless the stamp says it is done."""
    stamp_file = venv_dir / ".actormatte-packages"
    stamp = packages_stamp(device)
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        log("packages are up to date")
        return
    python = str(venv_python(venv_dir))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    # torch before anything that depends on it: a bare `torch` requirement would otherwise pull
    # the newest build with several GB of CUDA packages onto a CPU-only machine.
    run(pip + [f"torch=={TORCH_VERSION}"])
    extras = "test,download" + (",cuda" if device == "cuda" else "")
    run(pip + ["-e", f"{ROOT}[{extras}]"])
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


def write_record(venv_dir: Path, models: Path, device: str) -> None:
    """Record where the CLI and the models are, for the host plugins."""
    record = {
        "cli": str(venv_cli(venv_dir)),
        "python": str(venv_python(venv_dir)),
        "models": str(models),
        "device": device,
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
    parser.add_argument("--blender-test-venv", action="store_true",
                        help="also create .venv-bpy (bpy 4.5.15) and .venv-bpy5 (bpy 5.0.1) for "
                             "the Blender tests")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the installer."""
    args = parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036 - runs under whatever python3 the user has
        sys.exit("install.py: ActorMatte needs Python 3.10 or newer")
    device = args.device
    if device == "auto":
        device = "cuda" if has_cuda_gpu() else "cpu"
    venv_dir = args.venv.resolve()
    models = args.models or Path(os.environ.get("ACTORMATTE_MODELS", ROOT / "models"))
    models = models.resolve()
    if not venv_python(venv_dir).is_file():
        log(f"creating venv {venv_dir}")
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    install_packages(venv_dir, device)
    if args.blender_test_venv:
        make_blender_test_venvs()
    if args.no_weights:
        log("--no-weights: skipping the weights step")
    else:
        install_weights(venv_dir, models, args.weights_from)
    write_record(venv_dir, models, device)
    log(f"done: CLI at {venv_cli(venv_dir)}")


if __name__ == "__main__":
    main()
