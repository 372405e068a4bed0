"""XMem's memory manager: sensory, working and long-term stores, consolidation and pruning.

Owned by :class:`actormatte.propagation.processor.XMemProcessor`; all of its state lives in the
:class:`MemoryState` dataclass (so it can be snapshotted). Semantics follow the official
``MemoryManager``/``KeyValueMemoryStore`` (spec section 5) including quirks Q1 and Q2. Where the
official code crashes we do something sound instead (documented in docs/PROPAGATION.md):

* Q3 (``min_mid_term_frames = 1``): slices use positive end indices, so consolidation moves
  everything but the first frame to long-term memory.
* Q4a (pruning when LT already has exactly ``max - P`` elements): nothing is removed.
* Q4b (pruning with several LT groups): the keep-mask over LT elements is applied to every
  group's values on the elements that group covers (its values align with the trailing keys).
* Q4c (pruning without usage counting): the oldest LT elements are evicted, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from actormatte.propagation.config import XMemConfig
from actormatte.propagation.readout import (
    full_softmax,
    read_topk_values,
    read_values,
    similarity,
    topk_usage,
    topk_weights,
)

logger = logging.getLogger(__name__)


@dataclass
class KVStore:
    """A key/value store (working or long-term memory); elements are stride-16 positions.

    Attributes:
        count_usage: whether use/life counters are kept.
        key: (1, CK, M) keys or None while empty.
        shrinkage: (1, 1, M).
        selection: (1, CK, M) (working memory with long-term on only).
        values: per object group, (n_g, CV, M_g); group g aligns with the LAST M_g keys.
        use_count: (1, 1, M) float32 summed affinity; life_count: (1, 1, M) reads survived.
    """

    count_usage: bool
    key: torch.Tensor | None = None
    shrinkage: torch.Tensor | None = None
    selection: torch.Tensor | None = None
    values: list[torch.Tensor] = field(default_factory=list)
    use_count: torch.Tensor | None = None
    life_count: torch.Tensor | None = None

    @property
    def size(self) -> int:
        """Number of elements (keys)."""
        return 0 if self.key is None else int(self.key.shape[-1])

    def value_size(self, group: int) -> int:
        """Number of value elements of one object group."""
        return int(self.values[group].shape[-1])

    def usage(self) -> torch.Tensor:
        """Normalised usage ``use_count / life_count``, shape (1, 1, M)."""
        assert self.use_count is not None and self.life_count is not None
        return self.use_count / self.life_count

    def append_keys(self, key: torch.Tensor, shrinkage: torch.Tensor | None,
                    selection: torch.Tensor | None) -> None:
        """Append elements (and fresh counters: use 0, life 1e-7)."""
        def cat(old: torch.Tensor | None, new: torch.Tensor | None) -> torch.Tensor | None:
            if new is None:
                return old
            return new if old is None else torch.cat([old, new], -1)

        self.key = cat(self.key, key)
        self.shrinkage = cat(self.shrinkage, shrinkage)
        self.selection = cat(self.selection, selection)
        if self.count_usage:
            count = torch.zeros((key.shape[0], 1, key.shape[2]), device=key.device,
                                dtype=torch.float32)
            self.use_count = cat(self.use_count, count)
            self.life_count = cat(self.life_count, count + 1e-7)

    def update_usage(self, usage: torch.Tensor) -> None:
        """Add one read's usage (row sums of the affinity) to every element's counters."""
        if not self.count_usage:
            return
        assert self.use_count is not None and self.life_count is not None
        self.use_count += usage.view_as(self.use_count)
        self.life_count += 1

    def keep_elements(self, keep: torch.Tensor) -> None:
        """Filter keys, counters and the covered part of every group's values by a mask (M,)."""
        assert self.key is not None
        self.key = self.key[:, :, keep]
        self.shrinkage = None if self.shrinkage is None else self.shrinkage[:, :, keep]
        self.selection = None if self.selection is None else self.selection[:, :, keep]
        if self.use_count is not None and self.life_count is not None:
            self.use_count = self.use_count[:, :, keep]
            self.life_count = self.life_count[:, :, keep]
        total = keep.shape[0]
        # Group g's values cover the last M_g keys: filter them with the trailing mask.
        self.values = [v[:, :, keep[total - v.shape[-1]:]] for v in self.values]


