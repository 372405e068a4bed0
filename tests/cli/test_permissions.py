"""Work and output files keep the umask's permissions; a permission error names the file and the fix
(issue 15, finding 2)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from actormatte import jobs
from actormatte.cli.main import main
from actormatte.errors import InputError
from actormatte.jobs import Job, WorkFolder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_002():
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def test_run_files_keep_the_umask_permissions(tmp_path, make_shot, models_dir, capsys, umask_002):
    shot = make_shot(3)
    out = tmp_path / "out"
    assert main(["run", shot.pattern, "--out", str(out), "--models", str(models_dir), "--masks",
                 str(shot.ids), "--size", "64", "--xmem-size", "-1", "--no-progress-bar",
                 "--device", "cpu"]) == 0
    work = out / ".actormatte" / "plate_mattes"
    files = [work / "job.json", *sorted((work / "masks").glob("*.png")),
             *sorted(out.glob("plate_mattes.*.exr"))]
    assert len(files) == 1 + 3 + 3
    assert {str(p.relative_to(out)): oct(_mode(p)) for p in files} == {
        str(p.relative_to(out)): oct(0o664) for p in files}
    for folder in (out, work, work / "masks"):
        assert _mode(folder) == 0o775, folder


def _work(tmp_path: Path) -> WorkFolder:
    work = WorkFolder(tmp_path / "work")
    work.write_job(Job(plate="/p/plate.####.exr", start_frame=1, first=1, last=1, width=4,
                       height=3, input_colorspace="sRGB", actors=(), keyframes=(1,),
                       keyframes_sha256="x", xmem_size=480, complete=True))
    work.write_mask(1, np.ones((3, 4), np.uint16))
    return work


def _assert_names_fix(message: str, path: Path) -> None:
    assert "permission denied" in message and str(path) in message
    assert "chmod" in message and "propagate" not in message


def test_unreadable_job_json_names_the_file_and_the_fix(tmp_path, monkeypatch):
    work = _work(tmp_path)

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(InputError) as info:
        work.read_job()
    _assert_names_fix(str(info.value), work.job_path)


def test_unreadable_mask_names_the_file_and_the_fix(tmp_path, monkeypatch):
    work = _work(tmp_path)
    monkeypatch.setattr(jobs.os, "access", lambda path, mode: False)
    with pytest.raises(InputError) as info:
        work.read_mask(1, (4, 3))
    _assert_names_fix(str(info.value), work.mask_path(1))


def test_unwritable_mask_names_the_file_and_the_fix(tmp_path, monkeypatch):
    work = _work(tmp_path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(jobs.os, "open", denied)
    with pytest.raises(InputError) as info:
        work.write_mask(1, np.ones((3, 4), np.uint16))
    _assert_names_fix(str(info.value), work.mask_path(1))
