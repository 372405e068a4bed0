"""CUDA: fp32 and autocast fp16 propagation on golden A (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actormatte.propagation import XMemProcessor
from support.reference import XMEM_REF

from .golden_runner import config_of


@pytest.mark.gpu
def test_golden_a_cuda_fp32_and_autocast_fp16(xmem_net_factory, cuda_device) -> None:
    g = np.load(XMEM_REF / "golden_A.npz")
    net = xmem_net_factory(1).to(cuda_device)
    try:
        results = {}
        for autocast in (False, True):
            proc = XMemProcessor(net, config_of(g))
            proc.set_all_labels([1, 2])
            outs = []
            for t in range(g["frames_norm"].shape[0]):
                image = torch.from_numpy(g["frames_norm"][t]).to(cuda_device)
                mask = torch.from_numpy(g["mask_in_f0"]).to(cuda_device) if t == 0 else None
                with torch.autocast("cuda", dtype=torch.float16, enabled=autocast):
                    prob = proc.step(image, mask, end=t == g["frames_norm"].shape[0] - 1)
                assert prob.device.type == "cuda"
                outs.append(prob.float().cpu().numpy())
            results[autocast] = np.stack(outs)
        assert np.isfinite(results[True]).all()
        assert np.abs(results[False] - g["prob"]).max() < 2e-2  # TF32/cuDNN vs CPU reference
        assert np.abs(results[True] - results[False]).max() < 0.1  # fp16: loose
    finally:
        net.to("cpu")
