"""Blender-test fixtures: the bpy test venvs, the core CLI, and the shared models/shot fixtures.

Real Blender comes from the ``bpy`` wheels on PyPI, each in its own venv because bpy needs
``numpy<2`` while the core's venv has numpy 2: ``.venv-bpy`` (bpy 4.5.15 LTS) and ``.venv-bpy5``
(bpy 5.0.1), both made by ``python3 install.py --blender-test-venv``. A test skips only when its
venv is absent, and says how to make it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))

from pipeline_fixtures import make_shot, models_dir  # noqa: E402, F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
BPY_VENVS = {"4.5": ROOT / ".venv-bpy", "5.0": ROOT / ".venv-bpy5"}


def bpy_python(version: str) -> Path:
    """The interpreter of the bpy test venv for a Blender version; skips when it is absent."""
    python = BPY_VENVS[version] / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no bpy {version} test venv at {BPY_VENVS[version]}; create it with "
                    "`python3 install.py --no-weights --blender-test-venv`")
    return python


@pytest.fixture(scope="session")
def core_cli() -> Path:
    """The core venv's ``actormatte`` console script (the one these tests run under)."""
    cli = Path(sys.executable).parent / "actormatte"
    assert cli.is_file(), f"no actormatte CLI next to {sys.executable}; run install.py"
    return cli
