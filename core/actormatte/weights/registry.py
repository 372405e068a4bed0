"""The model-weights registry: which files each model needs, where they come from, their licences.

Everything that loads weights asks this module where a file is (:func:`model_path`,
:func:`resolve_models_dir`); :mod:`actormatte.weights.install` fetches the files and
:mod:`actormatte.weights.manifest` records and checks their sha256. The runtime never downloads.

Facts recorded here (sizes and hashes we could not check are ``None``; the first install records
the real sha256 of every file in ``<models>/manifest.json`` and later runs check against it):

* MaGGIe video and image: Hugging Face repos ``chuonghm/maggie-video-vim2k5-cvpr24`` and
  ``chuonghm/maggie-image-him50k-cvpr24`` (``config.json`` + ``model.safetensors``, pushed with
  ``PyTorchModelHubMixin``). The video ``model.safetensors`` is listed at 124 MB; its tensors hold
  123,735,172 bytes of data (MAGGIE_SPEC.md), the file adds a JSON header, so that figure is not
  the file size. The repos' card tags say cc-by-4.0; the MaGGIe authors (Adobe Research) release
  the weights for non-commercial research (CC BY-NC 4.0), which is what we tell users.
* XMem: ``XMem.pth`` asset of the ``v1.0`` release of ``hkchengrex/XMem`` (MIT), about 249 MB.
* Mask R-CNN R-50-FPN (opset 10) from the ONNX Model Zoo (MIT, per its README):
  177,925,424 bytes, sha256 ``a519d810...0757`` (``ONNX_HUB_MANIFEST.json`` of ``onnx/models``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from actormatte.errors import WeightsError

#: Environment variable naming the models folder (set by install.py for the hosts).
MODELS_ENV = "ACTORMATTE_MODELS"
#: File install.py writes in the venv; its ``"models"`` key is the models folder.
INSTALL_RECORD = "actormatte-install.json"
MANIFEST_NAME = "manifest.json"

_REPO_ROOT = Path(__file__).resolve().parents[3]
_NON_COMMERCIAL = ("MaGGIe weights are licensed CC BY-NC 4.0: non-commercial use only. "
                   "Commercial productions need a licence from the authors (Adobe Research).")


@dataclass(frozen=True)
class WeightFile:
    """One file of a model.

    Attributes:
        relpath: Path inside the models folder, ``<model>/<file>``.
        url: Direct download URL (used when ``hf_repo`` is empty).
        hf_repo: Hugging Face repo id; the file is ``hf_filename`` in it at ``hf_revision``.
        hf_filename: File name inside the Hugging Face repo.
        hf_revision: Commit or branch to download from (``None``: the default branch).
        size: Exact size in bytes, when known.
        approx_size: Rough size for messages and a sanity check (a file under half of it is
            rejected: an error page or a Git LFS pointer, not weights).
        sha256: Expected sha256, when known.
    """

    relpath: str
    url: str = ""
    hf_repo: str = ""
    hf_filename: str = ""
    hf_revision: str | None = None
    size: int | None = None
    approx_size: int | None = None
    sha256: str | None = None

    @property
    def source(self) -> str:
        """Where the file comes from, as one string for the manifest and messages."""
        if self.hf_repo:
            revision = f"@{self.hf_revision}" if self.hf_revision else ""
            return f"hf://{self.hf_repo}{revision}/{self.hf_filename}"
        return self.url


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry.

    Attributes:
        name: Registry key and folder name inside the models folder.
        description: What ActorMatte uses the model for.
        files: The files it needs; ``files[0]`` is the weights file :func:`model_path` returns.
        licence: Licence of the weights (SPDX-like).
        licence_url: Where the licence is stated.
        notice: A licence notice the CLI must show when installing or using the model.
        required: Whether ``actormatte run`` always needs it (otherwise only some options do).
    """

    name: str
    description: str
    files: tuple[WeightFile, ...]
    licence: str
    licence_url: str
    notice: str = ""
    required: bool = True


def _maggie(name: str, repo: str, revision: str | None, description: str,
            approx_size: int, required: bool) -> ModelEntry:
    files = (
        WeightFile(f"{name}/model.safetensors", hf_repo=repo, hf_filename="model.safetensors",
                   hf_revision=revision, approx_size=approx_size),
        WeightFile(f"{name}/config.json", hf_repo=repo, hf_filename="config.json",
                   hf_revision=revision),
    )
    return ModelEntry(name, description, files, licence="CC-BY-NC-4.0",
                      licence_url="https://github.com/hmchuong/MaGGIe", notice=_NON_COMMERCIAL,
                      required=required)


