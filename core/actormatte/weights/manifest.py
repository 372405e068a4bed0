"""The sha256 manifest of a models folder and the check of a folder against it.

``actormatte weights install`` writes ``<models>/manifest.json`` (file -> sha256, size, source,
licence); ``actormatte weights verify`` and ``actormatte info`` call :func:`verify_models`; the
exporter reads weight hashes for the EXR header with :func:`recorded_sha256`.

A folder filled by hand has no manifest: it is accepted with a warning, and files whose hash the
registry knows are still checked against it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from actormatte import __version__
from actormatte.errors import WeightsError
from actormatte.weights.registry import MANIFEST_NAME, REGISTRY, WeightFile, get_model

MANIFEST_FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest records about one file.

    Attributes:
        sha256: Hex digest of the file.
        size: Size in bytes.
        source: Where it came from (``hf://repo@rev/file``, a URL, or ``copy:<path>``).
        licence: Licence of the weights.
        model: Registry model the file belongs to.
    """

    sha256: str
    size: int
    source: str
    licence: str
    model: str


@dataclass(frozen=True)
class Manifest:
    """``<models>/manifest.json``: relpath -> :class:`ManifestEntry`."""

    files: dict[str, ManifestEntry] = field(default_factory=dict)
    created: str = ""
    version: str = __version__

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to disk."""
        return {
            "format": MANIFEST_FORMAT,
            "actormatte_version": self.version,
            "created": self.created,
            "files": {rel: vars(entry) for rel, entry in sorted(self.files.items())},
        }


def sha256_stream(stream: BinaryIO, sink: BinaryIO | None = None,
                  on_chunk: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Hash a stream while (optionally) copying it to ``sink``; returns (sha256, bytes)."""
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
        total += len(chunk)
        if on_chunk is not None:
            on_chunk(total)
    return digest.hexdigest(), total


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as stream:
        return sha256_stream(stream)[0]


def read_manifest(models_dir: str | Path) -> Manifest | None:
    """The folder's manifest, or ``None`` when it has none.

    Raises:
        WeightsError: The manifest exists but cannot be parsed.
    """
    path = Path(models_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        files = {rel: ManifestEntry(**entry) for rel, entry in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"{path} is unreadable ({error}); delete it and run "
                           "`actormatte weights install` again") from error
    return Manifest(files=files, created=str(data.get("created", "")),
                    version=str(data.get("actormatte_version", "")))


def write_manifest(models_dir: str | Path, files: dict[str, ManifestEntry]) -> Manifest:
    """Write ``manifest.json`` atomically and return it."""
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = Manifest(files=dict(files), created=created)
    path = Path(models_dir) / MANIFEST_NAME
    tmp = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return manifest


def recorded_sha256(models_dir: str | Path, name: str) -> str | None:
    """The manifest's sha256 of model ``name``'s weights file (``None`` without a manifest)."""
    manifest = read_manifest(models_dir)
    relpath = get_model(name).files[0].relpath
    if manifest is None or relpath not in manifest.files:
        return None
    return manifest.files[relpath].sha256


@dataclass(frozen=True)
class FileStatus:
    """The check of one file.

    Attributes:
        relpath: Path inside the models folder.
        model: Registry model it belongs to.
        status: ``ok`` (hash matches), ``unverified`` (present, nothing to compare with),
            ``missing``, or ``mismatch`` (size or hash differs).
        message: What was found, for people.
        sha256: The file's hash, when it was computed.
    """

    relpath: str
    model: str
    status: str
    message: str = ""
    sha256: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify_models`.

    Attributes:
        models_dir: The folder checked.
        files: One status per registry file checked.
        warnings: Things the user should know that do not fail the check.
        has_manifest: Whether ``manifest.json`` was there.
    """

    models_dir: Path
    files: list[FileStatus]
    warnings: list[str]
    has_manifest: bool

    def model_ok(self, name: str) -> bool:
        """Whether every file of model ``name`` is present and matches."""
        own = [f for f in self.files if f.model == name]
        return bool(own) and all(f.status in ("ok", "unverified") for f in own)

    @property
    def ok(self) -> bool:
        """Whether every file checked is present and none mismatches."""
        return all(f.status in ("ok", "unverified") for f in self.files)

    def problems(self) -> list[FileStatus]:
        """Files that are missing or mismatch."""
        return [f for f in self.files if f.status not in ("ok", "unverified")]


def check_file(path: Path, weight: WeightFile, recorded: ManifestEntry | None,
               model: str) -> FileStatus:
    """Check one file against the manifest entry (first) and the registry's size and hash."""
    if not path.is_file():
        return FileStatus(weight.relpath, model, "missing", f"{path} is missing")
    size = path.stat().st_size
    expected_size = recorded.size if recorded else weight.size
    if expected_size is not None and size != expected_size:
        return FileStatus(weight.relpath, model, "mismatch",
                          f"{path} is {size} bytes, expected {expected_size}")
    if weight.approx_size is not None and size < weight.approx_size // 2:
        return FileStatus(weight.relpath, model, "mismatch",
                          f"{path} is {size} bytes, expected about {weight.approx_size}: "
                          "incomplete or not the weights file (run refuses it)")
    digest = sha256_file(path)
    for label, expected in (("manifest", recorded.sha256 if recorded else None),
                            ("registry", weight.sha256)):
        if expected is not None and digest != expected:
            return FileStatus(weight.relpath, model, "mismatch",
                              f"{path} sha256 {digest} differs from the {label}'s {expected}",
                              digest)
    if recorded is None and weight.sha256 is None:
        return FileStatus(weight.relpath, model, "unverified",
                          f"{path} present; no recorded sha256 to compare with", digest)
    return FileStatus(weight.relpath, model, "ok", f"{path} sha256 matches", digest)


def verify_models(models_dir: str | Path, models: Iterable[str] | None = None) -> VerifyReport:
    """Check the files of ``models`` (default: every registry model) in ``models_dir``.

    Every present file is hashed, and the weights files of XMem and MaGGIe are loaded with the
    pipeline's strict loaders (:mod:`actormatte.weights.structure`), so a file that ``run``
    refuses never verifies (a few seconds for all models). A folder without
    ``manifest.json`` (filled by hand) is accepted with a warning.
    """
    root = Path(models_dir)
    names = list(models) if models is not None else list(REGISTRY)
    manifest = read_manifest(root)
    warnings: list[str] = []
    if manifest is None:
        warnings.append(f"{root} has no {MANIFEST_NAME} (filled by hand?): files are checked "
                        "only where the registry knows their sha256; run `actormatte weights "
                        f"install --models {root} --weights-from {root}` to record their hashes")
    statuses = []
    for name in names:
        for index, weight in enumerate(get_model(name).files):
            recorded = manifest.files.get(weight.relpath) if manifest else None
            status = check_file(root / weight.relpath, weight, recorded, name)
            if index == 0 and status.status in ("ok", "unverified"):
                status = _check_loads(status, root / weight.relpath)
            statuses.append(status)
    return VerifyReport(root, statuses, warnings, manifest is not None)


def _check_loads(status: FileStatus, path: Path) -> FileStatus:
    """Turn ``status`` into ``mismatch`` when the file does not load as ``run`` loads it."""
    from actormatte.weights.structure import load_problem

    problem = load_problem(status.model, path)
    if problem is None:
        return status
    return FileStatus(status.relpath, status.model, "mismatch",
                      f"{path} does not load: {problem}", status.sha256)
