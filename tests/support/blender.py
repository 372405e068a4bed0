"""The bpy test venvs: real Blender from the ``bpy`` wheels on PyPI, one venv per version.

bpy needs ``numpy<2`` while the core's venv has numpy 2, so each Blender version gets its own venv:
``.venv-bpy`` (bpy 4.5.15 LTS) and ``.venv-bpy5`` (bpy 5.0.1), both made by
``python3 install.py --blender-test-venv``. Locally a test skips when its venv is absent and says
how to make it; under CI (``CI`` set) a missing venv is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.reference import ROOT

BPY_VENVS = {"4.5": ROOT / ".venv-bpy", "5.0": ROOT / ".venv-bpy5"}


def bpy_python(version: str) -> Path:
    """The interpreter of the bpy test venv for a Blender version."""
    python = BPY_VENVS[version] / "bin" / "python"
    if not python.is_file():
        message = (f"no bpy {version} test venv at {BPY_VENVS[version]}; create it with "
                   "`python3 install.py --no-weights --blender-test-venv`")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python
