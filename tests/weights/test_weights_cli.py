"""``actormatte weights`` through the real CLI entry point, and install.py's weights step."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from actormatte.cli.main import main
from support.reference import MAGGIE_REF

ROOT = Path(__file__).resolve().parents[2]
REF = MAGGIE_REF


@pytest.fixture(scope="module")
def weights_from(tmp_path_factory: pytest.TempPathFactory, maggie_weights_factory: Callable,
                 xmem_weights_factory: Callable) -> Path:
    root = tmp_path_factory.mktemp("cli_weights_from")
    (root / "maggie-video").mkdir()
    (root / "maggie-video" / "model.safetensors").symlink_to(maggie_weights_factory("video", 1))
    shutil.copy(REF / "reconstructed_config_video.json", root / "maggie-video" / "config.json")
    (root / "maggie-image").mkdir()
    (root / "maggie-image" / "model.safetensors").symlink_to(maggie_weights_factory("image", 1))
    shutil.copy(REF / "reconstructed_config_image.json", root / "maggie-image" / "config.json")
    (root / "xmem").mkdir()
    (root / "xmem" / "XMem.pth").symlink_to(xmem_weights_factory(1))
    return root


def _events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_install_verify_list(tmp_path: Path, weights_from: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert main(["weights", "install", "--models", str(models), "--weights-from",
                 str(weights_from)]) == 0
    captured = capsys.readouterr()
    events = _events(captured.out)  # every stdout line is JSON
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert events[-1]["installed"] == ["maggie-image", "maggie-video", "xmem"]
    warnings = [e["message"] for e in events if e["event"] == "warning"]
    assert any("non-commercial" in w for w in warnings)  # MaGGIe licence told to the user
    assert any("MaskRCNN-10.onnx" in w for w in warnings)  # optional, absent: a warning
    assert "non-commercial" in captured.err

    assert main(["weights", "verify", "--models", str(models)]) == 0
    verify = _events(capsys.readouterr().out)
    status = {e["file"]: e["status"] for e in verify if e["event"] == "verify"}
    assert status["xmem/XMem.pth"] == "ok" and status["maskrcnn/MaskRCNN-10.onnx"] == "missing"

    assert main(["weights", "list", "--models", str(models)]) == 0
    listed = {e["name"]: e for e in _events(capsys.readouterr().out) if e["event"] == "model"}
    assert listed["maggie-video"]["licence"] == "CC-BY-NC-4.0" and listed["xmem"]["present"]
    assert listed["maskrcnn"]["licence"] == "MIT" and not listed["maskrcnn"]["present"]

    with open(models / "maggie-video" / "model.safetensors", "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\x00\x01\x02\x03")
    assert main(["weights", "verify", "--models", str(models)]) == 4
    error = _events(capsys.readouterr().out)[-1]
    assert error["event"] == "error" and error["code"] == 4
    assert "maggie-video/model.safetensors" in error["message"]


def test_missing_weights_folder_exits_4(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["weights", "verify", "--models", str(tmp_path / "empty")]) == 4
    error = _events(capsys.readouterr().out)[-1]
    assert "actormatte weights install" in error["message"]
    assert main(["weights", "install", "--models", str(tmp_path / "m"), "--weights-from",
                 str(tmp_path / "nowhere")]) == 4


def test_install_py_weights_step(tmp_path: Path, weights_from: Path) -> None:
    """install.py's step 4 runs ``<venv>/bin/actormatte weights install`` from the venv."""
    venv = Path(sys.prefix)
    spec = importlib.util.spec_from_file_location("am_install", ROOT / "install.py")
    assert spec is not None and spec.loader is not None
    installer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installer)
    if not installer.venv_cli(venv).is_file():
        pytest.skip(f"no actormatte console script in {venv} (package not pip-installed)")
    models = tmp_path / "models"
    installer.install_weights(venv, models, weights_from)
    manifest = json.loads((models / "manifest.json").read_text())
    assert {"maggie-video/model.safetensors", "xmem/XMem.pth"} <= set(manifest["files"])
