"""Precision resolution, TF32 flags, out-of-memory classification, the GPU fallback warning."""

from __future__ import annotations

import json

import pytest
import torch

from actormatte import pipeline
from actormatte.cli.main import main
from actormatte.device import (
    gpu_fallback_warning,
    is_out_of_memory,
    precision_context,
    resolve_precision,
)
from actormatte.errors import InputError

SMI = "| NVIDIA-SMI 580.65.06    Driver Version: 580.65.06    CUDA Version: 13.0  |\n"


def test_precision_defaults_and_errors() -> None:
    assert resolve_precision("auto", "cpu").name == "fp32"
    assert resolve_precision("auto", "cuda").name == "fp32"
    tf32 = resolve_precision("tf32", "cuda")
    assert tf32.tf32 and tf32.autocast_dtype is None
    assert not resolve_precision("tf32", "cpu").tf32  # TF32 is CUDA only
    assert resolve_precision("fp16", "cuda").autocast_dtype == torch.float16
    assert resolve_precision("bf16", "cpu").autocast_dtype == torch.bfloat16
    with pytest.raises(InputError, match="fp16 on the CPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(InputError, match="unknown"):
        resolve_precision("fp64", "cpu")


def test_precision_context_sets_and_restores_tf32() -> None:
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision_context(resolve_precision("fp32", "cpu")):
        assert not torch.backends.cudnn.allow_tf32  # torch's default (True) is overridden
        assert not torch.backends.cuda.matmul.allow_tf32
    with precision_context(resolve_precision("tf32", "cuda")):
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    with precision_context(resolve_precision("bf16", "cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.parametrize(("exc", "oom"), [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
     True),
    (RuntimeError("/io/include/tensorview/tensor.h(195)\ncuda failed with error 2 out of memory. "
                  "use CUDA_LAUNCH_BLOCKING=1 to get correct traceback."), True),
    (RuntimeError("CUDA error: an illegal memory access was encountered"), False),
    (MemoryError("host RAM"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_classifier(exc: BaseException, oom: bool) -> None:
    assert is_out_of_memory(exc) is oom


def test_cudnn_alloc_failure_exits_3(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")

    monkeypatch.setattr(pipeline, "run", run)
    assert main(["run", "plate.####.png", "--out", "out", "--masks", "ids.png"]) == 3
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert error["code"] == 3


def test_gpu_fallback_warning() -> None:
    message = gpu_fallback_warning("auto", False, SMI)
    assert message is not None and "580.65.06" in message and "install.py --device cuda" in message
    assert gpu_fallback_warning("auto", True, SMI) is None  # torch uses the GPU
    assert gpu_fallback_warning("cpu", False, SMI) is None  # the user asked for the CPU
    assert gpu_fallback_warning("auto", False, None) is None  # no GPU at all
    assert gpu_fallback_warning("auto", False, "NVIDIA-SMI has failed") is None


def test_describe_runtime_says_what_runs_and_why() -> None:
    from actormatte.device import describe_runtime

    cpu = describe_runtime(torch_sees_cuda=False, spconv_importable=True, nvidia_smi_output="")
    assert cpu["device"] == "cpu" and cpu["sparse_backend"]["name"] == "torch"
    assert cpu["precision"]["name"] == "fp32" and not cpu["warnings"]
    gpu = describe_runtime(torch_sees_cuda=True, spconv_importable=True, nvidia_smi_output=SMI)
    assert gpu["device"] == "cuda" and gpu["sparse_backend"]["name"] == "spconv"
    assert gpu["nvidia_smi"] == {"driver": "580.65.06", "cuda": "13.0"}
    no_spconv = describe_runtime(torch_sees_cuda=True, spconv_importable=False,
                                 nvidia_smi_output=SMI)
    assert no_spconv["sparse_backend"]["name"] == "torch"
    assert "does not import" in no_spconv["sparse_backend"]["reason"]
    broken = describe_runtime(torch_sees_cuda=False, spconv_importable=False,
                              nvidia_smi_output=SMI)
    assert broken["device"] == "cpu" and "install.py --device cuda" in broken["warnings"][0]
    bad = describe_runtime("cpu", "spconv", "fp16", torch_sees_cuda=False,
                           spconv_importable=False, nvidia_smi_output="")
    assert len(bad["errors"]) == 2


def test_auto_device_fallback_logs_a_warning(monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from actormatte import device
    from actormatte.config import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "query_nvidia_smi", lambda: SMI)
    with caplog.at_level("WARNING"):
        assert resolve_device("auto") == "cpu"
    assert "cannot use it" in caplog.text


def test_info_json_reports_the_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", "--device", "cpu", "--precision", "bf16"]) == 0
    runtime = json.loads(capsys.readouterr().out.splitlines()[-1])["runtime"]
    assert runtime["device"] == "cpu" and runtime["precision"]["name"] == "bf16"
    assert runtime["sparse_backend"]["name"] == "torch" and "reason" in runtime["sparse_backend"]
