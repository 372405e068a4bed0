"""XMemProcessor with the real network on tiny frames: resume, determinism, late/corrected masks."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch

from actormatte.errors import InputError, ShapeError
from actormatte.propagation import (
    XMemConfig,
    XMemProcessor,
    XMemState,
    normalise_frame,
    resize_for_xmem,
    resize_mask_for_xmem,
    soft_aggregate,
    upsample_prob,
    xmem_image_size,
    xmem_mask_size,
)
from actormatte.propagation.processor import pad_to_multiple, unpad

# Small memory so 12 frames exercise consolidation into long-term memory.
CONFIG = XMemConfig(mem_every=2, min_mid_term_frames=2, max_mid_term_frames=3,
                    num_prototypes=8, max_long_term_elements=100, enable_long_term_count_usage=True)


def _frames(num: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    rgb = torch.rand(48, 56, 3, generator=gen)
    return [normalise_frame(rgb.roll(2 * t, dims=1)) for t in range(num)]


def _mask(num: int = 2) -> torch.Tensor:
    mask = torch.zeros(num, 48, 56)
    mask[0, 5:25, 5:25] = 1
    if num > 1:
        mask[1, 28:45, 30:52] = 1
    return mask


def _run(proc: XMemProcessor, frames: list[torch.Tensor], start: int = 0) -> list[torch.Tensor]:
    outs = []
    for t, image in enumerate(frames, start):
        if t == 0:
            proc.set_all_labels([1, 2])
        outs.append(proc.step(image, _mask() if t == 0 else None, end=t == 11))
    return outs


@pytest.fixture(scope="module")
def straight(xmem_net_factory) -> list[torch.Tensor]:
    torch.set_num_threads(1)
    return _run(XMemProcessor(xmem_net_factory(1), CONFIG), _frames(12))


def test_snapshot_save_load_restore_resumes_bit_identically(straight, xmem_net_factory) -> None:
    """Also the same-thread-count determinism check: frames 6-11 are computed a second time."""
    net = xmem_net_factory(1)
    frames = _frames(12)
    first = XMemProcessor(net, CONFIG)
    outs = _run(first, frames[:6])
    assert first.memory.state.num_consolidations >= 1
    buffer = io.BytesIO()
    torch.save(first.snapshot().to_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    resumed = XMemProcessor.restore(net, CONFIG, XMemState.from_dict(loaded))
    outs += _run(resumed, frames[6:], start=6)
    for t, (a, b) in enumerate(zip(straight, outs, strict=True)):
        assert torch.equal(a, b), t
    assert dataclasses.is_dataclass(resumed.snapshot())


def test_thread_count_changes_stay_within_tolerance(straight, xmem_net_factory,
                                                    two_threads) -> None:
    outs = _run(XMemProcessor(xmem_net_factory(1), CONFIG), _frames(7))  # to 1st consolidation
    worst = max(float((a - b).abs().max()) for a, b in zip(straight, outs, strict=False))
    print(f"\n1 vs 2 threads max|dprob| = {worst:.3g}")
    assert worst <= 1e-3


def test_late_actor_and_correction(xmem_net_factory) -> None:
    net = xmem_net_factory(1)
    frames = _frames(6)
    proc = XMemProcessor(net, XMemConfig())
    proc.debug = {}
    proc.set_all_labels([1])
    assert proc.step(frames[0], _mask(1), [1]).shape == (2, 48, 56)
    assert proc.step(frames[1]).shape == (2, 48, 56)
    # A second actor appears on frame 2 (non-exhaustive annotation, YouTube-VOS style).
    late = torch.zeros(2, 48, 56)
    late[1, 28:45, 30:52] = 1
    proc.set_all_labels([1, 2])
    out = proc.step(frames[2], late, [2])
    assert out.shape == (3, 48, 56) and proc.memory.state.obj_groups == [[0], [1]]
    torch.testing.assert_close(out[2][late[1] > 0], torch.ones(int(late[1].sum())), atol=1e-6,
                               rtol=0)
    prob3 = proc.step(frames[3])
    assert prob3.shape == (3, 48, 56) and torch.isfinite(prob3).all()
    # Corrective re-annotation of actor 1 on frame 4: actor 2 keeps its prediction.
    before_fix = proc.snapshot()
    pred = XMemProcessor.restore(net, proc.config, before_fix).step(frames[4])
    fix = torch.zeros(2, 48, 56)
    fix[0, 10:40, 10:40] = 1
    out = proc.step(frames[4], fix, [1])
    merged = fix.clone()
    merged[1] = torch.where(fix.sum(0) > 0.5, torch.zeros(()), pred[2])
    torch.testing.assert_close(out, soft_aggregate(merged, dim=0)[1], atol=1e-5, rtol=0)
    assert before_fix.memory is not None
    assert proc.memory.state.work.size == before_fix.memory.work.size + 12  # 48x64 padded -> 3x4
    _, pad = pad_to_multiple(out)
    torch.testing.assert_close(unpad(proc.debug["f4_value_in_masks"][0], pad), out[1:])
    # The next frame reads the correction: compare with the same shot without it.
    after = proc.step(frames[5], end=True)
    alt = XMemProcessor.restore(net, proc.config, before_fix)
    alt.step(frames[4])
    without = alt.step(frames[5], end=True)
    region = fix[0] > 0
    print(f"\nactor-1 prob in corrected region: {float(after[1][region].mean()):.3f} "
          f"with correction vs {float(without[1][region].mean()):.3f} without")
    # Random weights make no semantic promise about direction; the read must change, though.
    assert float((after - without).abs().max()) > 1e-3


def test_input_validation(xmem_net_factory) -> None:
    proc = XMemProcessor(xmem_net_factory(1))
    with pytest.raises(InputError, match="first XMem frame needs a mask"):
        proc.step(_frames(1)[0])
    with pytest.raises(InputError, match="1..N"):
        proc.set_all_labels([2, 5])
    proc.set_all_labels([1, 2])
    with pytest.raises(ShapeError):
        proc.step(torch.zeros(48, 56, 3), _mask())
    with pytest.raises(ShapeError, match="set_all_labels"):
        proc.step(_frames(1)[0], _mask(1))
    proc.step(_frames(1)[0], _mask())
    with pytest.raises(ShapeError, match="frame size changed"):
        proc.step(torch.zeros(3, 40, 56))


def test_eval_preprocessing_helpers() -> None:
    rgb = torch.randint(0, 256, (90, 160, 3), dtype=torch.uint8)
    norm = normalise_frame(rgb)
    expect = (rgb.permute(2, 0, 1).float() / 255 - torch.tensor([0.485, 0.456, 0.406])[:, None,
              None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(norm, expect, atol=0, rtol=0)
    assert xmem_image_size(90, 160, 120) == (120, 213) == xmem_mask_size(90, 160, 120)
    assert resize_for_xmem(norm, 120).shape == (3, 120, 213)
    assert resize_for_xmem(norm, 90) is norm and resize_for_xmem(norm, -1) is norm
    mask = torch.zeros(2, 90, 160)
    mask[0, :45] = 1
    assert resize_mask_for_xmem(mask, 120).shape == (2, 120, 213)
    prob = torch.rand(3, 120, 213)
    assert upsample_prob(prob, (90, 160)).shape == (3, 90, 160)
