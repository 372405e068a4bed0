"""Fetch model weights into a models folder: download them, or copy them from a local folder.

Called by ``actormatte weights install`` (which install.py runs from the new venv). The runtime
never calls this module: it only reads the folder (:mod:`actormatte.weights.registry`).

Downloads go to a temporary name in the models folder and are renamed into place only after
their size and sha256 check out (against the registry where it knows them, and against the
source folder's ``manifest.json`` when copying from another install). Hugging Face files come
through ``huggingface_hub.hf_hub_download`` (the optional ``download`` extra), other URLs through
``urllib``; both are imported lazily. Files already present whose hash matches the manifest are
kept, so a re-run takes seconds.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from actormatte.errors import DependencyError, WeightsError
from actormatte.weights.manifest import (
    Manifest,
    ManifestEntry,
    check_file,
    read_manifest,
    sha256_stream,
    write_manifest,
)
from actormatte.weights.registry import REGISTRY, ModelEntry, WeightFile, get_model

logger = logging.getLogger(__name__)

_PROGRESS_STEP = 16 << 20
_URL_TIMEOUT_S = 60


@dataclass(frozen=True)
class InstallEvent:
    """Something the installer wants the user to see.

    Attributes:
        kind: ``notice`` (a licence the user must read), ``warning``, ``skip`` (already
            installed), ``progress`` (bytes of ``file`` fetched so far) or ``installed``.
        file: Path of the file inside the models folder.
        done: Bytes fetched so far.
        total: Bytes expected, when known.
        message: Text for people.
    """

    kind: str
    file: str = ""
    done: int = 0
    total: int | None = None
    message: str = ""


InstallProgress = Callable[[InstallEvent], None]


def _ignore(event: InstallEvent) -> None:
    """Drop install events."""


def _hf_download(repo_id: str, filename: str, revision: str | None, local_dir: Path) -> Path:
    """Download one file of a Hugging Face repo into ``local_dir``; returns its path."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as error:
        raise DependencyError("downloading MaGGIe weights needs huggingface_hub: "
                              "pip install 'huggingface_hub>=0.20' (the [download] extra), or "
                              "copy the weights with --weights-from DIR") from error
    return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision,
                                local_dir=str(local_dir)))


def _url_open(url: str) -> Any:
    """Open a URL for streaming (a context manager with ``read`` and ``headers``)."""
    request = urllib.request.Request(url, headers={"User-Agent": "actormatte-weights"})
    return urllib.request.urlopen(request, timeout=_URL_TIMEOUT_S)  # noqa: S310 (https only)


def _hf_snapshot_dirs(root: Path, repo_id: str, revision: str | None) -> list[Path]:
    """Folders where a copy of a Hugging Face repo may sit under ``root``."""
    owner, _, name = repo_id.partition("/")
    dirs = [root / name, root / owner / name]
    snapshots = root / f"models--{owner}--{name}" / "snapshots"
    if snapshots.is_dir():
        if revision and (snapshots / revision).is_dir():
            dirs.append(snapshots / revision)
        dirs += sorted((p for p in snapshots.iterdir() if p.is_dir()),
                       key=lambda p: p.stat().st_mtime, reverse=True)
    return dirs


def find_in_folder(root: Path, weight: WeightFile) -> Path | None:
    """Where ``weight`` is in a ``--weights-from`` folder, or ``None``.

    Looked at, in order: the models-folder layout (``<root>/<model>/<file>``), the Hugging Face
    layouts (``<root>/<repo name>/``, ``<root>/<owner>/<repo name>/``, a hub cache
    ``<root>/models--<owner>--<name>/snapshots/<rev>/``), and, for names that are unique
    (``XMem.pth``, ``MaskRCNN-10.onnx``), ``<root>/<file>``.
    """
    candidates = [root / weight.relpath]
    if weight.hf_repo:
        candidates += [d / weight.hf_filename
                       for d in _hf_snapshot_dirs(root, weight.hf_repo, weight.hf_revision)]
    else:
        candidates.append(root / Path(weight.relpath).name)
    return next((c for c in candidates if c.is_file()), None)


