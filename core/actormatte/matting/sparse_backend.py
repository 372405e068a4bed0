"""Which sparse backend runs MaGGIe's detail branch, and binding it to a loaded network.

:func:`resolve_sparse_backend` is the one decision (a pure function of the setting, the device
type and whether spconv imports), used by :func:`actormatte.matting.sparse.predict_details`,
by :func:`configure_sparse_backend` (called by ``load_maggie``) and by ``actormatte info``.

* ``"torch"``: the pure-PyTorch rulebook backend, everywhere.
* ``"spconv"``: spconv 2.3; on CUDA the product path, on the CPU a single-threaded test path.
* ``"auto"``: spconv on CUDA when it imports, else torch; never spconv on the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from actormatte.errors import DependencyError, InputError

Backend = Literal["auto", "torch", "spconv"]
SPARSE_BACKENDS: tuple[str, ...] = ("auto", "torch", "spconv")


@dataclass(frozen=True)
class BackendChoice:
    """The backend that runs and why.

    Attributes:
        name: "torch" or "spconv".
        reason: One sentence for ``actormatte info`` and the logs.
    """

    name: Literal["torch", "spconv"]
    reason: str


def _spconv_importable() -> bool:
    from actormatte.matting.sparse_spconv import spconv_available

    return spconv_available()


def resolve_sparse_backend(backend: str, device_type: str,
                           spconv_importable: bool | None = None) -> BackendChoice:
    """The backend a setting gives on a device type.

    Args:
        backend: "auto", "torch" or "spconv".
        device_type: torch device type ("cpu", "cuda", ...).
        spconv_importable: Whether ``spconv.pytorch`` imports; None checks (imports it once).

    Raises:
        InputError: an unknown backend name.
        DependencyError: "spconv" asked for where it does not import.
    """
    if backend not in SPARSE_BACKENDS:
        raise InputError(f"unknown sparse backend {backend!r}; use one of {SPARSE_BACKENDS}")
    if backend == "torch":
        return BackendChoice("torch", "sparse_backend='torch' was asked for")
    if backend == "auto" and device_type != "cuda":
        return BackendChoice("torch", f"auto on {device_type}: spconv runs only on CUDA in "
                                      "production (its CPU kernels race with several threads)")
    importable = _spconv_importable() if spconv_importable is None else spconv_importable
    if backend == "auto":
        if importable:
            return BackendChoice("spconv", "auto on cuda: spconv imports (the official library)")
        return BackendChoice("torch", "auto on cuda: spconv does not import in this venv, the "
                                      "exact pure-PyTorch backend runs (see docs/GPU.md)")
    if not importable:
        from actormatte.matting.sparse_spconv import INSTALL_HINT

        raise DependencyError(f"sparse_backend='spconv' but spconv is not importable; "
                              f"{INSTALL_HINT}")
    if device_type == "cuda":
        return BackendChoice("spconv", "sparse_backend='spconv' was asked for")
    return BackendChoice("spconv", f"sparse_backend='spconv' on {device_type}: a "
                                   "single-threaded test path, not for production")


def configure_sparse_backend(decoder: Any, backend: str,
                             device: torch.device | str) -> BackendChoice:
    """Set the decoder's sparse backend and build the spconv modules once if it is spconv.

    ``decoder`` is a :class:`actormatte.matting.decoder.MaggieDecoder` (any object with the
    detail layers); it gets ``sparse_backend`` and ``spconv_program`` attributes. Call it again
    after loading other weights or moving the network to another device.
    """
    device = torch.device(device)
    choice = resolve_sparse_backend(backend, device.type)
    program = None
    if choice.name == "spconv":
        from actormatte.matting.sparse_spconv import SpconvProgram

        program = SpconvProgram(decoder, device)
    decoder.sparse_backend = backend
    decoder.spconv_program = program
    return choice
