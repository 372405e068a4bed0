"""Where the reference material lives, and weights generated from it (cached on disk).

Weights are never downloaded: they come from the deterministic generators in
``../shared/reference`` and are cached under ``.cache/test-weights`` (keyed by the generator's
arguments), so the suite generates each file once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("ACTORMATTE_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
MAGGIE_REF = REFERENCE / "maggie"
XMEM_REF = REFERENCE / "xmem"
WEIGHT_CACHE = ROOT / ".cache" / "test-weights"


def _generate(script: Path, args: list[str], suffix: str) -> Path:
    key = hashlib.sha256(" ".join([script.name, *args]).encode()).hexdigest()[:16]
    out = WEIGHT_CACHE / f"{script.parent.name}-{key}{suffix}"
    if not out.is_file():
        WEIGHT_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        subprocess.run([sys.executable, str(script), *args, "--out", str(tmp)], check=True,
                       capture_output=True)
        os.replace(tmp, out)
    return out


def maggie_weights(variant: str, seed: int, overrides: str | None = None,
                   sn_power_iters: int = 0) -> Path:
    """Generate (once) MaGGIe weights; ``overrides`` names a file in the reference folder."""
    table = MAGGIE_REF / f"maggie_{variant}_state.tsv"
    args = [str(table), "--seed", str(seed)]
    if overrides:
        args += ["--set-file", str(MAGGIE_REF / overrides)]
    if sn_power_iters:
        args += ["--sn-power-iters", str(sn_power_iters)]
    return _generate(MAGGIE_REF / "gen_weights.py", args, ".safetensors")


def xmem_weights(seed: int) -> Path:
    """Generate (once) XMem weights with the ``stable`` profile, as a plain ``.pth`` state dict."""
    args = [str(XMEM_REF / "xmem_state.tsv"), "--seed", str(seed), "--profile", "stable"]
    return _generate(XMEM_REF / "gen_weights.py", args, ".pth")
