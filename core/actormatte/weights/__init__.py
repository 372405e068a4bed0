"""Model weights: the registry, the models folder and its sha256 manifest, and the installer.

The runtime (pipeline, propagation, matting, detection) only reads: :func:`resolve_models_dir`,
:func:`model_path`, :func:`model_files`, :func:`recorded_sha256`, :func:`verify_models`.
``actormatte weights install`` (and install.py through it) calls :func:`install_weights`.
"""

from actormatte.weights.install import InstallEvent, install_weights
from actormatte.weights.manifest import (
    FileStatus,
    Manifest,
    ManifestEntry,
    VerifyReport,
    read_manifest,
    recorded_sha256,
    verify_models,
)
from actormatte.weights.registry import (
    MODELS_ENV,
    REGISTRY,
    ModelEntry,
    WeightFile,
    get_model,
    model_files,
    model_path,
    resolve_models_dir,
)

__all__ = [
    "MODELS_ENV",
    "REGISTRY",
    "FileStatus",
    "InstallEvent",
    "Manifest",
    "ManifestEntry",
    "ModelEntry",
    "VerifyReport",
    "WeightFile",
    "get_model",
    "install_weights",
    "model_files",
    "model_path",
    "read_manifest",
    "recorded_sha256",
    "resolve_models_dir",
    "verify_models",
]
