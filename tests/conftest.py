"""Fixtures for every test folder: generated weights, a models folder, tiny shots, the device.

The shared helpers live in the ``support`` package (``tests/`` is on ``sys.path`` through
pyproject's ``pythonpath``); this file only registers them as fixtures, once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from support.reference import maggie_weights, xmem_weights
from support.shots import make_shot, models_dir, write_shot  # noqa: F401 - fixtures

# The XMem filter cache (actormatte.propagation.filter_cache) of the generated weights: one file
# in the repository's ignored .cache/, not in the home folder (subprocesses inherit it).
os.environ.setdefault("ACTORMATTE_CACHE",
                      str(Path(__file__).resolve().parents[1] / ".cache" / "actormatte"))


@pytest.fixture(scope="session")
def maggie_weights_factory() -> Callable[..., Path]:
    """``maggie_weights(variant, seed, overrides=None, sn_power_iters=0) -> Path``."""
    return maggie_weights


@pytest.fixture(scope="session")
def xmem_weights_factory() -> Callable[[int], Path]:
    """``xmem_weights(seed) -> Path``."""
    return xmem_weights


@pytest.fixture(scope="session")
def cuda_device() -> torch.device:
    """The CUDA device; skips the test on machines without one (``gpu``-marked tests)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine")
    return torch.device("cuda")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
