"""CPU bf16 autocast: the sparse torch backend runs under it, and MaGGIe's deviation is bounded.

Measured on the golden A2 crop below (docs/GPU.md records the figures): bf16 moves a few detail
sites (the uncertainty band is a threshold on alpha_os8), so the max deviation is large where a
site switches, while the mean stays small. Bounds are the measured values with margin.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from actormatte.config import PRECISIONS, SPARSE_BACKENDS
from actormatte.device import PRECISIONS as DEVICE_PRECISIONS
from actormatte.device import precision_forward, resolve_precision
from actormatte.matting import load_maggie
from actormatte.matting.sparse import predict_details
from actormatte.matting.sparse_backend import SPARSE_BACKENDS as MATTING_BACKENDS
from support.reference import ROOT

sys.path.insert(0, str(ROOT / "tests" / "matting"))
from _sparse_fixtures import DetailLayersStandIn, random_checkpoint, random_inputs  # noqa: E402
from test_maggie_golden import WEIGHTS, _golden, _inputs  # noqa: E402


def test_config_names_match_the_modules() -> None:
    assert PRECISIONS == DEVICE_PRECISIONS and SPARSE_BACKENDS == MATTING_BACKENDS


@pytest.mark.parametrize("subm3", ["tiles", "taps"])
def test_sparse_torch_backend_runs_under_bf16_autocast(subm3: str) -> None:
    layers = DetailLayersStandIn()
    layers.load_state_dict(random_checkpoint(4))
    layers.eval()
    inputs = random_inputs(5, 2, 2, 40, 48)
    with torch.no_grad():
        ref = predict_details(layers, **inputs, backend="torch", subm3=subm3)  # type: ignore[arg-type]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_in = {k: v.bfloat16() if v.is_floating_point() else v for k, v in inputs.items()}
            out = predict_details(layers, **bf16_in, backend="torch", subm3=subm3)  # type: ignore[arg-type]
    assert out.os1.dtype == torch.float32 and torch.equal(out.os1 == -99, ref.os1 == -99)
    assert float((out.os1 - ref.os1).abs().max()) < 0.5  # only the inputs were rounded to bf16


def test_maggie_bf16_deviation_from_fp32(maggie_weights_factory: Callable[..., Path]) -> None:
    image, mask = _inputs(_golden("A2"))
    image = image[:, :2, :, 64:160, 64:192].contiguous()  # (1, 2, 3, 96, 128)
    mask = mask[:, :2, :2, 64:160, 64:192].contiguous()
    net = load_maggie(maggie_weights_factory(*WEIGHTS["A2"]), sparse_backend="torch")
    with torch.inference_mode():
        ref = net(image, mask)
        out = precision_forward(net, resolve_precision("bf16", "cpu"))(image, mask)
    assert out.refined.dtype == torch.float32
    deviation = {name: (getattr(out, name) - getattr(ref, name)).abs()
                 for name in ("alpha_os8", "refined")}
    print({name: (float(d.max()), float(d.mean())) for name, d in deviation.items()})
    assert float(deviation["alpha_os8"].max()) < 0.15
    assert float(deviation["alpha_os8"].mean()) < 5e-3
    assert float(deviation["refined"].mean()) < 1e-2
    assert float((out.detail_mask != ref.detail_mask).float().mean()) < 0.02