@dataclass
class MemoryState:
    """Everything the memory manager holds; tensors, ints and lists only (snapshot-friendly).

    Attributes:
        work: working memory.
        long: long-term memory.
        obj_groups: object groups, 0-based object indices; group g = values[g] of both stores.
        hidden: sensory memory (1, N, CH, h, w) or None before the first mask.
        feat_hw: elements per memory frame (h*w at stride 16); 0 before the first memory frame.
        num_consolidations: consolidations so far.
        num_prunes: long-term prunings so far.
    """

    work: KVStore
    long: KVStore
    obj_groups: list[list[int]] = field(default_factory=list)
    hidden: torch.Tensor | None = None
    feat_hw: int = 0
    num_consolidations: int = 0
    num_prunes: int = 0

    @classmethod
    def empty(cls, config: XMemConfig) -> MemoryState:
        """Fresh state: WM counts usage iff long-term is on; LT iff usage counting is on."""
        return cls(work=KVStore(count_usage=config.enable_long_term),
                   long=KVStore(count_usage=config.enable_long_term_count_usage))


@dataclass
class ConsolidationRecord:
    """Inputs and outputs of one consolidation (kept only when debugging is requested)."""

    candidate_key: torch.Tensor
    candidate_shrinkage: torch.Tensor
    candidate_selection: torch.Tensor | None
    candidate_usage: torch.Tensor
    candidate_values: list[torch.Tensor | None]
    prototype_indices: torch.Tensor
    prototype_key: torch.Tensor
    prototype_shrinkage: torch.Tensor
    prototype_values: list[torch.Tensor | None]


