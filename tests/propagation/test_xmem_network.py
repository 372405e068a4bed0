"""The network's state_dict matches the official table; the no-sensory variant builds."""

from __future__ import annotations

from pathlib import Path

import torch

from actormatte.propagation import XMemDims, XMemNet
from support.reference import XMEM_REF


def _table(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        rows.append((key, dims, dtype))
    return rows


def test_state_dict_keys_order_shapes_dtypes_equal_official_table() -> None:
    with torch.device("meta"):
        net = XMemNet()
    ours = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
            for k, v in net.state_dict().items()]
    assert ours == _table(XMEM_REF / "xmem_state.tsv")


def test_no_sensory_variant_drops_hidden_modules() -> None:
    with torch.device("meta"):
        net = XMemNet(XMemDims(hidden_dim=0))
    keys = net.state_dict().keys()
    assert not any("hidden_update" in k or "hidden_reinforce" in k for k in keys)
    assert net.decoder.fuser.block1.conv1.weight.shape == (512, 1024 + 512, 3, 3)
