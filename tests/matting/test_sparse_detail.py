"""Sparse detail branch: 1x1 remap, checkpoint keys, the dense masked oracle, determinism.

The oracle (tests/matting/_sparse_fixtures.py) restates spec §10 with dense convs over
zero-filled maps times the site mask; predict_details uses rulebooks/tiles. Logits are compared
with atol 1e-4 (both sides quantise site logits to the 2^-17 grid of the -99/+99 round trip).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from _sparse_fixtures import (
    DetailLayersStandIn,
    oracle_predict_details,
    random_checkpoint,
    random_inputs,
)

from actormatte.errors import InputError, ShapeError
from actormatte.matting.sparse import detail_layer_modules, predict_details
from actormatte.matting.sparse_layers import (
    SubMConv2d,
    dense_to_spconv_1x1,
    spconv_1x1_to_dense,
)
from actormatte.matting.sparse_ops import SiteSet, inverse_rulebook
from support.reference import MAGGIE_REF

ATOL = 1e-4


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("cin", "cout"), [(32, 32), (128, 64), (64, 32)])
def test_1x1_remap_matches_spconv_reinterpretation(cin: int, cout: int) -> None:
    gen = torch.Generator().manual_seed(cin + cout)
    raw = torch.randn(cout, 1, 1, cin, generator=gen)
    x = torch.randn(7, cin, generator=gen)
    spconv_out = x @ raw.reshape(-1).reshape(cin, cout)  # spconv's 1x1 SubM (spec §10.2)
    effective = spconv_1x1_to_dense(raw)
    assert effective.shape == raw.shape
    torch.testing.assert_close(x @ effective.view(cout, cin).t(), spconv_out)
    assert torch.equal(dense_to_spconv_1x1(effective), raw)
    if cin == cout:  # the square case is a plain transpose of the stored matrix
        assert torch.equal(effective.view(cout, cin), raw.view(cout, cin).t())


@pytest.mark.parametrize(("cin", "cout"), [(64, 64), (128, 64)])
def test_1x1_module_hooks_round_trip(cin: int, cout: int) -> None:
    gen = torch.Generator().manual_seed(3)
    raw = {"weight": torch.randn(cout, 1, 1, cin, generator=gen),
           "bias": torch.randn(cout, generator=gen)}
    conv = SubMConv2d(cin, cout, 1, bias=True)
    conv.load_state_dict(raw)
    saved = conv.state_dict()
    assert all(torch.equal(saved[k], raw[k]) for k in raw)
    assert torch.equal(conv.spconv_weight(), raw["weight"])
    x = torch.randn(5, cin, generator=gen)
    expected = x @ raw["weight"].reshape(-1).reshape(cin, cout) + raw["bias"]
    torch.testing.assert_close(conv(x, None), expected)  # type: ignore[arg-type]


def test_state_dict_keys_match_checkpoint_table() -> None:
    names = [name for name, _ in detail_layer_modules()]
    table = []
    for line in (MAGGIE_REF / "maggie_video_state.tsv").read_text().splitlines():
        key, shape, _ = line.split("\t")
        if key.startswith("decoder.") and key.split(".")[1] in names:
            table.append((key, tuple(int(s) for s in shape.split(",")) if shape else ()))
    ours = [(f"decoder.{name}.{key}", tuple(t.shape))
            for name, module in detail_layer_modules() for key, t in module.state_dict().items()]
    assert ours == table


def test_inverse_rulebook_covers_every_transpose_tap() -> None:
    # Each fine site lists exactly the coarse cells conv_transpose2d(stride 2, pad 1) reads.
    mask = torch.ones(1, 5, 7, dtype=torch.bool)
    fine = SiteSet.from_mask(mask)
    coarse = fine.downsample()
    taps = sum(group.coarse_rows.shape[0] * len(group.taps)
               for group in inverse_rulebook(fine, coarse))
    # per axis: even coordinates get 1 tap, odd 2 (one may fall outside the grid)
    per_axis = [sum(1 if p % 2 == 0 else 2 for p in range(n)) for n in (5, 7)]
    assert taps == per_axis[0] * per_axis[1]


def _loaded_layers(seed: int) -> tuple[DetailLayersStandIn, dict[str, torch.Tensor]]:
    state = random_checkpoint(seed)
    layers = DetailLayersStandIn()
    layers.load_state_dict(state, strict=True)
    return layers.eval(), state


@pytest.mark.parametrize("subm3", ["tiles", "taps"])
@pytest.mark.parametrize(("frames", "instances", "height", "width"),
                         [(2, 2, 40, 48), (1, 3, 37, 50)])
def test_matches_dense_masked_oracle(subm3: str, frames: int, instances: int, height: int,
                                     width: int) -> None:
    layers, state = _loaded_layers(seed=height)
    inputs = random_inputs(height + width, frames, instances, height, width)
    with torch.no_grad():
        out = predict_details(layers, **inputs, backend="torch", subm3=subm3)  # type: ignore[arg-type]
        os4, os1 = oracle_predict_details(state, layers.inst_spec_layer, **inputs)
    assert out.os4.shape == os4.shape and out.os1.shape == os1.shape
    assert torch.equal(out.os4 == -99, os4 == -99) and torch.equal(out.os1 == -99, os1 == -99)
    assert 0.2 < (os1 != -99).float().mean() < 0.6  # a real mix of sites and non-sites
    torch.testing.assert_close(out.os4, os4, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.os1, os1, atol=ATOL, rtol=0)


def test_chunking_and_empty_elements() -> None:
    layers, _ = _loaded_layers(seed=5)
    inputs = random_inputs(6, 2, 3, 32, 40)
    inputs["unknown"][0, 1] = 0  # an element without sites stays at -99
    with torch.no_grad():
        whole = predict_details(layers, **inputs, backend="torch")
        chunked = predict_details(layers, **inputs, backend="torch", max_sites=1000)
    assert (whole.os1.view(2, 3, 32, 40)[0, 1] == -99).all()
    torch.testing.assert_close(chunked.os1, whole.os1, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked.os4, whole.os4, atol=1e-5, rtol=0)


def test_one_and_two_threads_identical() -> None:
    layers, _ = _loaded_layers(seed=9)
    inputs = random_inputs(10, 2, 2, 96, 128)
    outputs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with torch.no_grad():
            outputs.append(predict_details(layers, **inputs, backend="torch"))
    assert torch.equal(outputs[0].os1, outputs[1].os1)
    assert torch.equal(outputs[0].os4, outputs[1].os4)


def test_bad_shapes_and_backend() -> None:
    layers, _ = _loaded_layers(seed=1)
    inputs = random_inputs(1, 1, 2, 32, 32)
    inputs["fea2"] = inputs["fea2"][..., :-1]
    with pytest.raises(ShapeError, match="fea2"):
        predict_details(layers, **inputs)
    with pytest.raises(InputError, match="sparse backend"):
        predict_details(layers, **random_inputs(1, 1, 2, 32, 32), backend="dense")  # type: ignore[arg-type]


@pytest.mark.gpu
def test_spconv_matches_torch_backend(cuda_device: torch.device) -> None:
    pytest.importorskip("spconv.pytorch")
    layers, _ = _loaded_layers(seed=11)
    layers = layers.to(cuda_device)
    inputs = {k: v.to(cuda_device) for k, v in random_inputs(12, 3, 3, 64, 96).items()}
    with torch.no_grad():
        ours = predict_details(layers, **inputs, backend="torch")
        theirs = predict_details(layers, **inputs, backend="spconv")
    torch.testing.assert_close(theirs.os4, ours.os4, atol=ATOL, rtol=0)
    torch.testing.assert_close(theirs.os1, ours.os1, atol=ATOL, rtol=0)
