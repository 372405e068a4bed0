"""Frame-by-frame XMem propagation: padding, memory and object bookkeeping around the network.

Called by the pipeline (and the ``propagate`` CLI) once per frame, from the first annotated
frame on. It mirrors the official ``InferenceCore.step`` (spec section 6) exactly; its state is
the :class:`XMemState` dataclass, which :meth:`XMemProcessor.snapshot` returns and
:meth:`XMemProcessor.restore` resumes from (bit-identically).

How a mask enters memory (late actors and corrections): a mask given on frame t is
soft-aggregated (after the channels not in ``valid_labels`` are replaced by the prediction,
zeroed under the annotation) and the result is what ``step`` returns and what the value encoder
encodes into a new memory frame on t. Older memory frames are kept; the new frame joins them, so
later frames read both the old evidence and the correction (recent memory dominates where the
two differ, but nothing is erased). A correction of an existing actor uses
``valid_labels=[that id]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from actormatte.device import enable_cuda_determinism
from actormatte.errors import InputError, ShapeError
from actormatte.propagation.config import XMemConfig
from actormatte.propagation.memory import KVStore, MemoryManager, MemoryState
from actormatte.propagation.network import XMemNet, soft_aggregate

logger = logging.getLogger(__name__)

Pad = tuple[int, int, int, int]


def pad_to_multiple(x: torch.Tensor, multiple: int = 16) -> tuple[torch.Tensor, Pad]:
    """Zero-pad the last two axes to multiples of ``multiple``, centred (extra pixel last).

    Shape:
        x: (..., H, W) -> (..., Hp, Wp); pad = (left, right, top, bottom)
    """
    height, width = x.shape[-2:]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(x, pad), pad


def unpad(x: torch.Tensor, pad: Pad) -> torch.Tensor:
    """Crop what :func:`pad_to_multiple` added. Shape: (..., Hp, Wp) -> (..., H, W)."""
    left, right, top, bottom = pad
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


@dataclass(frozen=True)
class StepInfo:
    """What one ``step`` did (the official per-frame flags)."""

    frame: int
    is_mem_frame: bool
    segmented: bool
    deep_update: bool
    normal_update: bool


@dataclass
class XMemState:
    """Resumable processor state: counters, labels and the whole memory.

    ``to_dict()`` gives plain dicts/lists/ints/tensors, loadable with
    ``torch.load(..., weights_only=True)``; ``from_dict`` inverts it.
    """

    frame_index: int = -1
    last_mem_frame: int = 0
    last_deep_frame: int = 0
    all_labels: list[int] = field(default_factory=list)
    frame_size: list[int] = field(default_factory=list)
    memory: MemoryState | None = None

    def to_dict(self) -> dict[str, Any]:
        """Nested plain containers (tensors cloned)."""
        def store(s: KVStore) -> dict[str, Any]:
            return {"count_usage": s.count_usage, "key": _clone(s.key),
                    "shrinkage": _clone(s.shrinkage), "selection": _clone(s.selection),
                    "values": [v.clone() for v in s.values], "use_count": _clone(s.use_count),
                    "life_count": _clone(s.life_count)}

        mem = self.memory
        assert mem is not None
        return {"frame_index": self.frame_index, "last_mem_frame": self.last_mem_frame,
                "last_deep_frame": self.last_deep_frame, "all_labels": list(self.all_labels),
                "frame_size": list(self.frame_size),
                "memory": {"work": store(mem.work), "long": store(mem.long),
                           "obj_groups": [list(g) for g in mem.obj_groups],
                           "hidden": _clone(mem.hidden), "feat_hw": mem.feat_hw,
                           "num_consolidations": mem.num_consolidations,
                           "num_prunes": mem.num_prunes}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> XMemState:
        """Rebuild from :meth:`to_dict` output (e.g. after ``torch.load``)."""
        mem = dict(data["memory"])
        mem["work"] = KVStore(**mem["work"])
        mem["long"] = KVStore(**mem["long"])
        return cls(frame_index=data["frame_index"], last_mem_frame=data["last_mem_frame"],
                   last_deep_frame=data["last_deep_frame"], all_labels=list(data["all_labels"]),
                   frame_size=list(data["frame_size"]), memory=MemoryState(**mem))


def _clone(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clone()


class XMemProcessor:
    """Propagates instance masks through a shot with XMem, one frame per :meth:`step`.

    Args:
        net: the network (eval mode), e.g. from :func:`actormatte.propagation.load_xmem`.
        config: runtime settings (default: eval defaults); use
            ``config.for_shot(num_frames)`` when the shot length is known.
        keep_records: keep consolidation records on ``memory.records`` (debugging/tests).
    """

    def __init__(self, net: XMemNet, config: XMemConfig | None = None,
                 keep_records: bool = False) -> None:
        config = config if config is not None else XMemConfig()
        if net.training:
            logger.warning("XMemProcessor got a network in training mode; switching it to eval")
            net.eval()
        if any(p.is_cuda for p in net.parameters()):
            enable_cuda_determinism()  # chunked == single run on CUDA (actormatte.device)
        self.net = net
        self.config = config
        self.state = XMemState(last_deep_frame=-config.deep_update_every,
                               memory=MemoryState.empty(config))
        assert self.state.memory is not None
        self.memory = MemoryManager(config, net.dims.hidden_dim, self.state.memory, keep_records)
        self.last_step: StepInfo | None = None
        self.debug: dict[str, torch.Tensor] | None = None
        self._labels_pending = False

    # ------------------------------------------------------------------------ state
    def snapshot(self) -> XMemState:
        """A copy of the full state (tensors cloned); resume with :meth:`restore`."""
        return XMemState.from_dict(self.state.to_dict())

    @classmethod
    def restore(cls, net: XMemNet, config: XMemConfig, state: XMemState | dict[str, Any]
                ) -> XMemProcessor:
        """A processor that continues exactly where ``state`` was taken."""
        if isinstance(state, dict):
            state = XMemState.from_dict(state)
        else:
            state = XMemState.from_dict(state.to_dict())
        proc = cls(net, config)
        proc.state = state
        assert state.memory is not None
        proc.memory = MemoryManager(config, net.dims.hidden_dim, state.memory)
        return proc

    @property
    def all_labels(self) -> list[int]:
        """Object ids known so far (1..N)."""
        return list(self.state.all_labels)

    def set_all_labels(self, labels: list[int]) -> None:
        """Declare every object id seen so far; ids are 1..N in order and never removed."""
        labels = [int(label) for label in labels]
        if labels != list(range(1, len(labels) + 1)):
            raise InputError(f"XMem object ids must be 1..N in order, got {labels}; map the "
                             "mask values to consecutive ids first.")
        if len(labels) < len(self.state.all_labels):
            raise InputError(f"object ids cannot be removed: had {self.state.all_labels}, "
                             f"got {labels}")
        self._labels_pending = len(labels) > len(self.state.all_labels)
        self.state.all_labels = labels

    # ------------------------------------------------------------------------ stepping
    def step(self, image: torch.Tensor, mask: torch.Tensor | None = None,
             valid_labels: list[int] | None = None, end: bool = False) -> torch.Tensor:
        """Process the next frame.

        Args:
            image: the normalised frame (see ``normalise_frame``), any size.
            mask: one channel per id in ``all_labels`` (call ``set_all_labels`` first), on
                annotated frames only; channels of objects not annotated here are ignored
                when ``valid_labels`` excludes them.
            valid_labels: ids annotated in ``mask``; the other objects keep the prediction
                (outside the annotated region). None = the mask is exhaustive.
            end: the last frame of the shot (it is not added to memory).

        Returns:
            Probabilities with background first.

        Shape:
            image (3, H, W), mask (N, H, W) -> (N+1, H, W)
        """
        self._check_inputs(image, mask, valid_labels)
        with torch.no_grad():
            return self._step(image, mask, valid_labels, end)

    def _step(self, image: torch.Tensor, mask: torch.Tensor | None,
              valid_labels: list[int] | None, end: bool) -> torch.Tensor:
        st, cfg, net = self.state, self.config, self.net
        st.frame_index += 1
        t = st.frame_index
        padded, pad = pad_to_multiple(image)
        padded = padded.unsqueeze(0)  # (1, 3, Hp, Wp)
        is_mem = (t - st.last_mem_frame >= cfg.mem_every or mask is not None) and not end
        need_seg = t > 0 and (valid_labels is None or len(st.all_labels) != len(valid_labels))
        deep = ((cfg.deep_update_sync and is_mem) or (
            not cfg.deep_update_sync and t - st.last_deep_frame >= cfg.deep_update_every)
                ) and not end
        normal = (not cfg.deep_update_sync or not deep) and not end
        self.last_step = StepInfo(t, is_mem, need_seg, deep, normal)
        feats = net.encode_key(padded, need_shrinkage=is_mem,
                               need_selection=cfg.enable_long_term or need_seg)
        self._record(key=feats.key, shrinkage=feats.shrinkage, selection=feats.selection,
                     f16=feats.f16)
        prob: torch.Tensor | None = None
        mem = self.memory
        if need_seg:
            readout = mem.match_memory(feats.key, feats.selection).unsqueeze(0)
            hidden = mem.state.hidden
            assert hidden is not None
            new_hidden, prob_b = net.segment(feats, readout, hidden, h_out=normal)
            self._record(readout=readout, segment_in_hidden=hidden, segment_out_hidden=new_hidden)
            prob = prob_b[0]  # (N+1, Hp, Wp)
            if normal:
                mem.state.hidden = new_hidden
        if mask is not None:
            prob = self._merge_mask(mask, prob, valid_labels)
            mem.create_hidden(len(st.all_labels), feats.key)
        assert prob is not None
        if is_mem:
            hidden = mem.state.hidden
            assert hidden is not None and feats.shrinkage is not None
            value, new_hidden = net.encode_value(padded, feats.f16, hidden, prob[1:].unsqueeze(0),
                                                 deep_update=deep)
            self._record(value_in_masks=prob[1:].unsqueeze(0), value_in_hidden=hidden,
                         value=value, value_out_hidden=new_hidden)
            mem.add_memory(feats.key, feats.shrinkage, value, st.all_labels,
                           feats.selection if cfg.enable_long_term else None)
            st.last_mem_frame = t
            if deep:
                mem.state.hidden = new_hidden
                st.last_deep_frame = t
        return unpad(prob, pad)

    def _merge_mask(self, mask: torch.Tensor, prob: torch.Tensor | None,
                    valid_labels: list[int] | None) -> torch.Tensor:
        """Soft-aggregate the given mask, keeping predictions of objects not annotated here.

        Shape:
            mask (N, H, W), prob (N_mem+1, Hp, Wp) or None -> (N+1, Hp, Wp)
        """
        padded_mask, _ = pad_to_multiple(mask)
        if prob is not None:
            pred = prob[1:]  # view: zeroing it zeroes prob's object channels too
            pred[:, padded_mask.sum(0) > 0.5] = 0
            padded_mask = padded_mask.type_as(pred)
            if valid_labels is not None:
                keep = [i for i in range(pred.shape[0]) if (i + 1) not in valid_labels]
                padded_mask[keep] = pred[keep]
        return soft_aggregate(padded_mask, dim=0)[1]

    def _record(self, **tensors: torch.Tensor | None) -> None:
        if self.debug is None:
            return
        for name, value in tensors.items():
            if value is not None:
                self.debug[f"f{self.state.frame_index}_{name}"] = value.clone()

    def _check_inputs(self, image: torch.Tensor, mask: torch.Tensor | None,
                      valid_labels: list[int] | None) -> None:
        st = self.state
        if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
            raise ShapeError(f"XMem image must be a float (3, H, W) tensor, got "
                             f"{tuple(image.shape)} {image.dtype}; use normalise_frame().")
        size = [int(image.shape[1]), int(image.shape[2])]
        if st.frame_size and size != st.frame_size:
            raise ShapeError(f"frame size changed within the shot: {st.frame_size} -> {size}")
        if mask is None:
            if st.frame_index < 0:
                raise InputError("the first XMem frame needs a mask: start propagation at the "
                                 "first annotated frame.")
            if self._labels_pending:
                raise InputError("set_all_labels() added objects; this step needs their mask.")
        else:
            n = len(st.all_labels)
            if mask.ndim != 3 or tuple(mask.shape[1:]) != tuple(size) or mask.shape[0] != n:
                raise ShapeError(f"mask must be (N={n}, {size[0]}, {size[1]}) for ids "
                                 f"{st.all_labels}, got {tuple(mask.shape)}; call "
                                 "set_all_labels() with every id seen so far.")
            if n == 0:
                raise InputError("the mask holds no object: give at least one actor.")
            self._labels_pending = False
        if valid_labels is not None and not set(valid_labels) <= set(st.all_labels):
            raise InputError(f"valid_labels {valid_labels} are not all in {st.all_labels}")
        st.frame_size = size
