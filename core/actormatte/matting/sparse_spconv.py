"""CUDA backend of the detail branch on spconv 2.3 (the official model's library), lazily imported.

Mirrors the official ``predict_details`` with spconv modules built from our layers' weights in
the checkpoint layout (``SubMConv2d.spconv_weight`` undoes the 1x1 remap, because spconv itself
applies the raw 1x1 reinterpretation): stride-2 ``SparseConv2d`` with indice keys "subm1.2",
"subm2.4", "subm4.8" create the site sets, and ``SparseInverseConv2d`` with the same keys go
back up. BatchNorm and activations run on ``SparseConvTensor.features``. Same semantics as the
torch backend; only the summation order differs.

Only for CUDA tensors: spconv's CPU kernels race with more than one thread (MAGGIE_SPEC.md §16).
Called by :func:`actormatte.matting.sparse.predict_details`.
"""

from __future__ import annotations

import functools
import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from actormatte.errors import DependencyError
from actormatte.matting.sparse_layers import (
    SparseConv2d,
    SparseConvModule,
    SparseInverseConv2d,
    SubMConv2d,
)

if TYPE_CHECKING:
    from actormatte.matting.sparse import DetailLayers

logger = logging.getLogger(__name__)

INSTALL_HINT = ("install the CUDA extra (pip install 'actormatte[cuda]', i.e. spconv-cu120) or "
                "use the pure-PyTorch backend (backend='torch')")

#: Indice keys of the three stride-2 convs (official names), finest first.
DOWN_KEYS = ("subm1.2", "subm2.4", "subm4.8")


@functools.cache
def _import_spconv() -> ModuleType | None:
    try:
        import spconv.pytorch as spconv_torch  # type: ignore[import-not-found,unused-ignore]
    except (ImportError, OSError) as exc:  # OSError: CUDA libraries that do not load
        logger.debug("spconv not importable: %s", exc)
        return None
    return spconv_torch  # type: ignore[no-any-return,unused-ignore]


def spconv_available() -> bool:
    """Whether ``spconv.pytorch`` imports in this environment."""
    return _import_spconv() is not None


def require_spconv() -> ModuleType:
    """Return ``spconv.pytorch``, or raise DependencyError with an install hint."""
    module = _import_spconv()
    if module is None:
        raise DependencyError(f"spconv is not importable; {INSTALL_HINT}")
    return module


def _spconv_conv(sp: Any, layer: SparseConvModule, indice_key: str | None,
                 device: torch.device) -> Any:
    """An spconv module carrying ``layer``'s weight in checkpoint (KRSC) layout."""
    k = layer.kernel_size
    has_bias = layer.bias is not None
    conv: Any
    if isinstance(layer, SparseInverseConv2d):
        conv = sp.SparseInverseConv2d(layer.in_channels, layer.out_channels, k,
                                      indice_key=indice_key, bias=False)
    elif isinstance(layer, SparseConv2d):
        conv = sp.SparseConv2d(layer.in_channels, layer.out_channels, k, stride=2, padding=1,
                               bias=False, indice_key=indice_key)
    elif isinstance(layer, SubMConv2d):
        conv = sp.SubMConv2d(layer.in_channels, layer.out_channels, k, padding=k // 2,
                             bias=has_bias, indice_key=indice_key if k > 1 else None)
    else:
        raise TypeError(f"no spconv counterpart for {type(layer).__name__}")
    weight = layer.spconv_weight().detach()
    if tuple(conv.weight.shape) != tuple(weight.shape):
        raise DependencyError(f"this spconv stores weights as {tuple(conv.weight.shape)}, not "
                              f"KRSC {tuple(weight.shape)}; spconv 2.3.x (FILTER_HWIO off) needed")
    with torch.no_grad():
        conv.weight.copy_(weight)
        if has_bias:
            assert layer.bias is not None
            conv.bias.copy_(layer.bias.detach())
    return conv.to(device).eval()


def _run(sp: Any, sequence: nn.Module, x: Any, indice_key: str | None) -> Any:
    """Apply one of our Sequentials to a SparseConvTensor with spconv convs."""
    for layer in sequence.children():
        if isinstance(layer, SparseConvModule):
            key = indice_key if not isinstance(layer, SparseInverseConv2d) else None
            x = _spconv_conv(sp, layer, key, x.features.device)(x)
        else:
            x = x.replace_feature(layer(x.features))
    return x


