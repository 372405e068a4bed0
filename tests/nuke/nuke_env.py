"""Paths and start-up of the stand-in Nuke for the Nuke-plugin tests (imported by conftest)."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from types import ModuleType

import fake_nuke.nuke as fake_nuke_module

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "nuke_plugin"
# $ACTORMATTE_TEST_CLI: another core CLI to drive (e.g. a snapshot of the core while colleagues
# edit the working tree); the default is the repository venv's.
CLI = Path(os.environ.get("ACTORMATTE_TEST_CLI") or ROOT / ".venv" / "bin" / "actormatte")

sys.modules["nuke"] = fake_nuke_module


def start_nuke(gui: bool) -> ModuleType:
    """Reset the stand-in and run the plugin's init.py (and menu.py with the GUI) like Nuke."""
    fake_nuke_module.reset(gui=gui)
    runpy.run_path(str(PLUGIN / "init.py"))
    if gui:
        runpy.run_path(str(PLUGIN / "menu.py"))
    return fake_nuke_module
