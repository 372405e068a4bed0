"""Nuke-plugin fixtures: the stand-in ``nuke`` module with the plugin loaded through init.py.

``nuke_gui`` / ``nuke_t`` reset the stand-in (``nuke_env.start_nuke``) and run
``nuke_plugin/init.py`` as Nuke does at start-up (and menu.py with the GUI), so the plugin's Python
and gizmo folders are on the (stand-in) plugin path. ``models_dir`` and ``make_shot`` come from
``tests/conftest.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nuke_env import start_nuke  # noqa: E402


@pytest.fixture
def nuke_factory() -> Iterator[Callable[[bool], ModuleType]]:
    """``start(gui) -> nuke``; cancels any job a test left running."""
    yield start_nuke
    import actormatte_nuke

    for job in actormatte_nuke.jobs.values():
        job.cancel()
        job.join(30)
    actormatte_nuke.jobs.clear()


@pytest.fixture
def nuke_gui(nuke_factory: Callable[[bool], ModuleType]) -> ModuleType:
    """The stand-in in GUI mode (``nuke.env['gui']`` True)."""
    return nuke_factory(True)


@pytest.fixture
def nuke_t(nuke_factory: Callable[[bool], ModuleType]) -> ModuleType:
    """The stand-in in terminal mode (``nuke -t``)."""
    return nuke_factory(False)
