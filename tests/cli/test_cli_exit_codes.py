"""Exit-code policy of ``actormatte``: bugs -> 1 with a traceback, CUDA OOM -> 3."""

from __future__ import annotations

import json

import pytest
import torch

from actormatte import pipeline
from actormatte.cli.main import main


def _fail_with(exc: BaseException):
    def run(*args, **kwargs):
        raise exc

    return run


def _error(capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    out, err = capsys.readouterr()
    return json.loads(out.splitlines()[-1]), err


ARGS = ["run", "plate.####.png", "--out", "out", "--masks", "ids.png"]


def test_unexpected_exception_is_reported_as_a_bug(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "run", _fail_with(ZeroDivisionError("boom")))
    assert main(ARGS) == 1
    error, err = _error(capsys)
    assert error["event"] == "error" and error["code"] == 1
    assert "bug" in error["message"] and "ZeroDivisionError: boom" in error["message"]
    assert "Traceback" in err


def test_cuda_out_of_memory_exits_3(monkeypatch, capsys):
    monkeypatch.setattr(pipeline, "run", _fail_with(torch.OutOfMemoryError("CUDA out of memory")))
    assert main(ARGS) == 3
    error, _ = _error(capsys)
    assert error["code"] == 3 and "--size" in error["message"]
