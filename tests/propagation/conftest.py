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
def _one_thread() -> object:
    """Tests run on 1 thread unless they ask for ``two_threads``.

    Tiny tensors on a busy 2-core machine run ~25x slower with 2 OpenMP threads (barrier
    spinning), so small-frame tests use one; the goldens use 2, like the reference.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def two_threads(_one_thread: object) -> None:
    """Run this test with 2 threads (the goldens' thread count)."""
    torch.set_num_threads(2)
