"""Nuke-plugin test fixtures: the stand-in ``nuke`` module with the plugin loaded through its init.py.

``fake_nuke`` installs ``tests/nuke/fake_nuke/nuke.py`` as ``nuke``, resets it and runs
``nuke_plugin/init.py`` as Nuke does at start-up, so the plugin's Python and gizmo folders are on
the (stand-in) plugin path. ``models_dir`` and ``make_shot`` come from the pipeline fixtures.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLUGIN = ROOT / "nuke_plugin"
CLI = ROOT / ".venv" / "bin" / "actormatte"

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "pipeline"))

import fake_nuke.nuke as fake_nuke_module  # noqa: E402
from pipeline_fixtures import make_shot, models_dir  # noqa: E402, F401 - fixtures

sys.modules["nuke"] = fake_nuke_module


def start_nuke(gui: bool) -> ModuleType:
    """Reset the stand-in and run the plugin's init.py (and menu.py with the GUI) like Nuke."""
    fake_nuke_module.reset(gui=gui)
    runpy.run_path(str(PLUGIN / "init.py"))
    if gui:
        runpy.run_path(str(PLUGIN / "menu.py"))
    return fake_nuke_module


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
