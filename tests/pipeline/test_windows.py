"""The window schedules: planning, ownership, the generalised temporal rule, grouping."""

from __future__ import annotations

import pytest
import torch

from actormatte.matting.temporal import official_temporal_rule
from actormatte.matting.windows import (
    Window,
    WindowRunner,
    fuse_window,
    owner_windows,
    plan_windows,
)


@pytest.mark.parametrize("frames", list(range(1, 40)))
def test_window5_plan_covers_every_frame_once(frames):
    plan = plan_windows(frames)
    owners = owner_windows(plan, frames)
    assert len(owners) == frames
    assert plan[0].start == 0 and plan[-1].stop == frames
    assert all(w.length == min(5, frames) for w in plan)
    for frame, owner in enumerate(owners):
        win = plan[owner]
        assert win.start <= frame < win.stop
        centre = win.start + (win.length - 1) / 2
        # No other window holds the frame closer to its centre.
        for other in plan:
            if other.start <= frame < other.stop:
                assert abs(frame - centre) <= abs(frame - (other.start + (other.length - 1) / 2))
    if frames >= 5:
        assert owners[0] == 0 and owners[-1] == len(plan) - 1


def test_window5_plan_strides_by_three_and_aligns_the_last():
    assert [w.start for w in plan_windows(14)] == [0, 3, 6, 9]
    assert [w.start for w in plan_windows(15)] == [0, 3, 6, 9, 10]
    owners = owner_windows(plan_windows(15), 15)
    assert owners == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]


def test_windows_needed_for_a_chunk_are_its_owners_only():
    runner = WindowRunner(None, None)
    assert runner.windows_needed(15, [5, 6]) == [1]
    assert runner.windows_needed(15, list(range(15))) == [0, 1, 2, 3, 4]
    reference = WindowRunner(None, None, schedule="reference")
    assert reference.windows_needed(10, [6]) == list(range(6))
    assert reference.plan(10) == [Window(s, 3) for s in range(8)]


def _random_window(frames: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    refined = torch.rand(1, frames, 2, 6, 7, generator=gen)
    # Quantised values make exact agreements between prev and next common, as in real mattes.
    refined = (refined * 3).round() / 3
    diff_f = torch.rand(1, frames, 1, 6, 7, generator=gen)
    diff_b = torch.rand(1, frames, 1, 6, 7, generator=gen)
    return refined, diff_f, diff_b


def test_fuse_window_of_three_is_the_official_rule():
    refined, diff_f, diff_b = _random_window(3)
    assert torch.equal(fuse_window(refined, diff_f, diff_b),
                       official_temporal_rule(refined, diff_f, diff_b))


def test_fuse_window_of_five_chains_the_rule_over_interior_frames():
    refined, diff_f, diff_b = _random_window(5, seed=1)
    fused = fuse_window(refined, diff_f, diff_b)
    assert torch.equal(fused[:, 0], refined[:, 0])
    prev = refined[:, 0]
    for middle in (1, 2, 3):
        static_f = diff_f[:, middle] <= 0.5
        static_b = diff_b[:, middle] <= 0.5
        nxt = refined[:, middle + 1]
        mid = refined[:, middle]
        forward = torch.where(static_f, prev, mid)
        backward = torch.where(static_b, nxt, mid)
        expected = torch.where(forward == backward, forward, mid)
        assert torch.equal(fused[:, middle], expected)
        prev = expected
    expected_last = torch.where(diff_f[:, 4] <= 0.5, prev, refined[:, 4])
    assert torch.equal(fused[:, 4], expected_last)
    assert not torch.equal(fused, refined)  # the rule did something on this input


@pytest.mark.parametrize("frames", [4, 5, 7])
def test_fuse_window_equals_the_official_rule_chained_bit_for_bit(frames):
    # Continuous values (no exact agreements), so any change in the float arithmetic shows.
    gen = torch.Generator().manual_seed(frames)
    refined = torch.rand(1, frames, 3, 16, 17, generator=gen)
    diff_f = torch.rand(1, frames, 1, 16, 17, generator=gen)
    diff_b = torch.rand(1, frames, 1, 16, 17, generator=gen)
    expected = refined.clone()
    for middle in range(1, frames - 1):
        out = official_temporal_rule(refined[:, middle - 1:middle + 2].clone(),
                                     diff_f[:, middle - 1:middle + 2],
                                     diff_b[:, middle - 1:middle + 2], prev=expected[:, middle - 1])
        expected[:, middle] = out[:, 1]
        if middle == frames - 2:
            expected[:, middle + 1] = out[:, 2]
    fused = fuse_window(refined, diff_f, diff_b)
    assert torch.equal(fused, expected)
    assert not torch.equal(fused, refined)


def test_groups_of_ten_and_absent_actors():
    runner = WindowRunner(None, None, max_instances=10)
    present = [k for k in range(23) if k != 4]
    groups = runner._groups(list(range(1, 24)), present)
    assert [len(g) for g in groups] == [10, 10, 2]
    assert 4 not in sum(groups, [])
