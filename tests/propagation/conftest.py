"""Fixtures for the XMem propagation tests: loaded networks (cached per session) and a stub."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from actormatte.propagation import XMemNet, load_xmem


@pytest.fixture(scope="session")
def xmem_net_factory(xmem_weights_factory: Callable[[int], object]) -> Callable[[int], XMemNet]:
    """``net(seed)``: the generated XMem weights for ``seed``, loaded once per session."""
    cache: dict[int, XMemNet] = {}

    def get(seed: int) -> XMemNet:
        if seed not in cache:
            cache[seed] = load_xmem(xmem_weights_factory(seed))  # type: ignore[arg-type]
        return cache[seed]

    return get


@pytest.fixture(autouse=True)
def _two_threads() -> object:
    """Goldens were made with 2 threads; keep tests on that count unless a test changes it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
