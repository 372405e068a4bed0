"""Blender-test fixtures: the core CLI (the bpy venvs are in ``support.blender``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def core_cli() -> Path:
    """The core venv's ``actormatte`` console script (the one these tests run under)."""
    override = os.environ.get("ACTORMATTE_TEST_CLI")  # e.g. a snapshot of the core
    cli = Path(override) if override else Path(sys.executable).parent / "actormatte"
    assert cli.is_file(), f"no actormatte CLI next to {sys.executable}; run install.py"
    return cli
