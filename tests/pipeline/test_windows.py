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


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("frames", [3, 4, 5, 7])
def test_fuse_window_equals_the_official_rule_chained_bit_for_bit(frames, quantised, inplace):
    # Continuous values (no exact agreements), so any change in the float arithmetic shows;
    # quantised ones, so prev == next and prev == mid are common (the select rule's cases).
    gen = torch.Generator().manual_seed(frames)
    refined = torch.rand(2, frames, 3, 16, 17, generator=gen)
    if quantised:
        refined = (refined * 3).round() / 3
    diff_f = torch.rand(2, frames, 1, 16, 17, generator=gen)
    diff_b = torch.rand(2, frames, 1, 16, 17, generator=gen)
    diff_f[:, :, :, 0, :5] = float("nan")  # NaN probabilities count as "static" (not > 0.5)
    diff_b[:, :, :, 1, 3:9] = float("nan")
    expected = refined.clone()
    for middle in range(1, frames - 1):
        out = official_temporal_rule(refined[:, middle - 1:middle + 2].clone(),
                                     diff_f[:, middle - 1:middle + 2],
                                     diff_b[:, middle - 1:middle + 2], prev=expected[:, middle - 1])
        expected[:, middle] = out[:, 1]
        if middle == frames - 2:
            expected[:, middle + 1] = out[:, 2]
    raw = refined.clone()
    fused = fuse_window(refined, diff_f, diff_b, inplace=inplace)
    assert torch.equal(fused, expected)
    assert not torch.equal(fused, raw)
    assert (fused is refined) == inplace
    assert torch.equal(refined, fused if inplace else raw)


def test_groups_of_ten_and_absent_actors():
    runner = WindowRunner(None, None, max_instances=10)
    present = [k for k in range(23) if k != 4]
    groups = runner._groups(list(range(1, 24)), present)
    assert [len(g) for g in groups] == [10, 10, 2]
    assert 4 not in sum(groups, [])


class _CountingClip:
    """A ClipSource of 8x8 frames counting its reads; actor 3 appears from frame 8 on."""

    def __init__(self, num_frames: int) -> None:
        self.num_frames = num_frames
        self.actor_ids = [1, 2, 3]
        self.reads = 0

    def image(self, index: int) -> torch.Tensor:
        return torch.full((3, 8, 8), float(index))

    def ids(self, index: int) -> torch.Tensor:
        self.reads += 1
        ids = torch.zeros(8, 8, dtype=torch.int64)
        ids[:, :3], ids[:, 3:5] = 1, 2
        if index >= 8:
            ids[:, 6:] = 3
        return ids

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        return alpha


class _Out:
    def __init__(self, refined: torch.Tensor) -> None:
        self.refined = refined
        shape = (1, refined.shape[1], 1, *refined.shape[-2:])
        self.diff_forward = self.diff_backward = torch.ones(shape)  # all "changed": raw kept


def test_runner_reads_each_frame_once_and_zeroes_absent_actors():
    clip = _CountingClip(11)  # windows 0-4, 3-7, 6-10
    slots = []

    def forward(image, masks):  # alpha = guidance * (frame index + 1) / 16
        slots.append(masks.shape[2])
        return _Out(masks * (image[:, :, :1] + 1) / 16)

    alphas = dict(WindowRunner(forward, None).run(clip, range(11)))
    assert clip.reads == 11  # the overlaps' frames are prepared once
    assert slots == [2, 2, 3]  # actor 3 enters the network only in the window holding it
    for index, alpha in alphas.items():
        ids = clip.ids(index)
        for k, actor in enumerate(clip.actor_ids):
            expected = (ids == actor).float() * (index + 1) / 16
            assert torch.equal(alpha[k], expected), (index, actor)
