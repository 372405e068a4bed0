"""The product's window runner: which frames MaGGIe sees together, and how outputs are merged.

Called by the matte stage of :mod:`actormatte.pipeline`. Two schedules:

``window5`` (default)
    Windows of 5 frames with stride 3; the last window is aligned to the shot's end. Each frame's
    output comes from the one window in which it is most central (ties go to the earlier window),
    so the first window also gives frame 0 and the last one gives the last frame. The official
    temporal rule (MaGGIe spec §13) is applied to every interior frame of a window in order:
    ``prev`` is this window's fused output of the previous frame, ``next`` the raw prediction of
    the next frame, and the window's last frame gets the rule's last-frame update. For a 3-frame
    window this is exactly the official rule. No state crosses windows: a frame range computes the
    windows that own its frames and nothing else, and equals a whole-shot run bit for bit.
``reference``
    The official test loop (spec §15): 3-frame windows at stride 1 with the previous window's fused
    middle frame carried as ``prev_pred``. A range needs every window from the shot start.

Shots shorter than a window: 1 frame uses the image model; 2 to 4 frames use one window of that
length (2 frames: no interior frame, so the raw predictions). Actors absent from a window (all-zero
guidance in all its frames) get zero alpha without entering the network; more than 10 present
actors are matted in groups of 10 (MaGGIe's instance slots).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from actormatte.matting.temporal import official_temporal_rule

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Frames ``start .. start + length - 1`` (shot indices) matted in one forward."""

    start: int
    length: int

    @property
    def stop(self) -> int:
        """One past the last frame."""
        return self.start + self.length


class WindowOutput(Protocol):
    """What a MaGGIe forward returns (the fields the runner reads)."""

    refined: torch.Tensor
    diff_forward: torch.Tensor | None
    diff_backward: torch.Tensor | None


#: ``forward(image (1,T,3,h,w), masks (1,T,n,h,w)) -> output``: one network forward.
Forward = Callable[[torch.Tensor, torch.Tensor], WindowOutput]
#: ``encode(image (F,3,h,w), masks (F,n,h,w)) -> features``: the per-frame part of a forward.
Encode = Callable[[torch.Tensor, torch.Tensor], Any]
#: ``decode(features of T frames, masks (1,T,n,h,w)) -> output``: the rest of the forward.
Decode = Callable[[Any, torch.Tensor], WindowOutput]
#: ``cat(list of per-frame features) -> features of those frames``; ``pick(features, i)``: one.
Cat = Callable[[list[Any]], Any]


class ClipSource(Protocol):
    """Preprocessed frames and guidance masks of a shot, addressed by shot index (0-based)."""

    num_frames: int
    actor_ids: Sequence[int]

    def image(self, index: int) -> torch.Tensor:
        """Normalised, padded frame (3, h, w) at network resolution."""

    def ids(self, index: int) -> torch.Tensor:
        """Instance-ID map (h, w) int64 at network resolution, padded with 0."""

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        """Network-resolution alphas (N, h, w) -> plate-resolution alphas (N, H, W), snapped."""


def plan_windows(num_frames: int, window: int = 5, stride: int = 3) -> list[Window]:
    """The ``window5`` windows of a shot: stride ``stride``, the last one aligned to the end."""
    if num_frames < 1:
        raise ValueError("a shot has at least one frame")
    length = min(window, num_frames)
    starts = list(range(0, num_frames - length + 1, stride))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return [Window(start, length) for start in starts]


def owner_windows(plan: Sequence[Window], num_frames: int) -> list[int]:
    """For each frame, the index of the window in which it is most central (ties: earlier)."""
    owners = [-1] * num_frames
    best_distance = [float("inf")] * num_frames
    for index, win in enumerate(plan):  # in plan order, so a strict < keeps the earlier window
        centre = win.start + (win.length - 1) / 2
        for frame in range(win.start, win.stop):
            distance = abs(frame - centre)
            if distance < best_distance[frame]:
                owners[frame], best_distance[frame] = index, distance
    assert -1 not in owners, "a frame is in no window"
    return owners


