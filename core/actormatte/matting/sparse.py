"""MaGGIe's sparse progressive refinement (detail branch OS8 -> OS4 -> OS1), public interface.

The decoder (:mod:`actormatte.matting`) registers the modules of :func:`detail_layer_modules`
under their checkpoint names and calls :func:`predict_details` with its OS8 feature, the
instance kernels, the shortcut features and the OS1 sites ("unknown"). Two backends compute the
same function (MAGGIE_SPEC.md §10):

* ``"torch"``: rulebook sparse convs in pure PyTorch (:mod:`.sparse_ops`), CPU or CUDA,
  deterministic for any thread count. The default everywhere except CUDA-with-spconv.
* ``"spconv"``: spconv 2.3 (:mod:`.sparse_spconv`, imported lazily), the official
  implementation's library; same semantics, different summation order. Its modules are built
  once by :func:`configure_sparse_backend` (``load_maggie`` calls it). On CUDA tensors it is the
  product path; on CPU tensors a test path only (single-threaded, bias added after the conv).

``"auto"`` picks spconv for CUDA when it imports, else torch; it never picks spconv on the CPU
(its CPU kernels race with more than one thread, spec §16). :func:`resolve_sparse_backend` says
which backend a setting gives on a device and why (``actormatte info`` reports it).

Both backends compute in float32 whatever autocast is active: the site logits go through the
official float32 -99/+99 round trip, and the branch is a small part of the FLOPs.

Batching: one sparse batch element per (frame, instance), ``n = t * N + j`` (frame-major). The
torch backend processes consecutive elements in chunks of at most ``max_sites`` OS1 sites
(elements never interact), which bounds memory without changing results.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import torch
from torch import Tensor, nn

from actormatte.errors import ShapeError
from actormatte.matting.sparse_backend import (
    SPARSE_BACKENDS,
    Backend,
    configure_sparse_backend,
    resolve_sparse_backend,
)
from actormatte.matting.sparse_layers import (
    LevelRules,
    build_detail_layers,
    run_sparse,
)
from actormatte.matting.sparse_ops import (
    SiteSet,
    gather_sites,
    inverse_rulebook,
    scatter_logits,
    subm3_rulebook,
    tile_rulebook,
)

if TYPE_CHECKING:
    from actormatte.matting.sparse_spconv import SpconvProgram

__all__ = ["SPARSE_BACKENDS", "Backend", "DetailLogits", "configure_sparse_backend",
           "detail_layer_modules", "predict_details", "resolve_sparse_backend"]

logger = logging.getLogger(__name__)

Subm3Strategy = Literal["auto", "tiles", "taps"]

#: OS1 sites per chunk of batch elements in the torch backend (bounds peak memory).
DEFAULT_MAX_SITES = 1 << 17

#: Logit written at non-sites, as in the official densification.
OFF_SITE_LOGIT = -99.0


def detail_layer_modules() -> list[tuple[str, nn.Module]]:
    """The detail-branch modules, in checkpoint order, for ``decoder.add_module(name, module)``.

    Names: dummy_downscale, layer3, guidance_layer, layer3_smooth, layer4, layer4_smooth, layer5,
    layer5_smooth, refine_OS4, refine_OS1 (the official attribute names, hence refine_OS4's
    capitals). Their state_dict keys and shapes are those of the official checkpoint; 1x1 SubM
    weights are remapped on load and back on save (see :mod:`.sparse_layers`).
    """
    return build_detail_layers()


class DetailLayers(Protocol):
    """What :func:`predict_details` needs from the decoder (in practice the decoder itself).

    ``inst_spec_layer`` maps (..., 64) -> (..., 64) on the last dim; the others are the modules of
    :func:`detail_layer_modules` under their names.
    """

    inst_spec_layer: nn.Module
    dummy_downscale: nn.Module
    layer3: nn.Module
    guidance_layer: nn.Module
    layer3_smooth: nn.Module
    layer4: nn.Module
    layer4_smooth: nn.Module
    layer5: nn.Module
    layer5_smooth: nn.Module
    refine_OS4: nn.Module  # noqa: N815 - official checkpoint name
    refine_OS1: nn.Module  # noqa: N815 - official checkpoint name


@dataclass(frozen=True)
class DetailLogits:
    """Dense logits of the detail branch, exactly -99 off-site.

    Attributes:
        os4: OS4 logits per sparse batch element n = t * N + j.
        os1: OS1 logits per sparse batch element.

    Shape:
        - os4: (T*N, 1, H/4, W/4) float32
        - os1: (T*N, 1, H, W) float32
    """

    os4: Tensor
    os1: Tensor


@dataclass(frozen=True)
class _Inputs:
    feat_os8: Tensor
    kernels: Tensor
    fea1: Tensor
    fea2: Tensor
    fea3: Tensor
    unknown: Tensor

    @property
    def num_instances(self) -> int:
        return int(self.kernels.shape[1])


def predict_details(layers: DetailLayers, feat_os8: Tensor, kernels: Tensor, fea1: Tensor,
                    fea2: Tensor, fea3: Tensor, unknown: Tensor, *, backend: Backend = "auto",
                    max_sites: int = DEFAULT_MAX_SITES, subm3: Subm3Strategy = "auto",
                    program: SpconvProgram | None = None) -> DetailLogits:
    """Run the sparse detail branch (spec §10.3) in float32 and densify its logits.

    Args:
        layers: The decoder (or any object with the :class:`DetailLayers` attributes).
        feat_os8: D8, the non-temporal OS8 feature of the instance decoder.
        kernels: Instance kernel K per frame.
        fea1: OS1 shortcut feature.
        fea2: OS2 shortcut feature.
        fea3: OS4 shortcut feature.
        unknown: OS1 sites (non-zero = site), per frame and instance.
        backend: "auto" (spconv on CUDA when it imports, else torch), "torch" or "spconv"
            (CUDA, or CPU as a single-threaded test path).
        max_sites: Torch backend: OS1 sites per chunk of batch elements (memory bound).
        subm3: Torch backend, 3x3 SubM convs: "tiles" (dense convs on active 16x16 tiles,
            fastest on the CPU), "taps" (gather-GEMM over a neighbour table, used on CUDA where
            cuDNN could pick TF32 for the tile convs) or "auto" (tiles on the CPU only).
        program: The spconv modules built at load (:func:`configure_sparse_backend`); without
            it (or on another device) a program is built for this call only.

    Returns:
        The dense OS4 and OS1 logits (float32, also under autocast).

    Raises:
        ShapeError: Inconsistent input shapes.
        InputError: An unknown backend.
        DependencyError: backend="spconv" without an importable spconv.

    Shape:
        feat_os8 (T, 64, H/8, W/8), kernels (T, N, 64), fea1 (T, 32, H, W),
        fea2 (T, 32, H/2, W/2), fea3 (T, 64, H/4, W/4), unknown (T, N, H, W) bool/uint8
        -> os4 (T*N, 1, H/4, W/4), os1 (T*N, 1, H, W); H/k means ceil(H/k).
    """
    inputs = _Inputs(feat_os8, kernels, fea1, fea2, fea3, unknown)
    _check_shapes(inputs)
    device = feat_os8.device
    if resolve_sparse_backend(backend, device.type).name == "spconv":
        if program is None or program.device != device:
            from actormatte.matting.sparse_spconv import SpconvProgram

            logger.debug("building spconv modules for one call (none built for %s)", device)
            program = SpconvProgram(layers, device)
        os4, os1 = program(feat_os8, kernels, fea1, fea2, fea3, unknown)
        return DetailLogits(os4=os4, os1=os1)
    use_tiles = subm3 == "tiles" or (subm3 == "auto" and device.type == "cpu")
    with torch.autocast(device.type, enabled=False):  # float32 weights and logits (see above)
        inputs = _Inputs(feat_os8.float(), kernels.float(), fea1.float(), fea2.float(),
                         fea3.float(), unknown)
        return _predict_details_torch(layers, inputs, max_sites, use_tiles)


def _coarse(size: int, factor: int) -> int:
    """Grid size after log2(factor) stride-2 pad-1 convs: ceil applied repeatedly."""
    while factor > 1:
        size, factor = (size + 1) // 2, factor // 2
    return size


def _check_shapes(inputs: _Inputs) -> None:
    if inputs.unknown.dim() != 4 or inputs.kernels.dim() != 3:
        raise ShapeError(f"unknown must be (T,N,H,W) and kernels (T,N,64); got "
                         f"{tuple(inputs.unknown.shape)} and {tuple(inputs.kernels.shape)}")
    frames, instances, height, width = inputs.unknown.shape
    expected = {
        "kernels": (inputs.kernels, (frames, instances, 64)),
        "feat_os8": (inputs.feat_os8, (frames, 64, _coarse(height, 8), _coarse(width, 8))),
        "fea3": (inputs.fea3, (frames, 64, _coarse(height, 4), _coarse(width, 4))),
        "fea2": (inputs.fea2, (frames, 32, _coarse(height, 2), _coarse(width, 2))),
        "fea1": (inputs.fea1, (frames, 32, height, width)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ShapeError(f"predict_details: {name} has shape {tuple(tensor.shape)}, expected "
                             f"{shape} for unknown of shape {tuple(inputs.unknown.shape)}")


def _element_chunks(counts: list[int], max_sites: int) -> Iterator[tuple[int, int]]:
    """Consecutive batch-element ranges of at most ``max_sites`` sites (at least one element)."""
    start, total = 0, 0
    for index, count in enumerate(counts):
        if index > start and total + count > max_sites:
            yield start, index
            start, total = index, 0
        total += count
    if counts:
        yield start, len(counts)


def _predict_details_torch(layers: DetailLayers, inputs: _Inputs, max_sites: int,
                           use_tiles: bool) -> DetailLogits:
    frames, instances, height, width = inputs.unknown.shape
    elements = frames * instances
    unknown = inputs.unknown.reshape(elements, height, width)  # (T*N, H, W)
    device = inputs.feat_os8.device
    os4 = torch.full((elements, 1, _coarse(height, 4), _coarse(width, 4)), OFF_SITE_LOGIT,
                     dtype=torch.float32, device=device)
    os1 = torch.full((elements, 1, height, width), OFF_SITE_LOGIT, dtype=torch.float32,
                     device=device)
    counts = (unknown != 0).flatten(1).sum(1).tolist()
    for start, stop in _element_chunks(counts, max_sites):
        if sum(counts[start:stop]) > 0:
            _refine_chunk(layers, inputs, (start, stop), use_tiles, (os4[start:stop],
                                                                     os1[start:stop]))
    return DetailLogits(os4=os4, os1=os1)


def _refine_chunk(layers: DetailLayers, inputs: _Inputs, elements: tuple[int, int],
                  use_tiles: bool, outputs: tuple[Tensor, Tensor]) -> None:
    """Detail branch for batch elements [start, stop); writes their site logits into the maps."""
    start, stop = elements
    os4_out, os1_out = outputs
    subm3 = tile_rulebook if use_tiles else subm3_rulebook
    frames, instances, height, width = inputs.unknown.shape
    unknown = inputs.unknown.reshape(frames * instances, height, width)[start:stop]  # (B, H, W)
    sites1 = SiteSet.from_mask(unknown)
    sites2 = sites1.downsample()
    sites4 = sites2.downsample()
    sites8 = sites4.downsample()
    element = torch.arange(start, stop, device=unknown.device)  # (B,) global n
    frame_of = element // instances  # (B,)
    kernels = inputs.kernels.reshape(frames * instances, -1)[start:stop]  # (B, 64)

    # OS8: D8 at S8, times the instance kernel, through the instance-specific FFN.
    z = gather_sites(inputs.feat_os8, frame_of, sites8) * kernels[sites8.coords[:, 0]]
    z = layers.inst_spec_layer(z)

    # OS4: upsample, guidance from fea3, smooth, OS4 logits.
    rules4 = LevelRules(subm3(sites4), inverse_rulebook(sites4, sites8),
                        sites4.num_sites)
    z = run_sparse(layers.layer3, z, rules4)
    shortcut = gather_sites(inputs.fea3, frame_of, sites4)
    z = shortcut * run_sparse(layers.guidance_layer, torch.cat([shortcut, z], dim=1), rules4)
    z = run_sparse(layers.layer3_smooth, z, rules4)
    scatter_logits(run_sparse(layers.refine_OS4, z, rules4), sites4, os4_out)

    # OS2: upsample, concat fea2, smooth (1x1 convs only, no 3x3 rulebook).
    rules2 = LevelRules(None, inverse_rulebook(sites2, sites4), sites2.num_sites)
    z = run_sparse(layers.layer4, z, rules2)
    z = torch.cat([gather_sites(inputs.fea2, frame_of, sites2), z], dim=1)
    z = run_sparse(layers.layer4_smooth, z, rules2)
    del rules2, rules4

    # OS1: upsample, concat fea1, smooth, OS1 logits.
    rules1 = LevelRules(subm3(sites1), inverse_rulebook(sites1, sites2),
                        sites1.num_sites)
    z = run_sparse(layers.layer5, z, rules1)
    z = torch.cat([gather_sites(inputs.fea1, frame_of, sites1), z], dim=1)
    z = run_sparse(layers.layer5_smooth, z, rules1)
    scatter_logits(run_sparse(layers.refine_OS1, z, rules1), sites1, os1_out)
