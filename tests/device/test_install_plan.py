"""install.py's install matrix as pure functions: nvidia-smi output in, torch build + sparse out.

No real nvidia-smi is needed: its output is injected (docs/GPU.md has the matrix).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from support.reference import ROOT

SMI_13 = """+--------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.65.06           Driver Version: 580.65.06      CUDA Version: 13.0     |
|-----------------------------------------+----------------------+----------------------+
|   0  NVIDIA H200                    On  | 00000000:19:00.0 Off |                    0 |
"""
SMI_12_4 = SMI_13.replace("CUDA Version: 13.0", "CUDA Version: 12.4")
SMI_12_6 = SMI_13.replace("CUDA Version: 13.0", "CUDA Version: 12.6")
SMI_12_9 = SMI_13.replace("CUDA Version: 13.0", "CUDA Version: 12.9")


@pytest.fixture(scope="module")
def installer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("actormatte_install", ROOT / "install.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["actormatte_install"] = module  # NamedTuple needs its module registered
    spec.loader.exec_module(module)
    return module


def test_parse_cuda_version(installer: ModuleType) -> None:
    assert installer.parse_cuda_version(SMI_13) == (13, 0)
    assert installer.parse_cuda_version(SMI_12_4) == (12, 4)
    assert installer.parse_cuda_version("NVIDIA-SMI has failed") is None


@pytest.mark.parametrize("python", [(3, 10), (3, 11), (3, 12), (3, 13)])
def test_cpu_machine_never_gets_cuda_torch(installer: ModuleType, python: tuple[int, int]) -> None:
    plan = installer.plan_install(python, "cpu", None)
    assert plan.torch_args[0] == "torch==2.13.0+cpu"  # PyPI's 2.13.0 (CUDA 13) cannot match
    assert plan.torch_args[-1].endswith("/whl/cpu") and plan.spconv is None
    assert plan.sparse_backend == "torch"


@pytest.mark.parametrize(("smi", "torch_req", "index"), [
    (SMI_13, "torch==2.13.0", None),
    (SMI_12_9, "torch==2.13.0+cu128", "/whl/cu128"),
    (SMI_12_6, "torch==2.13.0+cu126", "/whl/cu126"),
])
@pytest.mark.parametrize("python", [(3, 10), (3, 11), (3, 12), (3, 13), (3, 14)])
def test_cuda_matrix(installer: ModuleType, smi: str, torch_req: str, index: str | None,
                     python: tuple[int, int]) -> None:
    plan = installer.plan_install(python, "cuda", installer.parse_cuda_version(smi))
    assert plan.torch_args[0] == torch_req
    if index is None:
        assert len(plan.torch_args) == 1  # PyPI
    else:
        assert plan.torch_args[-1].endswith(index)
    if python <= (3, 13):
        assert plan.spconv == "spconv-cu121==2.3.8" and plan.sparse_backend == "spconv"
    else:
        assert plan.spconv is None and plan.sparse_backend == "torch"
        assert any("pure-PyTorch" in note for note in plan.notes)


def test_old_driver_and_no_driver_say_what_to_do(installer: ModuleType) -> None:
    with pytest.raises(SystemExit, match="Update the NVIDIA driver"):
        installer.plan_install((3, 11), "cuda", installer.parse_cuda_version(SMI_12_4))
    with pytest.raises(SystemExit, match="no working NVIDIA driver"):
        installer.plan_install((3, 11), "cuda", None)


def test_torch_index_mirror(installer: ModuleType) -> None:
    plan = installer.plan_install((3, 11), "cuda", (12, 8), "https://mirror.example/cu128")
    assert plan.torch_args == ["torch==2.13.0+cu128", "--no-deps", "--index-url",
                               "https://mirror.example/cu128"]
    cpu = installer.plan_install((3, 11), "cpu", None, "https://mirror.example/cpu")
    assert cpu.torch_args[-1] == "https://mirror.example/cpu"
