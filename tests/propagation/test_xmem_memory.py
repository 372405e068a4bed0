"""Memory management beyond the goldens: long shots stay bounded, pruning, quirks Q3/Q4/Q6."""

from __future__ import annotations

import gc
import logging

import psutil
import pytest
import torch

from actormatte.errors import InputError
from actormatte.propagation import KVStore, MemoryManager, XMemConfig, XMemProcessor
from actormatte.propagation.config import count_usage_for_shot
from actormatte.propagation.memory import prune_keep_mask
from actormatte.propagation.readout import topk_softmax

from .stub_net import StubNet

HW = 16  # 64x64 frames -> 4x4 stride-16 features


def _frames(num: int, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(3, 64, 64, generator=gen)
    return [base.roll(t % 7, dims=2) + 0.05 * torch.randn(3, 64, 64, generator=gen)
            for t in range(num)]


def _mask() -> torch.Tensor:
    mask = torch.zeros(2, 64, 64)
    mask[0, 8:30, 8:30] = 1
    mask[1, 36:60, 30:58] = 1
    return mask


# ------------------------------------------------------------------------------ config
def test_config_defaults_validation_and_shot_rule() -> None:
    cfg = XMemConfig()
    assert (cfg.top_k, cfg.mem_every, cfg.deep_update_every, cfg.enable_long_term) == (
        30, 5, -1, True)
    assert (cfg.min_mid_term_frames, cfg.max_mid_term_frames, cfg.num_prototypes,
            cfg.max_long_term_elements, cfg.enable_long_term_count_usage) == (
        5, 10, 128, 10000, False)
    assert not cfg.for_shot(390).enable_long_term_count_usage
    assert cfg.for_shot(391).enable_long_term_count_usage  # 391/5*128 >= 10000
    assert not count_usage_for_shot(XMemConfig(enable_long_term=False), 10**6)
    for bad in ({"top_k": 0}, {"mem_every": 0}, {"min_mid_term_frames": 5,
                "max_mid_term_frames": 5}, {"num_prototypes": 200,
                "max_long_term_elements": 100}, {"enable_long_term": 1}, {"top_k": 2.5}):
        with pytest.raises(InputError):
            XMemConfig(**bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ long shot
def test_long_shot_memory_and_rss_stay_bounded() -> None:
    cfg = XMemConfig(mem_every=2, min_mid_term_frames=2, max_mid_term_frames=4,
                     num_prototypes=8, max_long_term_elements=64).for_shot(600)
    assert cfg.enable_long_term_count_usage
    proc = XMemProcessor(StubNet(), cfg)  # type: ignore[arg-type]
    proc.set_all_labels([1, 2])
    process = psutil.Process()
    sizes, rss_at = [], {}
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(3, 64, 64, generator=gen)
    for t in range(600):
        image = base.roll(t % 11, dims=1) + 0.1 * torch.randn(3, 64, 64, generator=gen)
        prob = proc.step(image, _mask() if t == 0 else None, end=t == 599)
        mem = proc.memory.state
        assert mem.long.size <= cfg.max_long_term_elements
        assert mem.work.size <= cfg.max_mid_term_frames * HW
        sizes.append(mem.long.size + mem.work.size)
        if t in (150, 599):
            gc.collect()
            rss_at[t] = process.memory_info().rss
    assert torch.isfinite(prob).all()
    assert proc.memory.state.num_prunes > 10
    cap = cfg.max_long_term_elements + cfg.max_mid_term_frames * HW
    assert max(sizes) <= cap and max(sizes[150:]) == max(sizes)  # cap reached, then flat
    assert rss_at[599] - rss_at[150] < 20 * 2**20, rss_at


# ------------------------------------------------------------------------------ pruning
def test_prune_keeps_strictly_greater_than_threshold_with_ties() -> None:
    usage = torch.tensor([0.1, 0.2, 0.2, 0.5, 0.2, 0.9])
    keep = prune_keep_mask(usage, excess=2)  # two smallest: 0.1, 0.2 -> tau = 0.2
    assert keep.tolist() == [False, False, False, True, False, True]


def _long_store(count_usage: bool, groups: list[int]) -> KVStore:
    size = 8
    store = KVStore(count_usage=count_usage)
    store.append_keys(torch.arange(size, dtype=torch.float32).view(1, 1, size).expand(1, 2, size),
                      torch.ones(1, 1, size), None)
    store.values = [torch.arange(size - n, size, dtype=torch.float32).view(1, 1, n)
                    for n in groups]  # value == index of the key it aligns with
    if count_usage:
        assert store.use_count is not None and store.life_count is not None
        store.use_count += torch.tensor([5, 1, 7, 0.5, 9, 3, 8, 2.0]).view(1, 1, 8)
        store.life_count += 1
    return store


def _manager(long: KVStore) -> MemoryManager:
    cfg = XMemConfig(enable_long_term_count_usage=long.count_usage)
    mgr = MemoryManager(cfg, hidden_dim=4)
    mgr.state.long = long
    return mgr


def test_prune_with_usage_and_two_groups_keeps_alignment() -> None:
    mgr = _manager(_long_store(True, [8, 3]))
    mgr.prune_long_term(5)
    long = mgr.state.long
    assert long.key is not None and long.use_count is not None
    kept = long.key[0, 0].tolist()
    assert kept == [0.0, 2.0, 4.0, 5.0, 6.0]  # the 3 least used (0.5, 1, 2) are gone
    assert long.values[0][0, 0].tolist() == kept
    assert long.values[1][0, 0].tolist() == [5.0, 6.0]  # group 1 still = trailing keys
    removed_max = 2.0 / 1.0
    assert float(long.usage().min()) > removed_max  # usage ordering respected


def test_prune_at_exact_limit_is_a_no_op() -> None:  # Q4a: official IndexError
    mgr = _manager(_long_store(True, [8]))
    mgr.prune_long_term(8)
    assert mgr.state.long.size == 8 and mgr.state.num_prunes == 0


def test_prune_without_usage_evicts_oldest(caplog: pytest.LogCaptureFixture) -> None:  # Q4c
    mgr = _manager(_long_store(False, [8, 2]))
    with caplog.at_level(logging.WARNING):
        mgr.prune_long_term(5)
    long = mgr.state.long
    assert long.key is not None
    assert long.key[0, 0].tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert long.values[1][0, 0].tolist() == [6.0, 7.0]
    assert "evicting the 3 oldest" in caplog.text


def test_processor_prunes_without_usage_counting_and_stays_bounded() -> None:
    cfg = XMemConfig(mem_every=1, min_mid_term_frames=2, max_mid_term_frames=3,
                     num_prototypes=8, max_long_term_elements=32)  # count_usage off
    proc = XMemProcessor(StubNet(), cfg)  # type: ignore[arg-type]
    proc.set_all_labels([1, 2])
    for t, image in enumerate(_frames(40)):
        proc.step(image, _mask() if t == 0 else None)
        assert proc.memory.state.long.size <= 32
    assert proc.memory.state.num_prunes > 0


# ------------------------------------------------------------------------------ Q3, Q6
def test_min_mid_term_one_consolidates_all_but_first_frame() -> None:  # Q3
    cfg = XMemConfig(mem_every=1, min_mid_term_frames=1, max_mid_term_frames=3,
                     num_prototypes=4, max_long_term_elements=1000)
    proc = XMemProcessor(StubNet(), cfg)  # type: ignore[arg-type]
    proc.set_all_labels([1, 2])
    for t, image in enumerate(_frames(3)):
        proc.step(image, _mask() if t == 0 else None)
    mem = proc.memory.state
    assert mem.num_consolidations == 1
    assert mem.work.size == HW and mem.work.values[0].shape[-1] == HW
    assert mem.long.size == 4 and mem.long.values[0].shape[-1] == 4


def test_topk_softmax_matches_official_formula_and_never_nans() -> None:  # Q6
    gen = torch.Generator().manual_seed(0)
    sim = -torch.rand(1, 50, 7, generator=gen) * 10
    values, indices = torch.topk(sim, k=30, dim=1)
    expect = values.exp()
    expect /= expect.sum(1, keepdim=True)
    official = torch.zeros_like(sim).scatter_(1, indices, expect)
    assert torch.equal(topk_softmax(sim, 30), official)
    sim[:, :, 3] -= 500.0  # every exp underflows in this column
    aff = topk_softmax(sim, 30)
    assert torch.isfinite(aff).all()
    torch.testing.assert_close(aff.sum(1), torch.ones(1, 7))
    assert torch.equal(aff[:, :, 0], official[:, :, 0])
    assert topk_softmax(sim[:, :5], 30).shape == (1, 5, 7)  # top_k > M is clamped