def fuse_window(refined: torch.Tensor, diff_forward: torch.Tensor,
                diff_backward: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """The official temporal rule generalised to every interior frame of a window.

    Frame ``i`` (1 .. T-2, in order) is fused from ``prev`` = the fused frame ``i-1`` and
    ``next`` = the raw frame ``i+1``; frame ``T-1`` gets the rule's last-frame update from the
    fused frame ``T-2``. Frame 0 stays raw. With T = 3 this equals the official rule.

    Per interior frame the official rule (``a * (1 - m) + b * m`` blends with 0/1 masks ``cf``,
    ``cb``, which for finite alphas pick ``a`` or ``b``; ``|a - b| > 0`` is ``a != b``) is
    ``f = cf ? mid : prev``, ``b = cb ? mid : next``, ``out = f != b ? mid : f``. Case by case:
    ``cf``: ``f = mid``, so ``out = mid`` either way; ``~cf & cb``: ``out = prev`` only where
    ``prev == mid``; ``~cf & ~cb``: ``out = prev`` where ``prev == next``, else ``mid``. Hence
    ``out = where(~(cf | cb) & (prev == next), prev, mid)``: three full-size passes. It differs
    from the rule only where ``~cf & cb`` and ``prev == mid`` with opposite zero signs (the
    rule gives ``prev``'s, this ``mid``'s), which the reverse's snap to +0 erases; NaNs give
    ``mid`` in both. The last frame: ``out = cf ? raw : fused T-2``, i.e. ``fused T-2`` where
    ``~cf``.

    Args:
        refined: Raw refined alphas before the rule.
        diff_forward: Forward temporal-difference probabilities.
        diff_backward: Backward temporal-difference probabilities.
        inplace: Fuse into ``refined`` itself (when it has no other use) instead of a copy.

    Returns:
        The fused alphas: ``refined`` when ``inplace``, else a new tensor.

    Shape:
        refined: (B, T, N, h, w); diff_forward, diff_backward: (B, T, 1, h, w); out like refined.
    """
    frames = refined.shape[1]
    fused = refined if inplace else refined.clone()
    if frames < 3:
        return fused
    # Frame 0 stays raw and frame i+1 is still raw when frame i is fused (frames go in order),
    # so prev, mid and next all read ``fused``.
    # ``~(d > 0.5)``, not ``d <= 0.5``: a NaN probability counts as static, as in the rule.
    static = (diff_forward[:, 1:-1] > 0.5).logical_or_(diff_backward[:, 1:-1] > 0.5)
    static.logical_not_()  # (B, T-2, 1, h, w)
    for middle in range(1, frames - 1):
        prev, mid, nxt = fused[:, middle - 1], fused[:, middle], fused[:, middle + 1]
        keep = torch.eq(prev, nxt).logical_and_(static[:, middle - 1])  # (B, N, h, w)
        torch.where(keep, prev, mid, out=mid)
    last, before = fused[:, -1], fused[:, -2]
    torch.where(diff_forward[:, -1] > 0.5, last, before, out=last)
    return fused


@dataclass(frozen=True)
class FrameInputs:
    """One frame's network inputs, prepared once per run and shared by overlapping windows.

    Attributes:
        image: Normalised, padded frame (3, h, w).
        masks: Guidance of every actor of the shot, in actor order: 0/1 float (N_all, h, w).
        present: Per actor, whether it covers any pixel of this frame.
    """

    image: torch.Tensor
    masks: torch.Tensor
    present: tuple[bool, ...]

    @staticmethod
    def prepare(source: ClipSource, index: int) -> FrameInputs:
        """Read and prepare shot index ``index`` of ``source``."""
        ids = source.ids(index)  # (h, w) int64
        actors = torch.tensor(list(source.actor_ids), dtype=ids.dtype, device=ids.device)
        masks = ids.unsqueeze(0) == actors.view(-1, 1, 1)  # (N_all, h, w) bool
        present = tuple(bool(p) for p in masks.flatten(1).any(dim=1).tolist())
        return FrameInputs(source.image(index), masks.float(), present)


class WindowSession:
    """What passes from one window of a run to the next.

    Attributes:
        source: Frames and masks of the shot.
        wanted: Shot indices the run outputs.
        frames: Prepared inputs of the frames the next window may share.
        carry: ``reference`` schedule: group -> fused middle frame of the previous window.
        features: (shot index, actor slots) -> that frame's encoder features.
        encoded: Frames encoded so far (a frame encoded for two actor sets counts twice).
    """

    def __init__(self, source: ClipSource, wanted: set[int]) -> None:
        self.source = source
        self.wanted = wanted
        self.frames: dict[int, FrameInputs] = {}
        self.carry: dict[int, torch.Tensor] = {}  # group -> prev_pred (B, N, h, w)
        self.features: dict[tuple[int, tuple[int, ...]], Any] = {}
        self.encoded = 0


class WindowRunner:
    """Runs a schedule over a :class:`ClipSource` and yields plate-resolution alphas per frame.

    Args:
        video_forward: The MaGGIe video model's forward.
        image_forward: The MaGGIe image model's forward, for 1-frame shots (``None``: not needed).
        schedule: ``window5`` or ``reference``.
        window: Frames per ``window5`` window.
        stride: Window stride of ``window5``.
        max_instances: Actors per forward.
        split: ``(encode, decode, cat)`` of the video model: each frame is then encoded once
            per actor slots, one frame per encode (so a frame's features never depend on the
            window or the chunk), and its features serve every window holding it.
    """

    def __init__(self, video_forward: Forward | None, image_forward: Forward | None,
                 schedule: str = "window5", window: int = 5, stride: int = 3,
                 max_instances: int = 10,
                 split: tuple[Encode, Decode, Cat] | None = None) -> None:
        self._split = split
        self._video = video_forward
        self._image = image_forward
        self._schedule = schedule
        self._window = window
        self._stride = stride
        self._max_instances = max_instances
        self._warned_groups = False
        self._cached_layout: tuple[list[Window], list[int]] | None = None

    def plan(self, num_frames: int) -> list[Window]:
        """The windows this schedule uses for a shot of ``num_frames`` frames."""
        return self._layout(num_frames)[0]

    def owner(self, num_frames: int, index: int) -> Window:
        """The window that produces shot index ``index``."""
        plan, owners = self._layout(num_frames)
        return plan[owners[index]]

    def _layout(self, num_frames: int) -> tuple[list[Window], list[int]]:
        """The plan and each frame's owner window, computed once per shot length."""
        if self._cached_layout is None or len(self._cached_layout[1]) != num_frames:
            if self._schedule == "reference" and num_frames >= 3:
                plan = [Window(start, 3) for start in range(num_frames - 2)]
            else:
                plan = plan_windows(num_frames, self._window, self._stride)
            self._cached_layout = (plan, owner_windows(plan, num_frames))
        return self._cached_layout

    def windows_needed(self, num_frames: int, indices: Sequence[int]) -> list[int]:
        """Indices of the windows to compute for the given shot indices."""
        owners = self._layout(num_frames)[1]
        if not indices:
            return []
        if self._schedule == "reference" and num_frames >= 3:
            # The prev_pred carry starts at the shot start.
            return list(range(max(owners[i] for i in indices) + 1))
        return sorted({owners[i] for i in indices})

    def run(self, source: ClipSource, indices: Sequence[int],
            should_stop: Callable[[], None] | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(shot index, alphas (N, H, W))`` for each of ``indices``, in window order.

        Args:
            source: Frames and masks of the whole shot.
            indices: Shot indices (0-based) to output.
            should_stop: Called between windows; raises to stop (cancellation).
        """
        wanted = set(indices)
        session = self.session(source, wanted)
        for window_index in self.windows_needed(source.num_frames, sorted(wanted)):
            if should_stop is not None:
                should_stop()
            yield from self.run_window(session, window_index)

    def session(self, source: ClipSource, wanted: set[int]) -> WindowSession:
        """The state of one run over ``source`` producing the shot indices ``wanted``."""
        if not wanted <= set(range(source.num_frames)):
            raise ValueError(f"frame indices outside the shot of {source.num_frames} frames")
        return WindowSession(source, wanted)

    def run_window(self, session: WindowSession,
                   window_index: int) -> list[tuple[int, torch.Tensor]]:
        """Matte one window; ``(shot index, alphas (N, H, W))`` of the wanted frames it owns.

        Windows of a session must come in plan order (``windows_needed``): the prepared
        frames of the overlap and the ``reference`` carry pass from one window to the next.
        """
        source = session.source
        plan, owners = self._layout(source.num_frames)
        win = plan[window_index]
        cache = session.frames
        for old in [i for i in cache if i < win.start]:
            del cache[old]
        for index in range(win.start, win.stop):
            if index not in cache:
                cache[index] = FrameInputs.prepare(source, index)
        frames = [cache[i] for i in range(win.start, win.stop)]
        with torch.inference_mode():
            alphas = self._matte_window(frames, source.actor_ids, session, win.start)
            outputs = [(win.start + offset, source.reverse(alphas[offset]))
                       for offset in range(win.length)
                       if owners[win.start + offset] == window_index
                       and win.start + offset in session.wanted]
        keep_from = plan[window_index + 1].start if window_index + 1 < len(plan) else win.stop
        for key in [k for k in session.features if k[0] < keep_from]:
            del session.features[key]
        return outputs

    def _matte_window(self, frames: list[FrameInputs], actor_ids: Sequence[int],
                      session: WindowSession, start: int) -> torch.Tensor:
        """Alphas (T, N_all, h, w) of the window starting at ``start``; absent actors stay 0."""
        num_actors = len(actor_ids)
        present = [k for k in range(num_actors) if any(f.present[k] for f in frames)]
        alphas: torch.Tensor | None = None
        for group_index, members in enumerate(self._groups(actor_ids, present)):
            members_present = [k for k in members if k in present]
            if not members_present:
                continue
            if self._schedule != "reference":
                members = members_present
            if members == list(range(num_actors)):  # the common case: the masks as cached
                masks = torch.stack([f.masks for f in frames])  # (T, n, h, w)
            else:
                masks = torch.stack([f.masks[members] for f in frames])  # (T, n, h, w)
            refined = self._forward_group(frames, masks, session, group_index,
                                          (start, tuple(members)))  # (T, n, h, w)
            if members_present == list(range(num_actors)):  # one group holds every actor
                return refined
            if alphas is None:
                alphas = masks.new_zeros((len(frames), num_actors, *masks.shape[-2:]))
            for slot, k in enumerate(members):
                if k in members_present:
                    alphas[:, k] = refined[:, slot]
        if alphas is None:
            height, width = frames[0].masks.shape[-2:]
            alphas = frames[0].image.new_zeros((len(frames), num_actors, height, width))
        return alphas

    def _groups(self, actor_ids: Sequence[int], present: list[int]) -> list[list[int]]:
        """Actor groups of at most ``max_instances``: fixed for ``reference``, per window else."""
        pool = list(range(len(actor_ids))) if self._schedule == "reference" else present
        size = self._max_instances
        groups = [pool[i:i + size] for i in range(0, len(pool), size)]
        if len(groups) > 1 and not self._warned_groups:
            logger.warning("%d actors: matting in groups of %d (MaGGIe has %d instance slots)",
                           len(pool), size, size)
            self._warned_groups = True
        return groups

    def _forward_group(self, frames: list[FrameInputs], masks: torch.Tensor,
                       session: WindowSession, group_index: int,
                       key: tuple[int, tuple[int, ...]]) -> torch.Tensor:
        """One network forward and the temporal rule. Shape: masks (T, n, h, w) -> (T, n, h, w).

        ``key`` is (first shot index of the window, actor slots): what a frame's features
        depend on besides the frame.
        """
        carry = session.carry
        if len(frames) == 1:
            if self._image is None:
                raise RuntimeError("a 1-frame shot needs the MaGGIe image model")
            image = frames[0].image[None, None]  # (3, h, w) -> (1, 1, 3, h, w)
            return self._image(image, masks[None]).refined[0]  # masks (1, 1, n, h, w)
        assert self._video is not None, "the video model is required for clips of 2+ frames"
        if self._split is not None:
            out = self._split_forward(frames, masks, session, key)
        else:
            images = torch.stack([f.image for f in frames])  # (T, 3, h, w)
            out = self._video(images[None], masks[None])  # (1, T, 3, h, w), (1, T, n, h, w)
        refined = out.refined
        if len(frames) < 3:
            return refined[0]
        assert out.diff_forward is not None and out.diff_backward is not None
        if self._schedule == "reference":
            fused = official_temporal_rule(refined, out.diff_forward,
                                           out.diff_backward, prev=carry.get(group_index))
            carry[group_index] = fused[:, 1].clone()
            return fused[0]
        # The forward's refined alphas have no other use: fuse them in place.
        return fuse_window(refined, out.diff_forward, out.diff_backward, inplace=True)[0]

    def _split_forward(self, frames: list[FrameInputs], masks: torch.Tensor,
                       session: WindowSession, key: tuple[int, tuple[int, ...]]) -> WindowOutput:
        """The video forward with each frame's features computed once per actor slots.

        Shape: masks (T, n, h, w).
        """
        assert self._split is not None
        encode, decode, cat = self._split
        start, slots = key
        parts = []
        for offset, frame in enumerate(frames):
            frame_key = (start + offset, slots)
            if frame_key not in session.features:
                session.features[frame_key] = encode(frame.image[None],
                                                     masks[offset:offset + 1])  # (1,3,h,w)
                session.encoded += 1
            parts.append(session.features[frame_key])
        return decode(cat(parts), masks[None])  # masks (1, T, n, h, w)
