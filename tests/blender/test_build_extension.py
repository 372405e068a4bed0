"""tools/build_blender_extension.py: manifest and source checks, and the zip it builds."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("build_blender_extension",
                                               ROOT / "tools" / "build_blender_extension.py")
assert _spec is not None and _spec.loader is not None
build_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_tool)
MANIFEST = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())


def test_the_manifest_and_sources_pass() -> None:
    assert build_tool.check_manifest(MANIFEST) == []
    assert build_tool.check_sources(ROOT / "blender_addon") == []
    assert MANIFEST["blender_version_min"] == "4.2.0" and MANIFEST["license"] == ["SPDX:MIT"]


@pytest.mark.parametrize(("change", "message"), [
    ({"permissions": {"files": "x" * 65}}, "reason must be at most 64"),
    ({"permissions": {"files": "Reads files."}}, "must not end with punctuation"),
    ({"permissions": {"files": "Reads files", "network": "Downloads"}}, "files permission only"),
    ({"blender_version_min": "4.1.0"}, "4.2.0 or newer"),
    ({"license": ["MIT"]}, "SPDX"),
    ({"wheels": ["./wheels/torch.whl"]}, "pure Python"),
    ({"tagline": "Mattes."}, "tagline must not end with punctuation"),
])
def test_manifest_problems_are_named(change: dict, message: str) -> None:
    manifest = {**copy.deepcopy(MANIFEST), **change}
    assert any(message in error for error in build_tool.check_manifest(manifest))


def test_missing_fields_and_heavy_imports_are_named(tmp_path: Path) -> None:
    manifest = dict(MANIFEST)
    del manifest["tagline"]
    assert build_tool.check_manifest(manifest) == ["missing field 'tagline'"]
    addon = tmp_path / "addon"
    shutil.copytree(ROOT / "blender_addon", addon)
    (addon / "extra.py").write_text("import numpy as np\nfrom torch import nn\n")
    assert build_tool.check_sources(addon) == [
        "extra.py: imports numpy (not in Blender's Python)",
        "extra.py: imports torch (not in Blender's Python)"]


def _names(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return set(archive.namelist())


def test_build_makes_an_installable_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    addon = tmp_path / "addon"
    shutil.copytree(ROOT / "blender_addon", addon)
    (addon / "__pycache__").mkdir(exist_ok=True)
    (addon / "__pycache__" / "node.cpython-311.pyc").write_bytes(b"")
    expected = {"blender_manifest.toml", "__init__.py", "cli_client.py", "node.py",
                "operators.py", "preferences.py", "panel.py", "locate.py", "colorspace.py",
                "keyframes.py", "mask_render.py", "exr_header.py"}
    assert build_tool.main(["--source", str(addon), "--out-dir", str(tmp_path / "a")]) == 0
    assert _names(tmp_path / "a" / f"actormatte-{MANIFEST['version']}.zip") == expected
    # Without Blender or a bpy venv the script's own writer makes the same package.
    monkeypatch.setattr(build_tool.shutil, "which", lambda name: None)
    monkeypatch.setattr(build_tool, "blender_ext_script", lambda: None)
    out = tmp_path / "b" / "actormatte.zip"
    assert build_tool.build(addon, out) == "this script's zip writer"
    assert _names(out) == expected
