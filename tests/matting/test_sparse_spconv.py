"""The spconv backend on CPU tensors (the CPU ``spconv`` wheel): a test path for the CUDA product.

The CPU wheel has the same Python API and index handling as spconv-cu12x, so these tests catch
layout and wiring bugs of :mod:`actormatte.matting.sparse_spconv` without a GPU: the index layout,
the BN folding and bias handling, spconv vs torch on whole forwards through ``load_maggie``
(alphas and detail masks, several sizes and instance counts, <= 1e-4) and the spconv backend
against the official goldens with the torch backend's tolerances. Skipped where spconv does not
import (it is in the ``test`` extra where a wheel exists).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _sparse_fixtures import DetailLayersStandIn, random_checkpoint, random_inputs
from test_maggie_golden import WEIGHTS, _check_outputs, _golden, _inputs

from actormatte.errors import DependencyError, InputError
from actormatte.matting import load_maggie
from actormatte.matting.model import MaggieNetwork
from actormatte.matting.reference import forward_official
from actormatte.matting.sparse import predict_details
from actormatte.matting.sparse_backend import resolve_sparse_backend

spconv = pytest.importorskip("spconv.pytorch", reason="the CPU spconv wheel is not installed")

from actormatte.matting.sparse_spconv import SpconvProgram, site_indices  # noqa: E402

ATOL = 1e-4


def _layers(seed: int) -> DetailLayersStandIn:
    layers = DetailLayersStandIn()
    layers.load_state_dict(random_checkpoint(seed), strict=True)
    return layers.eval()


def test_site_indices_are_row_major_like_the_official_code() -> None:
    mask = torch.zeros(2, 5, 7, dtype=torch.uint8)
    mask[0, 1, 2] = mask[1, 4, 6] = mask[1, 0, 0] = 1
    indices = site_indices(mask)
    official = torch.stack(torch.nonzero(mask, as_tuple=True), 1).int()
    assert indices.dtype == torch.int32 and indices.is_contiguous()
    assert indices.stride() == (3, 1) and torch.equal(indices, official)
    # the bug this replaces: same values, column-major memory (spconv reads the raw pointer)
    assert (mask != 0).nonzero().int().stride() != (3, 1)


@pytest.mark.parametrize(("frames", "instances", "height", "width"),
                         [(2, 2, 40, 48), (1, 3, 37, 50), (3, 1, 64, 96)])
def test_spconv_matches_torch_on_the_detail_branch(frames: int, instances: int, height: int,
                                                   width: int) -> None:
    layers = _layers(seed=height)
    program = SpconvProgram(layers, "cpu")
    inputs = random_inputs(height + width, frames, instances, height, width)
    with torch.no_grad():
        ours = predict_details(layers, **inputs, backend="torch")
        theirs = predict_details(layers, **inputs, backend="spconv", program=program)
    assert torch.equal(ours.os1 == -99, theirs.os1 == -99)
    assert torch.equal(ours.os4 == -99, theirs.os4 == -99)
    torch.testing.assert_close(theirs.os4, ours.os4, atol=ATOL, rtol=0)
    torch.testing.assert_close(theirs.os1, ours.os1, atol=ATOL, rtol=0)


def test_cpu_spconv_restores_threads_and_ignores_autocast() -> None:
    layers = _layers(seed=2)
    program = SpconvProgram(layers, "cpu")
    inputs = random_inputs(4, 1, 2, 32, 48)
    before = torch.get_num_threads()
    with torch.no_grad():
        plain = program(**inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = program(**{k: v.bfloat16() if v.is_floating_point() else v
                              for k, v in inputs.items()})
    assert torch.get_num_threads() == before
    assert auto[1].dtype == torch.float32
    torch.testing.assert_close(auto[1], plain[1], atol=0.1, rtol=0)  # bf16 inputs, fp32 maths


def test_backend_choice() -> None:
    assert resolve_sparse_backend("auto", "cpu", True).name == "torch"
    assert resolve_sparse_backend("auto", "cuda", True).name == "spconv"
    assert resolve_sparse_backend("auto", "cuda", False).name == "torch"
    assert resolve_sparse_backend("spconv", "cpu", True).name == "spconv"
    with pytest.raises(DependencyError, match="spconv"):
        resolve_sparse_backend("spconv", "cuda", False)
    with pytest.raises(InputError, match="sparse backend"):
        resolve_sparse_backend("fast", "cpu", True)


def _crop(golden: dict[str, np.ndarray], frames: int, instances: int, height: int,
          width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A crop at (64, 64) of the golden clip: it holds instance edges, so detail sites."""
    image, mask = _inputs(golden)
    rows, cols = slice(64, 64 + height), slice(64, 64 + width)
    return (image[:, :frames, :, rows, cols].contiguous(),
            mask[:, :frames, :instances, rows, cols].contiguous())


@pytest.fixture(scope="module")
def frozen_nets(maggie_weights_factory: Callable[..., Path]
                ) -> Callable[[str, str], MaggieNetwork]:
    """Networks loaded once per (case, backend) through the public loader (frozen SN)."""
    cache: dict[tuple[str, str], MaggieNetwork] = {}

    def get(case: str, backend: str) -> MaggieNetwork:
        if (case, backend) not in cache:
            cache[case, backend] = load_maggie(maggie_weights_factory(*WEIGHTS[case]),
                                               spectral_norm="frozen",
                                               sparse_backend=backend)  # type: ignore[arg-type]
        return cache[case, backend]
    return get


@pytest.mark.parametrize(("case", "frames", "instances", "height", "width"),
                         [("A2", 2, 3, 128, 160), ("A2", 2, 2, 64, 96), ("C", 1, 2, 128, 96)])
def test_whole_forward_spconv_matches_torch(case: str, frames: int, instances: int, height: int,
                                            width: int,
                                            frozen_nets: Callable[[str, str], MaggieNetwork]
                                            ) -> None:
    image, mask = _crop(_golden(case), frames, instances, height, width)
    outs = {}
    for backend in ("torch", "spconv"):
        net = frozen_nets(case, backend)
        assert (net.decoder.spconv_program is not None) == (backend == "spconv")
        with torch.inference_mode():
            outs[backend] = net(image, mask)
    ours, theirs = outs["torch"], outs["spconv"]
    assert int(ours.detail_mask.sum()) > 100  # the sparse branch really ran
    assert torch.equal(theirs.detail_mask, ours.detail_mask)
    for name in ("alpha_os8", "alpha_os4", "alpha_os1", "refined"):
        torch.testing.assert_close(getattr(theirs, name), getattr(ours, name), atol=ATOL, rtol=0)


def test_spconv_backend_matches_golden_a2_frozen(
        frozen_nets: Callable[[str, str], MaggieNetwork]) -> None:
    golden = _golden("A2")
    with torch.inference_mode():
        out = forward_official(frozen_nets("A2", "spconv"), *_inputs(golden))
    _check_outputs(out, golden, video=True)


def test_spconv_backend_matches_golden_c_stateful(
        maggie_weights_factory: Callable[..., Path]) -> None:
    golden = _golden("C")
    net = load_maggie(maggie_weights_factory(*WEIGHTS["C"]), spectral_norm="stateful",
                      sparse_backend="spconv")
    with torch.inference_mode():
        out = forward_official(net, *_inputs(golden))
    _check_outputs(out, golden, video=False)
