"""Weights: copy/verify/manifest round trip, corruption, missing files, downloads (no network)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actormatte.errors import WeightsError
from actormatte.weights import (
    InstallEvent,
    install_weights,
    model_files,
    model_path,
    read_manifest,
    recorded_sha256,
    registry,
    resolve_models_dir,
    verify_models,
)
from actormatte.weights import install as install_mod
from support.reference import MAGGIE_REF

REF = MAGGIE_REF
CORE = ["maggie-video", "xmem"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def weights_from(tmp_path_factory: pytest.TempPathFactory, maggie_weights_factory: Callable,
                 xmem_weights_factory: Callable) -> Path:
    """A --weights-from folder: MaGGIe as a Hugging Face snapshot folder, XMem.pth flat."""
    root = tmp_path_factory.mktemp("weights_from")
    snapshot = root / "maggie-video-vim2k5-cvpr24"
    snapshot.mkdir()
    (snapshot / "model.safetensors").symlink_to(maggie_weights_factory("video", 1))
    shutil.copy(REF / "reconstructed_config_video.json", snapshot / "config.json")
    (root / "XMem.pth").symlink_to(xmem_weights_factory(1))
    return root


@pytest.fixture()
def installed(tmp_path: Path, weights_from: Path) -> Path:
    models = tmp_path / "models"
    install_weights(models, weights_from=weights_from, models=CORE)
    return models


def test_copy_round_trip(installed: Path, weights_from: Path) -> None:
    manifest = read_manifest(installed)
    assert manifest is not None
    assert set(manifest.files) == {"maggie-video/model.safetensors", "maggie-video/config.json",
                                   "xmem/XMem.pth"}
    entry = manifest.files["xmem/XMem.pth"]
    assert entry.sha256 == _sha(weights_from / "XMem.pth") and entry.licence == "MIT"
    assert manifest.files["maggie-video/model.safetensors"].licence == "CC-BY-NC-4.0"
    report = verify_models(installed, CORE)
    assert report.ok and report.has_manifest and not report.warnings
    assert all(f.status == "ok" for f in report.files)
    assert model_path(installed, "maggie-video") == installed / "maggie-video/model.safetensors"
    assert set(model_files(installed, "maggie-video")) == {"model.safetensors", "config.json"}
    assert recorded_sha256(installed, "xmem") == entry.sha256


def test_rerun_skips_and_licence_notice(installed: Path, weights_from: Path) -> None:
    events: list[InstallEvent] = []
    install_weights(installed, weights_from=weights_from, progress=events.append, models=CORE)
    kinds = [e.kind for e in events]
    assert kinds.count("skip") == 3 and "installed" not in kinds
    notices = [e.message for e in events if e.kind == "notice"]
    assert len(notices) == 1 and "CC BY-NC 4.0" in notices[0]


def test_corruption_detected(installed: Path) -> None:
    path = installed / "xmem" / "XMem.pth"
    data = bytearray(path.read_bytes()[:4096])
    data[100] ^= 0xFF
    with open(path, "r+b") as stream:
        stream.write(data)
    report = verify_models(installed, CORE)
    assert not report.ok
    (bad,) = report.problems()
    assert bad.relpath == "xmem/XMem.pth" and bad.status == "mismatch"
    assert report.model_ok("maggie-video") and not report.model_ok("xmem")


def test_missing_file_names_the_fix(installed: Path) -> None:
    (installed / "maggie-video" / "config.json").unlink()
    with pytest.raises(WeightsError, match=r"config\.json.*actormatte weights install"):
        model_path(installed, "maggie-video")
    assert verify_models(installed, ["maggie-video"]).problems()[0].status == "missing"


def test_hand_placed_folder_warns_then_install_records(tmp_path: Path, weights_from: Path) -> None:
    models = tmp_path / "by_hand"
    (models / "xmem").mkdir(parents=True)
    shutil.copy(weights_from / "XMem.pth", models / "xmem" / "XMem.pth")
    report = verify_models(models, ["xmem"])
    assert report.ok and not report.has_manifest and "no manifest.json" in report.warnings[0]
    assert report.files[0].status == "unverified"
    install_weights(models, weights_from=models, models=["xmem"])  # record in place
    assert verify_models(models, ["xmem"]).files[0].status == "ok"


def test_source_manifest_is_checked(installed: Path, tmp_path: Path) -> None:
    (installed / "maggie-video" / "config.json").write_text("{}")  # differs from its manifest
    with pytest.raises(WeightsError, match="config.json.*manifest.json"):
        install_weights(tmp_path / "copy", weights_from=installed, models=["maggie-video"])
    assert not (tmp_path / "copy" / "maggie-video" / "config.json").exists()


def test_hub_cache_layout(tmp_path: Path, weights_from: Path) -> None:
    snapshot = (tmp_path / "hub" / "models--chuonghm--maggie-video-vim2k5-cvpr24" / "snapshots"
                / "6337268d4b2624f74060135f839e4b1d10521e5f")
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        (snapshot / name).symlink_to(weights_from / "maggie-video-vim2k5-cvpr24" / name)
    manifest = install_weights(tmp_path / "m", weights_from=tmp_path / "hub",
                               models=["maggie-video"])
    assert len(manifest.files) == 2


def test_missing_required_raises_optional_warns(tmp_path: Path, weights_from: Path) -> None:
    events: list[InstallEvent] = []
    manifest = install_weights(tmp_path / "m", weights_from=weights_from, progress=events.append,
                               models=["xmem", "maskrcnn"])
    assert set(manifest.files) == {"xmem/XMem.pth"}
    assert any(e.kind == "warning" and "MaskRCNN-10.onnx" in e.message for e in events)
    assert registry.REGISTRY["maggie-image"].required
    with pytest.raises(WeightsError, match="maggie-image/model.safetensors not found"):
        install_weights(tmp_path / "m2", weights_from=weights_from, models=["maggie-image"])


class _Response(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_download_paths(tmp_path: Path, weights_from: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def fake_hf(repo_id: str, filename: str, revision: str | None, local_dir: Path) -> Path:
        calls.append((repo_id, filename, revision))
        local_dir.mkdir(parents=True, exist_ok=True)
        target = local_dir / filename
        shutil.copy(weights_from / "maggie-video-vim2k5-cvpr24" / filename, target)
        return target

    served = (weights_from / "XMem.pth").read_bytes()

    @contextlib.contextmanager
    def fake_open(url: str) -> Iterator[_Response]:
        calls.append((url,))
        yield _Response(b"<html>404</html>" if url.endswith(".onnx") else served)

    monkeypatch.setattr(install_mod, "_hf_download", fake_hf)
    monkeypatch.setattr(install_mod, "_url_open", fake_open)
    events: list[InstallEvent] = []
    manifest = install_weights(tmp_path / "dl", progress=events.append,
                               models=["maggie-video", "xmem", "maskrcnn"])
    assert ("chuonghm/maggie-video-vim2k5-cvpr24", "model.safetensors",
            "6337268d4b2624f74060135f839e4b1d10521e5f") in calls
    assert any("XMem.pth" in c[0] for c in calls if len(c) == 1)
    assert manifest.files["xmem/XMem.pth"].sha256 == hashlib.sha256(served).hexdigest()
    assert manifest.files["xmem/XMem.pth"].source.startswith("https://github.com/hkchengrex")
    # the 16-byte "model" fails the registry's size: skipped (optional), nothing left behind
    assert "maskrcnn/MaskRCNN-10.onnx" not in manifest.files
    assert not list((tmp_path / "dl").rglob("*.onnx*")) and not list((tmp_path / "dl").glob(".d*"))
    assert any(e.kind == "progress" for e in events)


def test_resolve_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORMATTE_MODELS", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert resolve_models_dir(None).name == "models"  # <repo>/models
    (tmp_path / "actormatte-install.json").write_text(json.dumps({"models": "/rec/models"}))
    assert resolve_models_dir(None) == Path("/rec/models")
    monkeypatch.setenv("ACTORMATTE_MODELS", "/env/models")
    assert resolve_models_dir(None) == Path("/env/models")
    assert resolve_models_dir("/arg/models") == Path("/arg/models")
