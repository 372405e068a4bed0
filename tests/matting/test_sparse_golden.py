"""Sparse detail branch against the official goldens (GOLDEN_README.md).

Site sets: S2/S4/S8 from the golden OS1 sites equal spconv's index sets (cases A, C).
OS4 logits: the OS4 path needs only D8 (cap_os8_out_feat), the kernels (cap_inst_tokens) and fea3
(cap_shortcut_os4), all stored in the *_debug goldens (C and A2; A has no debug file, and A2's
sparse-branch weights are A's: --sn-power-iters only changes SN u/v). fea1/fea2 are not stored,
so the OS1 path is checked against the dense oracle here and end to end by test_maggie_golden.
Tolerance atol 1e-4 (observed: one 2^-17 quantisation step).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from _sparse_fixtures import DetailLayersStandIn
from safetensors.torch import load_file

from actormatte.matting.sparse import predict_details
from actormatte.matting.sparse_ops import SiteSet

MAGGIE_REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "maggie"
CASES = {"A": ("video", 1, "overrides_A.txt"), "A2": ("video", 1, "overrides_A.txt"),
         "C": ("image", 3, "overrides_C.txt")}


def _golden(name: str) -> dict[str, np.ndarray]:
    with np.load(MAGGIE_REF / f"golden_{name}.npz") as data:
        return dict(data)


@pytest.mark.parametrize("case", ["A", "C"])
def test_site_sets_match_spconv(case: str) -> None:
    golden = _golden(case)
    sites = SiteSet.from_mask(torch.from_numpy(golden["out_detail_mask"][0]).flatten(0, 1))
    for stride in (2, 4, 8):
        sites = sites.downsample()
        expected = {tuple(row) for row in golden[f"cap_sparse_os{stride}_indices"].tolist()}
        assert {tuple(row) for row in sites.coords.tolist()} == expected, f"OS{stride}"


@pytest.mark.parametrize("case", ["C", "A2"])
def test_os4_logits_match_golden(case: str, maggie_weights_factory: Callable[..., Path]) -> None:
    weights = load_file(str(maggie_weights_factory(*CASES[case])))
    layers = DetailLayersStandIn()
    names = {name for name, _ in layers.named_children()}
    layers.load_state_dict({key[len("decoder."):]: value for key, value in weights.items()
                            if key.startswith("decoder.") and key.split(".")[1] in names})
    layers.eval()
    golden, debug = _golden(case), _golden(f"{case}_debug")
    unknown = torch.from_numpy(golden["out_detail_mask"][0])  # (T, N, H, W)
    frames, instances, height, width = unknown.shape
    kernels = torch.from_numpy(debug["cap_inst_tokens"])[:, :instances]  # (1, N, 64)
    gen = torch.Generator().manual_seed(0)  # fea1/fea2 only feed the OS1 path
    with torch.no_grad():
        out = predict_details(
            layers, torch.from_numpy(debug["cap_os8_out_feat"]),
            kernels.expand(frames, instances, 64),
            torch.randn(frames, 32, height, width, generator=gen),
            torch.randn(frames, 32, height // 2, width // 2, generator=gen),
            torch.from_numpy(debug["cap_shortcut_os4"]), unknown)
    expected = torch.from_numpy(debug["cap_os4_logits_dense"])
    assert torch.equal(out.os4 == -99, expected == -99)
    torch.testing.assert_close(out.os4, expected, atol=1e-4, rtol=0)
    assert torch.equal(out.os1 == -99, unknown.reshape(-1, 1, height, width) == 0)
