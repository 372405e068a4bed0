"""Drive XMemProcessor through a golden case exactly as the official eval.py does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from actormatte.propagation import XMemConfig, XMemNet, XMemProcessor, upsample_prob

CONFIG_KEYS = ("top_k", "mem_every", "deep_update_every", "enable_long_term",
               "enable_long_term_count_usage", "min_mid_term_frames", "max_mid_term_frames",
               "num_prototypes", "max_long_term_elements")
FLAG_KEYS = ("is_mem_frame", "segmented", "is_deep_update", "hidden_updated_by_decoder")


@dataclass
class GoldenRun:
    prob: np.ndarray
    prob_core: np.ndarray
    flags: dict[str, np.ndarray]
    book: dict[str, np.ndarray]
    compress_frames: list[int]
    processor: XMemProcessor
    debug: dict[str, torch.Tensor] = field(default_factory=dict)


def config_of(golden: np.lib.npyio.NpzFile) -> XMemConfig:
    cfg = json.loads(str(golden["config_json"]))
    return XMemConfig(**{k: cfg[k] for k in CONFIG_KEYS})


def run_golden(path: Path, net: XMemNet) -> GoldenRun:
    g = np.load(path)
    proc = XMemProcessor(net, config_of(g), keep_records=True)
    proc.debug = {}
    frames = g["frames_norm"]
    num_frames = frames.shape[0]
    height, width = g["prob"].shape[-2:]
    prob = np.zeros(g["prob"].shape, np.float32)
    core = np.zeros((num_frames, prob.shape[1], *frames.shape[-2:]), np.float32)
    flags = {k: np.zeros(num_frames, bool) for k in FLAG_KEYS}
    book = {k: np.zeros(num_frames, np.int64) for k in
            ("mem_work_size", "mem_long_size", "mem_work_groups", "mem_long_groups",
             "mem_n_compress", "mem_last_mem_ti")}
    compress: list[int] = []
    annotated = set(int(t) for t in g["annotated_frames"])
    labels: list[int] = []
    for t in range(num_frames):
        mask = valid = None
        if t in annotated:
            mask = torch.from_numpy(g[f"mask_in_f{t}"])
            new_labels = list(range(1, mask.shape[0] + 1))
            valid = [label for label in new_labels if label not in labels]  # non-exhaustive
            labels = new_labels
            proc.set_all_labels(labels)
        before = proc.memory.state.num_consolidations
        out = proc.step(torch.from_numpy(frames[t]), mask, valid, end=t == num_frames - 1)
        core[t, :out.shape[0]] = out.numpy()
        prob[t, :out.shape[0]] = upsample_prob(out, (height, width)).numpy()
        info = proc.last_step
        assert info is not None
        flags["is_mem_frame"][t] = info.is_mem_frame
        flags["segmented"][t] = info.segmented
        flags["is_deep_update"][t] = info.deep_update
        flags["hidden_updated_by_decoder"][t] = info.segmented and info.normal_update
        mem = proc.memory.state
        book["mem_work_size"][t] = mem.work.size
        book["mem_long_size"][t] = mem.long.size
        book["mem_work_groups"][t] = len(mem.work.values)
        book["mem_long_groups"][t] = len(mem.long.values)
        book["mem_n_compress"][t] = mem.num_consolidations
        book["mem_last_mem_ti"][t] = proc.state.last_mem_frame
        if mem.num_consolidations > before:
            compress.append(t)
    return GoldenRun(prob, core, flags, book, compress, proc, proc.debug or {})
