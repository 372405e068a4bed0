"""Strict loading of MaGGIe checkpoints (``model.safetensors`` + optional ``config.json``).

:func:`load_maggie` accepts a ``.safetensors`` file or a folder in the Hugging Face snapshot
layout of ``chuonghm/maggie-video-vim2k5-cvpr24`` / ``chuonghm/maggie-image-him50k-cvpr24``
(``config.json`` + ``model.safetensors``). Unlike the official ``from_pretrained`` (which loads
with ``strict=False`` and silently ignores differences), every missing or unexpected key, wrong
shape or wrong dtype is reported by name in one :class:`~actormatte.errors.WeightsError`.
Called by the pipeline's matte stage, the CLI's ``weights verify`` and the tests.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from actormatte.device import enable_cuda_determinism
from actormatte.errors import InputError, WeightsError
from actormatte.matting.config import (
    MaggieArchConfig,
    Variant,
    arch_config_from_json,
    variant_from_config,
)
from actormatte.matting.model import MaggieNetwork, build_network
from actormatte.matting.sparse_backend import (
    Backend,
    configure_sparse_backend,
    resolve_sparse_backend,
)
from actormatte.matting.spectral_norm import (
    SPECTRAL_NORM_MODES,
    SpectralNormMode,
    set_spectral_norm_mode,
)

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
VIDEO_ONLY_PREFIXES = ("decoder.os8_temp_module.", "decoder.diff_module.")


def _resolve(source: str | Path) -> tuple[Path, Path | None]:
    path = Path(source)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsError(f"{path} has no {WEIGHTS_NAME}; point to the MaGGIe checkpoint "
                               "folder (config.json + model.safetensors) or to the file itself")
        config = path / CONFIG_NAME
        return weights, config if config.is_file() else None
    if not path.is_file():
        raise WeightsError(f"MaGGIe weights not found at {path}; run `actormatte weights "
                           "install` or pass the path of model.safetensors")
    return path, None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read {path}: {exc}; re-download the checkpoint's "
                           "config.json") from exc
    if not isinstance(data, dict):
        raise WeightsError(f"{path} is not a JSON object; re-download the checkpoint's config.json")
    return data


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (OSError, SafetensorError, ValueError) as exc:
        raise WeightsError(f"cannot read {path} as safetensors ({exc}); the file is corrupt or "
                           "incomplete: re-download it") from exc


def _choose_variant(requested: str | None, config: dict[str, Any] | None,
                    state: dict[str, torch.Tensor] | None, source: Path) -> Variant:
    if requested is not None and requested not in ("video", "image"):
        raise InputError(f"variant must be 'video', 'image' or None, got {requested!r}")
    from_config = variant_from_config(config) if config is not None else None
    if requested is not None:
        if from_config is not None and from_config != requested:
            raise WeightsError(f"{source} holds the MaGGIe {from_config} model, but variant="
                               f"{requested!r} was asked for; pass variant={from_config!r}")
        return requested  # type: ignore[return-value]
    if from_config is not None:
        return from_config
    has_temporal = any(k.startswith(VIDEO_ONLY_PREFIXES) for k in state or {})
    return "video" if has_temporal else "image"


def _is_scalar_pair(got: torch.Tensor, want: torch.Tensor) -> bool:
    # A 0-d buffer (BatchNorm's num_batches_tracked) stored as shape (1,): torch's own
    # load_state_dict accepts it, and numpy-written files store scalars that way.
    return want.dim() == 0 and tuple(got.shape) == (1,)


def check_state_dict(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                     variant: str, source: str) -> None:
    """Raise one WeightsError naming every missing/unexpected key and shape/dtype mismatch.

    Args:
        expected: the model's own ``state_dict()`` (names, shapes, dtypes to match).
        state: the tensors read from the file.
        variant: used in the message.
        source: the file name used in the message.
    """
    problems = [f"missing key {k}" for k in expected if k not in state]
    problems += [f"unexpected key {k}" for k in state if k not in expected]
    for key, want in expected.items():
        got = state.get(key)
        if got is None:
            continue
        if tuple(got.shape) != tuple(want.shape) and not _is_scalar_pair(got, want):
            problems.append(f"wrong shape for {key}: {tuple(got.shape)}, "
                            f"expected {tuple(want.shape)}")
        if got.dtype != want.dtype:
            problems.append(f"wrong dtype for {key}: {got.dtype}, expected {want.dtype}")
    if problems:
        raise WeightsError(
            f"{source} does not match the MaGGIe {variant} network ({len(problems)} problems):\n  "
            + "\n  ".join(problems)
            + "\nUse the unmodified model.safetensors of the released checkpoint (re-download it "
              "with `actormatte weights install`), or pass the right variant.")


def load_maggie(source: str | Path, variant: Variant | None = None, *,
                spectral_norm: SpectralNormMode = "frozen",
                device: str | torch.device = "cpu",
                sparse_backend: Backend = "auto") -> MaggieNetwork:
    """Build a MaGGIe network and load a checkpoint into it strictly.

    Args:
        source: ``model.safetensors`` or a folder with ``model.safetensors`` (and, in the
            Hugging Face layout, ``config.json``, whose architecture values are validated).
        variant: ``"video"`` or ``"image"``; None infers it from ``config.json``'s ``arch`` or,
            without a config, from the presence of ``decoder.os8_temp_module.*`` keys.
        spectral_norm: ``"frozen"`` (W/sigma computed once now; deterministic, the default) or
            ``"stateful"`` (the official per-call power iteration, state carried across calls).
        device: where the network is placed.
        sparse_backend: detail-branch backend: ``"auto"`` (spconv on CUDA when it imports,
            else the pure-PyTorch one), ``"torch"`` or ``"spconv"`` (CUDA; on the CPU a
            single-threaded test path). spconv modules are built once here, on ``device``.

    Returns:
        The network in eval mode on ``device``.

    Raises:
        WeightsError: unreadable file, config values or tensors that do not match.
        InputError: a bad ``variant``, ``spectral_norm`` or ``sparse_backend`` value.
        DependencyError: ``sparse_backend="spconv"`` without an importable spconv.
    """
    if spectral_norm not in SPECTRAL_NORM_MODES:
        raise InputError(f"spectral_norm must be one of {SPECTRAL_NORM_MODES}, "
                         f"got {spectral_norm!r}")
    resolve_sparse_backend(sparse_backend, torch.device(device).type)  # fail before reading
    weights_path, config_path = _resolve(source)
    config_json = _read_config(config_path) if config_path is not None else None
    arch: MaggieArchConfig | None = None
    if config_json is not None and (variant or variant_from_config(config_json)):
        # validate the config before reading 120 MB of weights
        chosen = _choose_variant(variant, config_json, None, weights_path)
        arch = arch_config_from_json(config_json, chosen, str(config_path))
    state = _read_weights(weights_path)
    if arch is None:
        chosen = _choose_variant(variant, config_json, state, weights_path)
        arch = (MaggieArchConfig(variant=chosen) if config_json is None
                else arch_config_from_json(config_json, chosen, str(config_path)))
    chosen = arch.variant
    net = build_network(arch)
    check_state_dict(net.state_dict(), state, chosen, str(weights_path))
    net.load_state_dict(state, strict=True)
    del state
    set_spectral_norm_mode(net, spectral_norm)
    if torch.device(device).type == "cuda":  # before the first cuBLAS call reads the env var
        enable_cuda_determinism()  # chunked == single run on CUDA (actormatte.device)
    net = net.to(device).eval()
    choice = configure_sparse_backend(net.decoder, sparse_backend, device)
    logger.info("loaded MaGGIe %s from %s (spectral norm %s, sparse backend %s: %s)", chosen,
                weights_path, spectral_norm, choice.name, choice.reason)
    return net