class _Fetcher:
    """Fetches files of one install run into the models folder."""

    def __init__(self, root: Path, weights_from: Path | None, progress: InstallProgress) -> None:
        self.root = root
        self.weights_from = weights_from
        self.progress = progress
        self.source_manifest = read_manifest(weights_from) if weights_from else None

    def fetch(self, weight: WeightFile, model: ModelEntry) -> ManifestEntry:
        """Put ``weight`` in place and return its manifest entry."""
        dest = self.root / weight.relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            if self.weights_from is not None:
                digest, size = self._copy(weight, tmp)
            elif weight.hf_repo:
                digest, size = self._download_hf(weight, tmp)
            else:
                digest, size = self._download_url(weight, tmp)
            self._check(weight, digest, size)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        self.progress(InstallEvent("installed", weight.relpath, size, size,
                                   f"{dest} ({size} bytes, sha256 {digest[:12]}...)"))
        return ManifestEntry(sha256=digest, size=size, source=weight.source,
                             licence=model.licence, model=model.name)

    def _stream(self, weight: WeightFile, stream: BinaryIO, tmp: Path,
                total: int | None) -> tuple[str, int]:
        last = [0]

        def on_chunk(done: int) -> None:
            if done - last[0] >= _PROGRESS_STEP:
                last[0] = done
                self.progress(InstallEvent("progress", weight.relpath, done, total))

        with open(tmp, "wb") as sink:
            return sha256_stream(stream, sink, on_chunk)

    def _copy(self, weight: WeightFile, tmp: Path) -> tuple[str, int]:
        assert self.weights_from is not None
        source = find_in_folder(self.weights_from, weight)
        if source is None:
            wanted = self.weights_from / weight.relpath
            origin = (f"a Hugging Face snapshot of {weight.hf_repo} there" if weight.hf_repo
                      else f"the file downloaded from {weight.url}")
            raise WeightsError(f"{weight.relpath} not found in --weights-from "
                               f"{self.weights_from}; put it at {wanted} (or put {origin})")
        with open(source, "rb") as stream:
            return self._stream(weight, stream, tmp, source.stat().st_size)

    def _download_hf(self, weight: WeightFile, tmp: Path) -> tuple[str, int]:
        staging = self.root / f".download-{os.getpid()}"
        try:
            path = _hf_download(weight.hf_repo, weight.hf_filename, weight.hf_revision, staging)
            with open(path, "rb") as stream:
                return self._stream(weight, stream, tmp, path.stat().st_size)
        except (DependencyError, WeightsError):
            raise
        except Exception as error:  # huggingface_hub raises many types (HTTP, offline, ...)
            raise WeightsError(f"downloading {weight.source} failed ({error}); check the "
                               "network, or copy the weights with --weights-from DIR") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _download_url(self, weight: WeightFile, tmp: Path) -> tuple[str, int]:
        try:
            with _url_open(weight.url) as response:
                length = response.headers.get("Content-Length")
                return self._stream(weight, response, tmp, int(length) if length else None)
        except OSError as error:  # URLError and HTTPError are OSErrors
            raise WeightsError(f"downloading {weight.url} failed ({error}); check the "
                               "network, or copy the weights with --weights-from DIR") from error

    def _check(self, weight: WeightFile, digest: str, size: int) -> None:
        expected = [("registry", weight.size, weight.sha256)]
        if self.source_manifest and weight.relpath in self.source_manifest.files:
            entry = self.source_manifest.files[weight.relpath]
            expected.append((f"{self.weights_from}/manifest.json", entry.size, entry.sha256))
        for label, want_size, want_sha in expected:
            if want_size is not None and size != want_size:
                raise WeightsError(f"{weight.relpath}: got {size} bytes, the {label} says "
                                   f"{want_size}; the file is incomplete or a different version")
            if want_sha is not None and digest != want_sha:
                raise WeightsError(f"{weight.relpath}: sha256 {digest} differs from the "
                                   f"{label}'s {want_sha}; the file is corrupt or a different "
                                   "version")
        if weight.approx_size is not None and size < weight.approx_size // 2:
            raise WeightsError(f"{weight.relpath}: only {size} bytes (expected about "
                               f"{weight.approx_size}): an error page or a Git LFS pointer, "
                               "not the weights")