def _run_inverse(sp: Any, sequence: nn.Module, x: Any, down_key: str,
                 subm_key: str | None) -> Any:
    """Like _run, with the leading inverse conv bound to the stride-2 conv ``down_key``."""
    layers = list(sequence.children())
    inverse = layers[0]
    assert isinstance(inverse, SparseInverseConv2d)
    x = _spconv_conv(sp, inverse, down_key, x.features.device)(x)
    return _run(sp, nn.Sequential(*layers[1:]), x, subm_key)


def _site_features(dense: Tensor, x: Any, num_instances: int) -> Tensor:
    """Dense per-frame features at the tensor's sites: (T, C, h, w) -> (S, C)."""
    indices = x.indices.long()  # (S, 3) (n, y, x)
    frame = indices[:, 0] // num_instances
    return dense[frame, :, indices[:, 1], indices[:, 2]]  # (S, C)


def _densify(x: Any, elements: int) -> Tensor:
    """(S, 1) site logits -> (elements, 1, h, w) with the official -99 / +99 round trip."""
    height, width = (int(s) for s in x.spatial_shape)
    dense = torch.zeros(elements, 1, height, width, dtype=torch.float32,
                        device=x.features.device)
    idx = x.indices.long()
    dense[idx[:, 0], 0, idx[:, 1], idx[:, 2]] = x.features[:, 0].float()
    dense = dense - 99.0
    dense[idx[:, 0], 0, idx[:, 1], idx[:, 2]] += 99.0
    return dense


def predict_details_spconv(layers: DetailLayers, feat_os8: Tensor, kernels: Tensor, fea1: Tensor,
                           fea2: Tensor, fea3: Tensor,
                           unknown: Tensor) -> tuple[Tensor, Tensor]:
    """The spconv version of :func:`actormatte.matting.sparse.predict_details` (CUDA tensors).

    Shape:
        as predict_details; returns (os4 (T*N,1,H/4,W/4), os1 (T*N,1,H,W)) dense logits.
    """
    sp = require_spconv()
    frames, instances, height, width = unknown.shape
    elements = frames * instances
    flat_unknown = unknown.reshape(elements, height, width)  # (T*N, H, W)
    indices = (flat_unknown != 0).nonzero().int()  # (S1, 3) (n, y, x)
    x1 = sp.SparseConvTensor(fea1.new_zeros(indices.shape[0], 32), indices, [height, width],
                             elements)
    down = [m for m in layers.dummy_downscale.children() if isinstance(m, SparseConv2d)]
    assert len(down) == 3, "dummy_downscale must hold three stride-2 convs"
    x2 = _spconv_conv(sp, down[0], DOWN_KEYS[0], fea1.device)(x1)
    x4 = _spconv_conv(sp, down[1], DOWN_KEYS[1], fea1.device)(x2)
    x8 = _spconv_conv(sp, down[2], DOWN_KEYS[2], fea1.device)(x4)

    kernel_rows = kernels.reshape(elements, -1)[x8.indices[:, 0].long()]  # (S8, 64)
    z = _site_features(feat_os8, x8, instances) * kernel_rows
    x = x8.replace_feature(layers.inst_spec_layer(z))

    x = _run_inverse(sp, layers.layer3, x, DOWN_KEYS[2], "subm4")
    shortcut = _site_features(fea3, x, instances)
    guide = _run(sp, layers.guidance_layer,
                 x.replace_feature(torch.cat([shortcut, x.features], dim=1)), "subm4")
    x = _run(sp, layers.layer3_smooth, x.replace_feature(shortcut * guide.features), "subm4")
    os4 = _densify(_run(sp, layers.refine_OS4, x, "subm4"), elements)

    x = _run_inverse(sp, layers.layer4, x, DOWN_KEYS[1], None)
    x = x.replace_feature(torch.cat([_site_features(fea2, x, instances), x.features], dim=1))
    x = _run(sp, layers.layer4_smooth, x, None)

    x = _run_inverse(sp, layers.layer5, x, DOWN_KEYS[0], "subm1")
    x = x.replace_feature(torch.cat([_site_features(fea1, x, instances), x.features], dim=1))
    x = _run(sp, layers.layer5_smooth, x, "subm1")
    os1 = _densify(_run(sp, layers.refine_OS1, x, "subm1"), elements)
    return os4, os1
