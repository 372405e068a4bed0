"""spconv backend of the detail branch (spconv 2.3, the official model's library), lazily imported.

:class:`SpconvProgram` mirrors the official ``predict_details`` with spconv modules built *once*
(at load, by :func:`actormatte.matting.sparse.configure_sparse_backend`) from our layers' weights,
with every eval BatchNorm that directly follows a conv folded into that conv. Weights go in the
checkpoint layout (``SubMConv2d.spconv_weight`` undoes the 1x1 remap, because spconv itself applies
the raw 1x1 reinterpretation). Stride-2 ``SparseConv2d`` with indice keys "subm1.2", "subm2.4",
"subm4.8" create the site sets, and ``SparseInverseConv2d`` with the same keys go back up.
Activations and the BatchNorms that follow an activation run on ``SparseConvTensor.features``.

Indices are built as the official code does, ``torch.stack(mask.nonzero(as_tuple=True), 1)``: a
row-major contiguous int32 ``(S, 3)`` tensor of ``(batch, y, x)``. spconv reads the raw pointer
as row-major, so a column-major view (``mask.nonzero().int()`` is one) silently gives other sites.

**CUDA** is the product path. **CPU** is a test path (CI checks this backend without a GPU) and
never chosen by ``"auto"``: the CPU wheel ``spconv`` (a) refuses a fused bias in eval mode, so
on CPU tensors every conv is built without bias and the bias is added afterwards (what spconv
itself does in train mode: the same maths); (b) races with more than one thread (MAGGIE_SPEC.md
§16), so CPU calls run with ``torch.set_num_threads(1)`` and restore the count afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
    dense_to_spconv_1x1,
)

if TYPE_CHECKING:
    from actormatte.matting.sparse import DetailLayers

logger = logging.getLogger(__name__)

INSTALL_HINT = ("install the spconv build for your CUDA (install.py does: spconv-cu120 or "
                "spconv-cu121, see docs/GPU.md) or use the pure-PyTorch backend "
                "(sparse_backend='torch')")

#: Indice keys of the three stride-2 convs (official names), finest first.
DOWN_KEYS = ("subm1.2", "subm2.4", "subm4.8")


@functools.cache
def _import_spconv() -> ModuleType | None:
    try:
        import spconv.pytorch as spconv_torch  # type: ignore[import-not-found,unused-ignore]
    except (ImportError, OSError, RuntimeError) as exc:  # OSError: CUDA libs that do not load
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


def site_indices(mask: Tensor) -> Tensor:
    """The spconv indices of the non-zero cells of a (B, H, W) mask, as the official code builds.

    Shape:
        mask (B, H, W) -> (S, 3) int32, row-major contiguous, columns (batch, y, x).
    """
    return torch.stack(torch.nonzero(mask != 0, as_tuple=True), dim=1).int().contiguous()


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op thread (spconv's CPU kernels race with more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class _Conv:
    """One spconv conv; ``bias`` is added after it (CPU), None when fused or absent."""

    module: Any
    bias: Tensor | None

    def __call__(self, x: Any) -> Any:
        x = self.module(x)
        return x if self.bias is None else x.replace_feature(x.features + self.bias)


Step = _Conv | nn.Module


def _fold_bn(conv: SparseConvModule, bn: nn.Module | None) -> tuple[Tensor, Tensor | None]:
    """``conv``'s weight in checkpoint layout and its bias, with an eval BatchNorm1d folded in.

    Shape:
        weight (Cout, k, k, Cin) float32; bias (Cout,) or None.
    """
    weight = conv.weight.detach().float()  # effective layout for 1x1: dim 0 is Cout
    bias = None if conv.bias is None else conv.bias.detach().float()
    if isinstance(bn, nn.BatchNorm1d):
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
        shift = bn.bias.detach().float() - bn.running_mean.float() * scale
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = shift if bias is None else bias * scale + shift
    if isinstance(conv, SubMConv2d) and conv.kernel_size == 1:
        weight = dense_to_spconv_1x1(weight)
    return weight, bias


def _make_conv(sp: Any, layer: SparseConvModule, bn: nn.Module | None, indice_key: str | None,
               device: torch.device) -> _Conv:
    """An spconv module carrying ``layer`` (and ``bn``, folded) in checkpoint (KRSC) layout."""
    weight, bias = _fold_bn(layer, bn)
    fused = bias is not None and device.type == "cuda"
    k = layer.kernel_size
    conv: Any
    if isinstance(layer, SparseInverseConv2d):
        conv = sp.SparseInverseConv2d(layer.in_channels, layer.out_channels, k,
                                      indice_key=indice_key, bias=fused)
    elif isinstance(layer, SparseConv2d):
        conv = sp.SparseConv2d(layer.in_channels, layer.out_channels, k, stride=2, padding=1,
                               bias=fused, indice_key=indice_key)
    elif isinstance(layer, SubMConv2d):
        conv = sp.SubMConv2d(layer.in_channels, layer.out_channels, k, padding=k // 2,
                             bias=fused, indice_key=indice_key if k > 1 else None)
    else:
        raise TypeError(f"no spconv counterpart for {type(layer).__name__}")
    if tuple(conv.weight.shape) != tuple(weight.shape):
        raise DependencyError(f"this spconv stores weights as {tuple(conv.weight.shape)}, not "
                              f"KRSC {tuple(weight.shape)}; spconv 2.3.x (FILTER_HWIO off) needed")
    with torch.no_grad():
        conv.weight.copy_(weight)
        if fused:
            conv.bias.copy_(bias)
    conv = conv.to(device).eval()
    after = None if fused or bias is None else bias.to(device)
    return _Conv(conv, after)


def _compile(sp: Any, sequence: nn.Module, key: str | None, device: torch.device,
             inverse_key: str | None = None) -> tuple[Step, ...]:
    """One of our Sequentials as spconv steps; a BN right after a conv is folded into it.

    The leading inverse conv (layer3/4/5) gets ``inverse_key``, SubM 3x3 convs get ``key``.
    """
    layers = list(sequence.children())
    steps: list[Step] = []
    index = 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, SparseConvModule):
            following = layers[index + 1] if index + 1 < len(layers) else None
            bn = following if isinstance(following, nn.BatchNorm1d) else None
            conv_key = inverse_key if isinstance(layer, SparseInverseConv2d) else key
            steps.append(_make_conv(sp, layer, bn, conv_key, device))
            index += 2 if bn is not None else 1
        else:
            steps.append(layer)
            index += 1
    return tuple(steps)


def _run(steps: Sequence[Step], x: Any) -> Any:
    """Apply compiled steps to a SparseConvTensor."""
    for step in steps:
        x = step(x) if isinstance(step, _Conv) else x.replace_feature(step(x.features))
    return x


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


class SpconvProgram:
    """The detail branch as spconv modules, built once from a decoder's layers on one device.

    Weights are copied when the program is built: rebuild it (``configure_sparse_backend``)
    after loading other weights into the layers. ``inst_spec_layer`` is used by reference.
    """

    def __init__(self, layers: DetailLayers, device: torch.device | str) -> None:
        sp = require_spconv()
        self.device = torch.device(device)
        self._sp = sp
        self._ffn = layers.inst_spec_layer
        dev = self.device
        down = [m for m in layers.dummy_downscale.children() if isinstance(m, SparseConv2d)]
        if len(down) != 3:
            raise ValueError("dummy_downscale must hold three stride-2 convs")
        self.down = tuple(_make_conv(sp, conv, None, key, dev)
                          for conv, key in zip(down, DOWN_KEYS, strict=True))
        self.layer3 = _compile(sp, layers.layer3, "subm4", dev, DOWN_KEYS[2])
        self.guidance = _compile(sp, layers.guidance_layer, "subm4", dev)
        self.layer3_smooth = _compile(sp, layers.layer3_smooth, "subm4", dev)
        self.refine_os4 = _compile(sp, layers.refine_OS4, "subm4", dev)
        self.layer4 = _compile(sp, layers.layer4, None, dev, DOWN_KEYS[1])
        self.layer4_smooth = _compile(sp, layers.layer4_smooth, None, dev)
        self.layer5 = _compile(sp, layers.layer5, "subm1", dev, DOWN_KEYS[0])
        self.layer5_smooth = _compile(sp, layers.layer5_smooth, "subm1", dev)
        self.refine_os1 = _compile(sp, layers.refine_OS1, "subm1", dev)

    def __call__(self, feat_os8: Tensor, kernels: Tensor, fea1: Tensor, fea2: Tensor,
                 fea3: Tensor, unknown: Tensor) -> tuple[Tensor, Tensor]:
        """Run the branch (one thread on CPU tensors, see the module docstring).

        Shape:
            as :func:`actormatte.matting.sparse.predict_details`; returns
            (os4 (T*N,1,H/4,W/4), os1 (T*N,1,H,W)) dense float32 logits.
        """
        if feat_os8.device != self.device:
            raise ValueError(f"spconv program built for {self.device}, inputs on "
                             f"{feat_os8.device}; rebuild it with configure_sparse_backend")
        guard = single_thread() if self.device.type == "cpu" else contextlib.nullcontext()
        # float32 throughout: the weights are float32 and spconv wants one dtype per conv
        with guard, torch.autocast(self.device.type, enabled=False):
            return self._forward(feat_os8.float(), kernels.float(), fea1.float(), fea2.float(),
                                 fea3.float(), unknown)

    def _forward(self, feat_os8: Tensor, kernels: Tensor, fea1: Tensor, fea2: Tensor,
                 fea3: Tensor, unknown: Tensor) -> tuple[Tensor, Tensor]:
        frames, instances, height, width = unknown.shape
        elements = frames * instances
        indices = site_indices(unknown.reshape(elements, height, width))  # (S1, 3) (n, y, x)
        x1 = self._sp.SparseConvTensor(fea1.new_zeros(indices.shape[0], 32), indices,
                                       [height, width], elements)
        x8 = _run(self.down, x1)  # shares its indice dict with x1: keys subm1.2 .. subm4.8
        kernel_rows = kernels.reshape(elements, -1)[x8.indices[:, 0].long()]  # (S8, 64)
        z = _site_features(feat_os8, x8, instances) * kernel_rows
        x = x8.replace_feature(self._ffn(z))

        x = _run(self.layer3, x)
        shortcut = _site_features(fea3, x, instances)
        guide = _run(self.guidance, x.replace_feature(torch.cat([shortcut, x.features], dim=1)))
        x = _run(self.layer3_smooth, x.replace_feature(shortcut * guide.features))
        os4 = _densify(_run(self.refine_os4, x), elements)

        x = _run(self.layer4, x)
        x = x.replace_feature(torch.cat([_site_features(fea2, x, instances), x.features], dim=1))
        x = _run(self.layer4_smooth, x)

        x = _run(self.layer5, x)
        x = x.replace_feature(torch.cat([_site_features(fea1, x, instances), x.features], dim=1))
        x = _run(self.layer5_smooth, x)
        os1 = _densify(_run(self.refine_os1, x), elements)
        return os4, os1
