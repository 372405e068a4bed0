"""Precision, TF32 and determinism settings, GPU diagnostics and out-of-memory classification.

Who calls it: the matte stage (``precision_context`` around MaGGIe forwards), ``actormatte
info`` (``describe_runtime``), the CLI's exit-code policy (``is_out_of_memory`` -> exit 3) and
``bench/gpu_check.sh``. Everything here is a pure function of its inputs where it can be, so
that it is tested without a GPU (nvidia-smi output and exceptions are injected).

Precisions (``--precision``):

* ``fp32``: float32, TF32 *off* for cuBLAS and cuDNN (torch's own default leaves cuDNN TF32
  on, so it is set explicitly). The default on every device (exact; CPU goldens hold).
* ``tf32``: float32 tensors, TF32 tensor cores for matmuls and convolutions (CUDA only; on
  the CPU it is fp32).
* ``fp16`` / ``bf16``: autocast for the dense parts (encoders, decoders, attention); the sparse
  detail branch and its -99/+99 logits stay float32 (:mod:`actormatte.matting.sparse`).

"Chunked equals single run" (the farm promise) holds per device type and precision: a job split
into chunks matches the same job in one run on the same kind of device at the same precision;
CPU and CUDA, or fp32 and fp16, agree within tolerances, not bit for bit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from actormatte.errors import ActorMatteError, InputError

PRECISIONS = ("auto", "fp32", "tf32", "fp16", "bf16")
#: What ``auto`` means per device type (see the module docstring).
DEFAULT_PRECISION = {"cpu": "fp32", "cuda": "fp32"}

_AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}

#: Substrings of allocation failures that are "out of GPU memory" (exit code 3).
OOM_PATTERNS = (
    "CUDA out of memory",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "cudaErrorMemoryAllocation",
    "CUDA error: out of memory",
    "out of memory",  # spconv/cumm's C++ allocator: "... cudaMalloc ... out of memory"
)


@dataclass(frozen=True)
class Precision:
    """A resolved ``--precision``.

    Attributes:
        name: "fp32", "tf32", "fp16" or "bf16".
        device_type: The torch device type it was resolved for.
        autocast_dtype: The autocast dtype, None for float32.
        tf32: Whether TF32 tensor cores are allowed (CUDA matmul and cuDNN).
        reason: Why this precision runs, for ``actormatte info``.
    """

    name: str
    device_type: str
    autocast_dtype: torch.dtype | None
    tf32: bool
    reason: str


def resolve_precision(name: str, device_type: str) -> Precision:
    """Turn a ``--precision`` value into the settings that run on ``device_type``.

    Raises:
        InputError: an unknown name, or fp16 on the CPU (slow there and not what CPUs are for:
            use bf16 or fp32).
    """
    if name not in PRECISIONS:
        raise InputError(f"--precision {name!r} is unknown; use one of {', '.join(PRECISIONS)}")
    reason = f"--precision {name}"
    if name == "auto":
        name = DEFAULT_PRECISION.get(device_type, "fp32")
        reason = f"auto: the default on {device_type} is {name} (exact, matches the goldens)"
    if name == "fp16" and device_type == "cpu":
        raise InputError("--precision fp16 on the CPU is not supported; use bf16 or fp32")
    tf32 = name == "tf32" and device_type == "cuda"
    if name == "tf32" and device_type != "cuda":
        reason += f" (TF32 exists only on CUDA: float32 on {device_type})"
    return Precision(name, device_type, _AUTOCAST.get(name), tf32, reason)


def precision_forward(forward: Callable[..., Any], precision: Precision) -> Callable[..., Any]:
    """``forward`` run under :func:`precision_context`, floating outputs back in float32.

    The result of ``forward`` is a tensor or a dataclass of tensors (``MattingOutput``).
    """
    def run(*args: Any, **kwargs: Any) -> Any:
        with precision_context(precision):
            out = forward(*args, **kwargs)
        return _to_float32(out)

    return run


def _to_float32(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {key: _to_float32(value) for key, value in out.items()}
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        changes = {f.name: _to_float32(getattr(out, f.name)) for f in dataclasses.fields(out)}
        return dataclasses.replace(out, **changes)
    return out


def set_tf32(enabled: bool) -> None:
    """Set TF32 for cuBLAS matmuls and cuDNN convolutions explicitly (not torch's defaults)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@contextlib.contextmanager
def precision_context(precision: Precision) -> Iterator[None]:
    """Run the block at ``precision``: TF32 flags set (and restored), autocast for fp16/bf16."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    set_tf32(precision.tf32)
    try:
        if precision.autocast_dtype is None:
            yield
        else:
            with torch.autocast(precision.device_type, dtype=precision.autocast_dtype):
                yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def enable_cuda_determinism() -> None:
    """Deterministic CUDA kernels where torch has them (farm chunks reproduce single runs).

    ``warn_only``: an op without a deterministic CUDA kernel warns instead of failing the job.
    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before CUDA starts; it is set if missing.
    """
    import os

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure of the GPU (torch, cuDNN, cuBLAS, spconv).

    Matched on the type (``torch.OutOfMemoryError``) or, for RuntimeErrors raised by cuDNN,
    cuBLAS and spconv's C++ allocator, on the message (:data:`OOM_PATTERNS`).
    """
    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if not isinstance(exc, RuntimeError):  # MemoryError is host RAM, not the GPU
        return False
    message = str(exc)
    return any(pattern in message for pattern in OOM_PATTERNS)


def parse_nvidia_smi(output: str | None) -> dict[str, str] | None:
    """Driver and CUDA version from plain ``nvidia-smi`` output (None: no working driver)."""
    if not output:
        return None
    driver = re.search(r"Driver Version:\s*([\d.]+)", output)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", output)
    if driver is None:
        return None
    return {"driver": driver.group(1), "cuda": cuda.group(1) if cuda else "unknown"}


def gpu_fallback_warning(requested: str, torch_sees_cuda: bool,
                         nvidia_smi_output: str | None) -> str | None:
    """The warning for ``--device auto`` falling back to the CPU while a GPU is present.

    Args:
        requested: The ``--device`` value.
        torch_sees_cuda: ``torch.cuda.is_available()``.
        nvidia_smi_output: Plain ``nvidia-smi`` output, None where it is missing or failed.

    Returns:
        A message naming the fix, or None when there is nothing to warn about.
    """
    if requested != "auto" or torch_sees_cuda:
        return None
    smi = parse_nvidia_smi(nvidia_smi_output)
    if smi is None:
        return None
    build = torch.version.cuda or "none (CPU-only build)"
    return (f"an NVIDIA GPU is present (driver {smi['driver']}, CUDA {smi['cuda']}) but torch "
            f"{torch.__version__} (CUDA build: {build}) cannot use it, so this job runs on the "
            "CPU. Fix: rerun `python3 install.py --device cuda` (it picks the torch build for "
            "this driver, docs/GPU.md), or update the NVIDIA driver; pass --device cpu to "
            "silence this warning.")


def query_nvidia_smi() -> str | None:
    """Plain ``nvidia-smi`` output, None where it is missing or fails (never raises)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def describe_runtime(device: str = "auto", sparse_backend: str = "auto", precision: str = "auto",
                     *, torch_sees_cuda: bool | None = None, spconv_importable: bool | None = None,
                     nvidia_smi_output: str | None = None) -> dict[str, Any]:
    """What a job with these settings runs on, and why (``actormatte info --json``'s "runtime").

    ``torch_sees_cuda``, ``spconv_importable`` and ``nvidia_smi_output`` are looked up when None
    (tests inject them). Bad settings are reported under "errors" instead of raising.
    """
    from actormatte.matting.sparse_backend import resolve_sparse_backend

    cuda = torch.cuda.is_available() if torch_sees_cuda is None else torch_sees_cuda
    smi_text = query_nvidia_smi() if nvidia_smi_output is None else nvidia_smi_output
    device_type = "cuda" if device.startswith("cuda") or (device == "auto" and cuda) else "cpu"
    report: dict[str, Any] = {
        "device": device_type,
        "device_reason": (f"--device {device}" if device != "auto" else
                          "auto: torch sees a CUDA GPU" if cuda else "auto: torch sees no GPU"),
        "torch_cuda_build": torch.version.cuda,
        "nvidia_smi": parse_nvidia_smi(smi_text),
        "warnings": [], "errors": [],
    }
    warning = gpu_fallback_warning(device, cuda, smi_text)
    if warning:
        report["warnings"].append(warning)
    try:
        choice = resolve_sparse_backend(sparse_backend, device_type, spconv_importable)
        report["sparse_backend"] = {"name": choice.name, "reason": choice.reason}
    except ActorMatteError as exc:
        report["errors"].append(str(exc))
    try:
        resolved = resolve_precision(precision, device_type)
        report["precision"] = {"name": resolved.name, "reason": resolved.reason,
                               "tf32": resolved.tf32}
    except ActorMatteError as exc:
        report["errors"].append(str(exc))
    return report
