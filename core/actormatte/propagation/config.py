"""Runtime configuration of XMem propagation (the official eval.py defaults).

Architecture constants (key/value/hidden channels) are not here: they come from the
checkpoint (:class:`actormatte.propagation.network.XMemDims`). Built by the pipeline/CLI and
handed to :class:`actormatte.propagation.processor.XMemProcessor`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from actormatte.errors import InputError


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"XMemConfig.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class XMemConfig:
    """XMem inference settings; the defaults are those of the official evaluation.

    Attributes:
        top_k: memory elements kept per query position in the top-k softmax.
        mem_every: a frame is added to memory every ``mem_every`` frames (and on annotations).
        deep_update_every: < 0 ties the deep sensory update to memory frames (official
            default); otherwise a deep update every that many frames (applied on memory frames).
        enable_long_term: consolidate working memory into long-term prototypes.
        enable_long_term_count_usage: track long-term usage, which pruning needs; decide it per
            shot with :meth:`for_shot` as eval.py does.
        min_mid_term_frames: frames working memory keeps after a consolidation.
        max_mid_term_frames: working-memory size (frames) that triggers a consolidation.
        num_prototypes: prototypes added to long-term memory per consolidation.
        max_long_term_elements: long-term memory cap (elements).
    """

    top_k: int = 30
    mem_every: int = 5
    deep_update_every: int = -1
    enable_long_term: bool = True
    enable_long_term_count_usage: bool = False
    min_mid_term_frames: int = 5
    max_mid_term_frames: int = 10
    num_prototypes: int = 128
    max_long_term_elements: int = 10000

    def __post_init__(self) -> None:
        _check_int("top_k", self.top_k, 1)
        _check_int("mem_every", self.mem_every, 1)
        if isinstance(self.deep_update_every, bool) or not isinstance(self.deep_update_every, int):
            raise InputError("XMemConfig.deep_update_every must be an integer "
                             f"(-1 = with memory frames), got {self.deep_update_every!r}")
        for flag in ("enable_long_term", "enable_long_term_count_usage"):
            if not isinstance(getattr(self, flag), bool):
                raise InputError(f"XMemConfig.{flag} must be a bool, got {getattr(self, flag)!r}")
        _check_int("min_mid_term_frames", self.min_mid_term_frames, 1)
        _check_int("max_mid_term_frames", self.max_mid_term_frames, 2)
        _check_int("num_prototypes", self.num_prototypes, 1)
        _check_int("max_long_term_elements", self.max_long_term_elements, 2)
        if self.max_mid_term_frames <= self.min_mid_term_frames:
            raise InputError(
                "XMemConfig.max_mid_term_frames must be larger than min_mid_term_frames, got "
                f"{self.max_mid_term_frames} <= {self.min_mid_term_frames}")
        if self.max_long_term_elements <= self.num_prototypes:
            raise InputError(
                "XMemConfig.max_long_term_elements must be larger than num_prototypes, got "
                f"{self.max_long_term_elements} <= {self.num_prototypes}")

    @property
    def deep_update_sync(self) -> bool:
        """True when deep updates happen exactly on memory frames (deep_update_every < 0)."""
        return self.deep_update_every < 0

    def for_shot(self, num_frames: int) -> XMemConfig:
        """This config with ``enable_long_term_count_usage`` decided for a shot length.

        Exactly eval.py's rule: count long-term usage iff long-term memory is on and
        ``num_frames / (max_mid - min_mid) * num_prototypes >= max_long_term_elements``,
        i.e. when the shot is long enough for long-term memory to need pruning (391 frames
        or more with the defaults).
        """
        _check_int("for_shot(num_frames)", num_frames, 0)
        return dataclasses.replace(
            self, enable_long_term_count_usage=count_usage_for_shot(self, num_frames))


def count_usage_for_shot(config: XMemConfig, num_frames: int) -> bool:
    """eval.py's per-video decision for ``enable_long_term_count_usage`` (see for_shot)."""
    span = config.max_mid_term_frames - config.min_mid_term_frames
    return config.enable_long_term and (
        num_frames / span * config.num_prototypes >= config.max_long_term_elements)
