"""Strict, safe loading of XMem checkpoints and the official 4->5 channel remap."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

from actormatte.errors import WeightsError
from actormatte.propagation import (
    XMemDims,
    XMemNet,
    build_xmem,
    dims_from_state_dict,
    load_xmem,
    remap_value_encoder_input,
)


def _meta_state(dims: XMemDims | None = None) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return dict(XMemNet(dims or XMemDims()).state_dict())


def test_remap_appends_zero_fifth_channel_and_is_pure() -> None:
    w4 = torch.randn(64, 4, 7, 7)
    other = torch.randn(3)
    state = {"value_encoder.conv1.weight": w4, "x": other}
    out = remap_value_encoder_input(state)
    assert state["value_encoder.conv1.weight"] is w4  # input untouched
    assert out["value_encoder.conv1.weight"].shape == (64, 5, 7, 7)
    assert torch.equal(out["value_encoder.conv1.weight"][:, :4], w4)
    assert torch.count_nonzero(out["value_encoder.conv1.weight"][:, 4]) == 0
    assert out["x"] is other
    w5 = torch.randn(64, 5, 7, 7)
    assert remap_value_encoder_input({"value_encoder.conv1.weight": w5})[
        "value_encoder.conv1.weight"] is w5


def test_dims_read_from_shapes() -> None:
    assert dims_from_state_dict(_meta_state()) == XMemDims(64, 512, 64)
    assert dims_from_state_dict(_meta_state(XMemDims(hidden_dim=0))).hidden_dim == 0


@pytest.mark.parametrize("mutation, expected", [
    ("missing", "missing decoder.pred.bias"),
    ("unexpected", "unexpected decoder.extra.weight"),
    ("shape", "wrong shape key_proj.d_proj.bias"),
    ("dtype", "wrong dtype key_encoder.bn1.running_mean"),
])
def test_strict_load_names_the_bad_key(mutation: str, expected: str) -> None:
    state = _meta_state()
    if mutation == "missing":
        del state["decoder.pred.bias"]
    elif mutation == "unexpected":
        state["decoder.extra.weight"] = torch.zeros(1, device="meta")
    elif mutation == "shape":
        state["key_proj.d_proj.bias"] = torch.zeros(2, device="meta")
    else:
        state["key_encoder.bn1.running_mean"] = torch.zeros(64, dtype=torch.float16, device="meta")
    with pytest.raises(WeightsError, match=expected):
        build_xmem(state)


def test_every_bad_key_is_listed() -> None:
    state = _meta_state()
    del state["decoder.pred.bias"]
    del state["decoder.pred.weight"]
    with pytest.raises(WeightsError) as err:
        build_xmem(state)
    assert "decoder.pred.bias" in str(err.value) and "decoder.pred.weight" in str(err.value)
    assert "official XMem.pth" in str(err.value)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"a": _Evil()}, path)
    with pytest.raises(WeightsError, match="refuse"):
        load_xmem(path)


def test_missing_and_non_state_dict_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_xmem(tmp_path / "nope.pth")
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(WeightsError, match="plain state dict"):
        load_xmem(path)


def test_loads_pth_and_safetensors_identically(xmem_weights_factory, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    pth = xmem_weights_factory(1)
    state = torch.load(pth, map_location="cpu", weights_only=True)
    assert isinstance(state, collections.OrderedDict)
    st = tmp_path / "w.safetensors"
    save_file(state, str(st))
    a, b = load_xmem(pth), load_xmem(st)
    assert not a.training and a.dims == XMemDims(64, 512, 64)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