class MemoryManager:
    """Reads from and writes to XMem's memory; the state is :attr:`state`.

    Args:
        config: runtime settings.
        hidden_dim: sensory-memory channels (from the network).
        state: a state to resume from (else an empty one).
        keep_records: keep a :class:`ConsolidationRecord` per consolidation in :attr:`records`.
    """

    def __init__(self, config: XMemConfig, hidden_dim: int, state: MemoryState | None = None,
                 keep_records: bool = False) -> None:
        self.config = config
        self.hidden_dim = hidden_dim
        self.state = state if state is not None else MemoryState.empty(config)
        self.keep_records = keep_records
        self.records: list[ConsolidationRecord] = []

    # ----------------------------------------------------------------------------- reading
    def match_memory(self, query_key: torch.Tensor, query_selection: torch.Tensor | None
                     ) -> torch.Tensor:
        """Read the memory for a query frame and update usage counters.

        Shape:
            query_key (1, CK, h, w), query_selection (1, CK, h, w) -> readout (N, CV, h, w)
        """
        work, long = self.state.work, self.state.long
        assert work.key is not None, "match_memory before any memory frame"
        height, width = query_key.shape[-2:]
        qk = query_key.flatten(2)  # (1, CK, P)
        qe = None if query_selection is None else query_selection.flatten(2)  # (1, CK, P)
        use_long = self.config.enable_long_term and long.key is not None
        lt_size = long.size if use_long else 0
        if use_long:
            assert long.key is not None and long.shrinkage is not None
            mem_key = torch.cat([long.key, work.key], -1)
            mem_shrinkage = torch.cat([long.shrinkage, work.shrinkage], -1)  # type: ignore[list-item]
            sim = similarity(mem_key, mem_shrinkage, qk, qe)  # (1, L + M, P)
        else:
            sim = similarity(work.key, work.shrinkage, qk, qe)  # (1, M, P)
        sim_lt, sim_wm = sim[:, :lt_size], sim[:, lt_size:]
        values: list[torch.Tensor] = []
        readouts: list[torch.Tensor] = []
        for gi, wv in enumerate(work.values):
            parts = []
            if gi < len(long.values) and lt_size > 0:
                parts.append(sim_lt[:, lt_size - long.value_size(gi):])
            parts.append(sim_wm if gi == 0 else sim_wm[:, work.size - work.value_size(gi):])
            group_sim = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
            weights, indices = topk_weights(group_sim, self.config.top_k)  # (1, k, P) each
            gv = torch.cat([long.values[gi], wv], -1) if len(parts) == 2 else wv
            values.append(gv)
            affinity = None
            if weights.device.type != "cpu":
                # Dense (1, M, P) affinity: scatter_ of unique top-k rows (no atomics), then
                # usage as its row sums; a 2-D scatter_add_ would add with CUDA atomics in a
                # run-dependent order, and chunked runs must equal single runs.
                affinity = weights.new_zeros((1, group_sim.shape[1], weights.shape[2]))
                affinity.scatter_(1, indices, weights)
            if gi == 0 and self.config.enable_long_term:
                usage = (topk_usage(weights, indices, group_sim.shape[1]) if affinity is None
                         else affinity.sum(2))  # (1, L0 + M)
                work.update_usage(usage[:, lt_size:].flatten())
                if lt_size > 0:
                    long.update_usage(usage[:, :lt_size].flatten())
            readouts.append(read_topk_values(weights, indices, gv) if affinity is None
                            else read_values(affinity, gv))
        out = torch.cat(readouts, 0)  # (N, CV, P)
        return out.view(out.shape[0], out.shape[1], height, width)  # (N, CV, h, w)

    # ----------------------------------------------------------------------------- writing
    def create_hidden(self, num_objects: int, sample_key: torch.Tensor) -> None:
        """Create the sensory memory, or widen it with zeros to ``num_objects`` objects."""
        height, width = sample_key.shape[-2:]
        hidden = self.state.hidden
        have = 0 if hidden is None else hidden.shape[1]
        if have == num_objects:
            return
        # Default dtype (float32), as the official code, even under autocast.
        zeros = torch.zeros((1, num_objects - have, self.hidden_dim, height, width),
                            device=sample_key.device)
        if hidden is not None:
            zeros = torch.cat([hidden, zeros], 1)
        self.state.hidden = zeros

    def add_memory(self, key: torch.Tensor, shrinkage: torch.Tensor, value: torch.Tensor,
                   all_labels: list[int], selection: torch.Tensor | None) -> None:
        """Add a memory frame; consolidate (and prune LT first) when working memory is full.

        Shape:
            key (1, CK, h, w), shrinkage (1, 1, h, w), value (1, N, CV, h, w),
            selection (1, CK, h, w) or None
        """
        state, cfg = self.state, self.config
        if state.feat_hw == 0:
            state.feat_hw = int(key.shape[-2] * key.shape[-1])
        flat_value = value[0].flatten(2)  # (N, CV, h*w)
        state.work.append_keys(key.flatten(2), shrinkage.flatten(2),
                               None if selection is None else selection.flatten(2))
        remaining = [label - 1 for label in all_labels]
        for gi, group in enumerate(state.obj_groups):
            for obj in group:
                remaining.remove(obj)
            state.work.values[gi] = torch.cat([state.work.values[gi], flat_value[group]], -1)
        if remaining:
            state.work.values.append(flat_value[remaining])
            state.obj_groups.append(list(remaining))
        if cfg.enable_long_term and state.work.size >= cfg.max_mid_term_frames * state.feat_hw:
            limit = cfg.max_long_term_elements - cfg.num_prototypes
            if state.long.size >= limit:
                self.prune_long_term(limit)
            self.consolidate()

    # ----------------------------------------------------------------------------- LT upkeep
    def prune_long_term(self, max_size: int) -> None:
        """Shrink LT to at most ``max_size`` elements, removing the least used (spec 5.5)."""
        long = self.state.long
        excess = long.size - max_size
        if excess <= 0:  # Q4a: the official code raises IndexError here.
            return
        self.state.num_prunes += 1
        if not long.count_usage:  # Q4c: no usage to rank by, so evict the oldest.
            logger.warning(
                "XMem long-term memory is full but its usage is not counted; evicting the %d "
                "oldest elements. Use XMemConfig.for_shot(num_frames) to count usage on long "
                "shots.", excess)
            keep = torch.arange(long.size, device=long.key.device) >= excess  # type: ignore[union-attr]
        else:
            keep = prune_keep_mask(long.usage().flatten(), excess)
        long.keep_elements(keep)

    def consolidate(self) -> None:
        """Move the middle of working memory to ``num_prototypes`` long-term prototypes."""
        state, cfg = self.state, self.config
        work, hw = state.work, state.feat_hw
        total = work.size
        min_work = cfg.min_mid_term_frames * hw
        end = total - min_work + hw  # candidates are [hw, end)
        assert work.key is not None and work.shrinkage is not None
        cand_key = work.key[:, :, hw:end]
        cand_shrinkage = work.shrinkage[:, :, hw:end]
        cand_selection = None if work.selection is None else work.selection[:, :, hw:end]
        cand_usage = work.usage()[:, :, hw:end]
        cand_values: list[torch.Tensor | None] = []
        for gv in work.values:
            size = gv.shape[-1]
            assert hw <= size <= total
            if size == total or size > min_work + hw:
                cand_values.append(gv[:, :, hw:size - min_work + hw])
            else:  # Q1: this group cannot send anything to LT yet
                cand_values.append(None)
        num_cand = cand_key.shape[-1]
        _, top = torch.topk(cand_usage, k=min(cfg.num_prototypes, num_cand), dim=-1, sorted=True)
        proto_idx = top.flatten()
        proto_key = cand_key[:, :, proto_idx]
        proto_sel = None if cand_selection is None else cand_selection[:, :, proto_idx]
        sim = similarity(cand_key, cand_shrinkage, proto_key, proto_sel)  # (1, Nc, P)
        affinities: list[torch.Tensor | None] = []
        for cand in cand_values:
            if cand is None:
                affinities.append(None)
                continue
            valid = proto_idx >= (num_cand - cand.shape[2])  # Q2: a subset, in usage order
            aff = full_softmax(sim[:, num_cand - cand.shape[2]:, valid])
            affinities.append(aff if aff.shape[-1] > 0 else None)
        proto_values = [None if aff is None or gv is None else read_values(aff, gv)
                        for aff, gv in zip(affinities, cand_values, strict=True)]
        assert affinities[0] is not None
        proto_shrinkage = read_values(affinities[0], cand_shrinkage)
        if self.keep_records:
            self.records.append(ConsolidationRecord(
                cand_key, cand_shrinkage, cand_selection, cand_usage, cand_values, proto_idx,
                proto_key, proto_shrinkage, proto_values))
        self._sieve_work(hw, end, min_work + hw)
        self._append_long(proto_key, proto_shrinkage, proto_values)
        state.num_consolidations += 1

    def _sieve_work(self, start: int, end: int, min_size: int) -> None:
        """Drop WM elements [start, end); values only of groups with >= min_size elements (Q1)."""
        work = self.state.work

        def cut(t: torch.Tensor | None, stop: int) -> torch.Tensor | None:
            return None if t is None else torch.cat([t[:, :, :start], t[:, :, stop:]], -1)

        total = work.size
        work.key = cut(work.key, end)
        work.shrinkage = cut(work.shrinkage, end)
        work.selection = cut(work.selection, end)
        work.use_count = cut(work.use_count, end)
        work.life_count = cut(work.life_count, end)
        work.values = [
            v if v.shape[-1] < min_size else cut(v, v.shape[-1] - (total - end))  # type: ignore[misc]
            for v in work.values]

    def _append_long(self, key: torch.Tensor, shrinkage: torch.Tensor,
                     values: list[torch.Tensor | None]) -> None:
        """Append prototypes to LT; a group's first prototypes start a new LT group."""
        long = self.state.long
        long.append_keys(key, shrinkage, None)
        for gi, gv in enumerate(values):
            if gv is None:
                continue
            if gi < len(long.values):
                long.values[gi] = torch.cat([long.values[gi], gv], -1)
            else:
                long.values.append(gv)


def prune_keep_mask(usage: torch.Tensor, excess: int) -> torch.Tensor:
    """Which LT elements survive pruning: strictly more used than the ``excess``-th least used.

    Ties at the threshold are all removed, so more than ``excess`` elements can go (official).

    Shape:
        usage (M,) -> keep (M,) bool
    """
    lowest, _ = torch.topk(usage, k=excess, largest=False, sorted=True)
    return usage > lowest[-1]