REGISTRY: dict[str, ModelEntry] = {
    entry.name: entry for entry in (
        _maggie("maggie-video", "chuonghm/maggie-video-vim2k5-cvpr24",
                # The commit "Push model using huggingface_hub" (2024-04-12); later commits
                # changed only README.md.
                "6337268d4b2624f74060135f839e4b1d10521e5f",
                "MaGGIe video instance matting (MaGGIe_Temp, V-HIM2K5)", 123_801_000, True),
        _maggie("maggie-image", "chuonghm/maggie-image-him50k-cvpr24", None,
                "MaGGIe image instance matting (HIM50K), for single-frame jobs",
                120_150_000, True),
        ModelEntry(
            "xmem", "XMem mask propagation (v1.0 release)",
            (WeightFile("xmem/XMem.pth",
                        url="https://github.com/hkchengrex/XMem/releases/download/v1.0/XMem.pth",
                        approx_size=249_000_000),),
            licence="MIT", licence_url="https://github.com/hkchengrex/XMem/blob/main/LICENSE"),
        ModelEntry(
            "maskrcnn", "Mask R-CNN R-50-FPN person detection for --detect (ONNX Model Zoo)",
            (WeightFile("maskrcnn/MaskRCNN-10.onnx",
                        url="https://github.com/onnx/models/raw/main/validated/vision/"
                            "object_detection_segmentation/mask-rcnn/model/MaskRCNN-10.onnx",
                        size=177_925_424, approx_size=177_925_424,
                        sha256="a519d8102cb162e78cbf123615aa5a8f"
                               "3bf9d0fa1dec61a2fbbb42fa3f0e0757"),),
            licence="MIT",
            licence_url="https://github.com/onnx/models/tree/main/validated/vision/"
                        "object_detection_segmentation/mask-rcnn",
            required=False),
    )
}


def get_model(name: str) -> ModelEntry:
    """The registry entry called ``name``.

    Raises:
        WeightsError: No such model.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown model {name!r}; known models: "
                           f"{', '.join(REGISTRY)}") from None


def _recorded_models_dir() -> Path | None:
    record = Path(sys.prefix) / INSTALL_RECORD
    try:
        models = json.loads(record.read_text()).get("models")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(models) if isinstance(models, str) and models else None


def resolve_models_dir(arg: str | Path | None = None) -> Path:
    """The models folder to use.

    ``--models``, else ``$ACTORMATTE_MODELS``, else the folder install.py recorded in
    ``<venv>/actormatte-install.json`` (the venv is ``sys.prefix``), else ``<repo>/models``.
    """
    if arg:
        return Path(arg).expanduser()
    env = os.environ.get(MODELS_ENV)
    if env:
        return Path(env).expanduser()
    recorded = _recorded_models_dir()
    if recorded is not None:
        return recorded
    return _REPO_ROOT / "models"


def _install_hint(models_dir: Path) -> str:
    return (f"run `actormatte weights install --models {models_dir}` (or, offline, "
            f"`actormatte weights install --models {models_dir} --weights-from DIR`)")


def model_files(models_dir: str | Path, name: str) -> dict[str, Path]:
    """Every file of model ``name`` by file name (``{"model.safetensors": Path, ...}``).

    Raises:
        WeightsError: A file is missing or implausibly small; the message names it and the fix.
    """
    entry = get_model(name)
    root = Path(models_dir)
    found: dict[str, Path] = {}
    for weight in entry.files:
        path = root / weight.relpath
        if not path.is_file():
            raise WeightsError(f"{entry.description}: missing {path}; {_install_hint(root)}")
        size = path.stat().st_size
        if (weight.size is not None and size != weight.size) or (
                weight.approx_size is not None and size < weight.approx_size // 2):
            raise WeightsError(f"{path} is {size} bytes, expected "
                               f"{weight.size or weight.approx_size}: incomplete or not the "
                               f"weights file; {_install_hint(root)}")
        found[Path(weight.relpath).name] = path
    return found


def model_path(models_dir: str | Path, name: str) -> Path:
    """Path of the weights file of model ``name`` (``maggie-video`` -> ``model.safetensors``).

    Raises:
        WeightsError: The model or one of its files is missing (exit code 4).
    """
    entry = get_model(name)
    return model_files(models_dir, name)[Path(entry.files[0].relpath).name]
