"""Known causes exit with their documented code, not 1 (issue 15, finding 6): a full disk, huge
sizes, path-like names, weights that ``run`` refuses but ``verify`` passed."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from actormatte.cli.main import main
from actormatte.export import exr


def _run(shot, out: Path, models: Path, *extra: str) -> list[str]:
    return ["run", shot.pattern, "--out", str(out), "--models", str(models), "--masks",
            str(shot.ids), "--size", "64", "--xmem-size", "-1", "--no-progress-bar",
            "--device", "cpu", *extra]


def _last_event(capsys: pytest.CaptureFixture[str]) -> dict:
    out = capsys.readouterr().out
    return json.loads(out.splitlines()[-1])


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_disk_full_during_an_exr_write_exits_2_and_removes_temps(tmp_path, make_shot, models_dir,
                                                                 capsys, monkeypatch):
    shot = make_shot(3)
    written = []

    def fill(path, spec, pixels):
        if written:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        real(path, spec, pixels)

    real = exr._write_exr
    monkeypatch.setattr(exr, "_write_exr", fill)
    out = tmp_path / "out"
    assert main(_run(shot, out, models_dir)) == 2
    error = _last_event(capsys)
    assert error["code"] == 2 and "no space left on" in error["message"]
    assert "bug" not in error["message"]
    assert not _temps(out)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 8 KiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", f"am{uuid.uuid4().hex[:6]}",
                           str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_real_full_disk_exits_2(tmp_path, make_shot, models_dir, capsys, tiny_disk):
    shot = make_shot(3)
    assert main(_run(shot, tiny_disk, models_dir, "--work", str(tmp_path / "work"))) == 2
    error = _last_event(capsys)
    assert "no space left on" in error["message"], error
    assert not _temps(tiny_disk)


@pytest.mark.parametrize("flag", ["--size", "--xmem-size"])
def test_huge_sizes_are_refused_before_anything_is_written(tmp_path, make_shot, models_dir,
                                                           capsys, flag):
    shot = make_shot(2)
    out = tmp_path / "out"
    args = _run(shot, out, models_dir)
    args[args.index(flag) + 1] = "100000"
    assert main(args) == 2
    error = _last_event(capsys)
    assert flag in error["message"] and "8192" in error["message"]
    assert not out.exists()


@pytest.mark.parametrize("name", ["../x", "sub/dir", "..", "a\\b"])
def test_path_like_names_are_refused(tmp_path, make_shot, models_dir, capsys, name):
    shot = make_shot(2)
    out = tmp_path / "out"
    assert main(_run(shot, out, models_dir, "--name", name)) == 2
    error = _last_event(capsys)
    assert "--name" in error["message"] and "plain file name" in error["message"]
    assert not out.exists() and not (tmp_path / "x").exists()


def _models_copy(models_dir: Path, tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(models_dir, models, symlinks=True)
    return models


@pytest.mark.parametrize("fraction", [2, 4], ids=["half", "quarter"])
def test_verify_fails_for_an_xmem_file_that_run_refuses(tmp_path, models_dir, make_shot, capsys,
                                                        fraction):
    models = _models_copy(models_dir, tmp_path)
    xmem = models / "xmem" / "XMem.pth"
    data = xmem.read_bytes()
    xmem.unlink()
    xmem.write_bytes(data[:len(data) // fraction])
    shot = make_shot(2)
    assert main(_run(shot, tmp_path / "out", models)) == 4  # run refuses it
    capsys.readouterr()
    assert main(["weights", "verify", "--models", str(models), "--only", "xmem"]) == 4
    assert _last_event(capsys)["code"] == 4
    assert main(["info", "--models", str(models), "--verify"]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.strip().startswith("xmem:"))
    assert "NOT VERIFIED" in line and ", verified" not in line
