"""Goldens A and C (official XMem outputs) reproduced through the XMemProcessor API.

Tiers follow the reference compare_golden.py. Robust is the gate. Strict (max |dprob| <= 1e-4)
is asserted on every frame whose top-k near-tie gap (golden `topk_min_gap`) is above 1e-5: on
this AVX2 machine the convolutions round differently from the reference AVX-512 host (~3e-6
relative), and golden A frame 5 has a rank-30/31 gap of 7e-6, which that rounding flips (the
same frame fp64 fails on). Figures are printed (pytest -s) and recorded in the report.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from support.reference import XMEM_REF

from .golden_runner import FLAG_KEYS, GoldenRun, run_golden

sys.path.insert(0, str(XMEM_REF))
from compare_golden import compare  # noqa: E402

SEEDS = {"A": 1, "C": 3}


@pytest.fixture(scope="module", params=["A", "C"])
def case(request, xmem_net_factory) -> tuple[str, np.lib.npyio.NpzFile, GoldenRun]:
    name = request.param
    torch.set_num_threads(2)  # the reference thread count (module fixture: set here)
    path = XMEM_REF / f"golden_{name}.npz"
    return name, np.load(path), run_golden(path, xmem_net_factory(SEEDS[name]))


def _close(ours, golden: np.ndarray, rel: float = 1e-4) -> float:
    ours = np.asarray(ours)
    assert ours.shape == golden.shape
    err = float(np.abs(ours - golden).max())
    assert err <= rel * max(1.0, float(np.abs(golden).max())), err
    return err


def test_probabilities_tiers(case) -> None:
    name, g, run = case
    result = compare(g, run.prob)
    worst = max(f["max_abs"] for f in result["frames"])
    print(f"\ngolden {name}: strict={result['strict']} robust={result['robust']} "
          f"max|dprob|={worst:.3g} per frame "
          + " ".join(f"{f['max_abs']:.2g}" for f in result["frames"]))
    assert result["robust"], result["frames"]
    for f, gap in zip(result["frames"], g["topk_min_gap"], strict=True):
        if gap > 1e-5:
            assert f["strict"], f
    if "prob_core" in g:
        core_err = float(np.abs(run.prob_core - g["prob_core"]).max())
        print(f"golden {name}: prob_core max|d|={core_err:.3g}")
        assert core_err <= 1e-4


def test_flags_and_bookkeeping_exact(case) -> None:
    _, g, run = case
    for key in FLAG_KEYS:
        np.testing.assert_array_equal(run.flags[key], g[key], err_msg=key)
    for key, values in run.book.items():
        np.testing.assert_array_equal(values, g[key], err_msg=key)
    np.testing.assert_array_equal(run.compress_frames, g["compress_frames"])
    assert run.processor.memory.state.obj_groups == eval(str(g["obj_groups_json"]))  # noqa: S307


def test_final_memory(case) -> None:
    name, g, run = case
    mem = run.processor.memory.state
    _close(mem.work.key, g["final_work_key"])
    _close(mem.work.shrinkage, g["final_work_shrinkage"])
    _close(mem.work.selection, g["final_work_selection"])
    np.testing.assert_array_equal(mem.work.life_count, g["final_work_life_count"])
    # Use counts sum affinities; A's frame-5 near-tie moves some by ~3e-4 of their scale.
    _close(mem.work.use_count, g["final_work_use_count"], rel=1e-3 if name == "A" else 1e-4)
    for gi, value in enumerate(mem.work.values):
        _close(value, g[f"final_work_value_g{gi}"])
    _close(mem.hidden, g["final_hidden"])
    if "final_long_key" in g:
        _close(mem.long.key, g["final_long_key"])
        _close(mem.long.shrinkage, g["final_long_shrinkage"])
        assert len(mem.long.values) == sum(k.startswith("final_long_value_g") for k in g)
        for gi, value in enumerate(mem.long.values):
            _close(value, g[f"final_long_value_g{gi}"])


def test_first_consolidation_and_internals(case) -> None:
    _, g, run = case
    if "consol1_ti" in g:
        rec = run.processor.memory.records[0]
        np.testing.assert_array_equal(rec.prototype_indices, g["consol1_prototype_indices"])
        _close(rec.candidate_key, g["consol1_candidate_key"])
        _close(rec.candidate_shrinkage, g["consol1_candidate_shrinkage"])
        _close(rec.candidate_selection, g["consol1_candidate_selection"])
        _close(rec.candidate_usage, g["consol1_candidate_usage"])
        _close(rec.candidate_values[0], g["consol1_candidate_value_g0"])
        _close(rec.prototype_key, g["consol1_prototype_key"])
        _close(rec.prototype_shrinkage, g["consol1_prototype_shrinkage"])
        _close(rec.prototype_values[0], g["consol1_prototype_value_g0"])
    checked = 0
    for name, value in run.debug.items():
        if int(name[1]) <= 2 and f"int_{name}" in g:
            _close(value, g[f"int_{name}"])
            checked += 1
    assert checked >= 15