def _installed_entry(root: Path, weight: WeightFile, model: ModelEntry,
                     existing: Manifest | None) -> ManifestEntry | None:
    """The manifest entry of a file already in place and matching, else ``None``."""
    recorded = existing.files.get(weight.relpath) if existing else None
    if recorded is None and weight.sha256 is None:
        return None
    status = check_file(root / weight.relpath, weight, recorded, model.name)
    if status.status != "ok" or status.sha256 is None:
        return None
    size = (root / weight.relpath).stat().st_size
    return ManifestEntry(status.sha256, size, weight.source, model.licence, model.name)


def _notify_licences(models: list[ModelEntry], report: InstallProgress) -> None:
    """One notice per distinct licence notice, naming the models it covers."""
    by_notice: dict[str, list[str]] = {}
    for model in models:
        if model.notice:
            by_notice.setdefault(model.notice, []).append(model.name)
    for notice, names in by_notice.items():
        logger.info("%s: %s", ", ".join(names), notice)
        report(InstallEvent("notice", message=f"{', '.join(names)}: {notice}"))


def _check_disk(root: Path, weights: list[WeightFile]) -> None:
    needed = sum(w.size or w.approx_size or 0 for w in weights)
    free = shutil.disk_usage(root).free
    if needed and free < needed:
        raise WeightsError(f"{root} has {free / 1e9:.1f} GB free, the weights need about "
                           f"{needed / 1e9:.1f} GB; free some space or pass --models DIR")


def install_weights(models_dir: str | Path, *, weights_from: str | Path | None = None,
                    progress: InstallProgress | None = None,
                    models: Iterable[str] | None = None) -> Manifest:
    """Download or copy the weights of ``models`` (default: all) and write the manifest.

    A required model that cannot be fetched raises; an optional one (``--detect``'s Mask R-CNN)
    is skipped with a warning event.

    Args:
        models_dir: The models folder (created if needed).
        weights_from: Copy from this folder instead of downloading (offline farms).
        progress: Receives :class:`InstallEvent` objects (licence notices included).
        models: Registry names to install.

    Returns:
        The manifest written to ``<models_dir>/manifest.json``.

    Raises:
        WeightsError: A required file cannot be fetched or fails its size/sha256 check.
        DependencyError: A download needs huggingface_hub and it is not installed.
    """
    report = progress or _ignore
    root = Path(models_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    source = Path(weights_from).expanduser() if weights_from else None
    if source is not None and not source.is_dir():
        raise WeightsError(f"--weights-from {source} is not a folder")
    try:
        existing = read_manifest(root)
    except WeightsError as error:
        report(InstallEvent("warning", message=f"{error}; writing a new one"))
        existing = None
    entries = dict(existing.files) if existing else {}
    fetcher = _Fetcher(root, source, report)
    names = list(models) if models is not None else list(REGISTRY)
    _notify_licences([get_model(name) for name in names], report)
    entries_to_fetch = []
    for name in names:
        model = get_model(name)
        for weight in model.files:
            kept = _installed_entry(root, weight, model, existing)
            if kept is not None:
                entries[weight.relpath] = kept
                report(InstallEvent("skip", weight.relpath, kept.size, kept.size,
                                    f"{weight.relpath} already installed"))
            else:
                entries_to_fetch.append((model, weight))
    if source is None:
        _check_disk(root, [w for _, w in entries_to_fetch])
    failed: set[str] = set()
    for model, weight in entries_to_fetch:
        if model.name in failed:
            continue
        try:
            entries[weight.relpath] = fetcher.fetch(weight, model)
        except WeightsError as error:
            if model.required:
                write_manifest(root, entries)
                raise
            failed.add(model.name)
            entries = {k: v for k, v in entries.items() if v.model != model.name}
            report(InstallEvent("warning", weight.relpath,
                                message=f"{error} - skipping {model.name} ({model.description})"))
    return write_manifest(root, entries)
