"""The transformed Winograd filters of an XMem network, kept on disk so a later process reuses them.

Called by :mod:`actormatte.propagate` (the shot driver): it loads the file at the start of a run
and saves it at the end when the run transformed filters the file did not hold. The file lives in
a per-machine cache folder (:func:`cache_dir`: ``$ACTORMATTE_CACHE``, else
``$XDG_CACHE_HOME/actormatte``, else ``~/.cache/actormatte``), one per weights, shared by every
shot and work folder; a cache that cannot be written only costs recomputing (a warning).
Transforming the filters (:func:`actormatte.propagation.winograd.winograd_filter`) is a fixed
per-process cost of the first XMem steps on CPU (about 0.5 s of CPU at any plate size on the
2-core dev machine; 2.4 s with the float64 transform before), which a correction that recomputes
20 steps would otherwise pay again every time. The file holds about 347 MB for the official
XMem architecture.

The file holds, per cached filter, ``<module name>@<start>:<stop>`` -> the transformed filter
``(16, C_part, C_out)`` and ``...#sum`` -> the float64 sum of the weight slice it came from. It
is named by the weights' sha256 and a digest of the format and torch version
(``xmem-filters-<weights>-<digest>.pt``); on load every entry's shape and weight sum must match
the network's, else nothing is installed and the filters are recomputed. The filters equal what
:func:`winograd_filter` computes, so results are bit-identical with and without the file.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from actormatte.propagation.winograd import filter_cache_of, install_filter

logger = logging.getLogger(__name__)

FILE_PREFIX = "xmem-filters-"
#: Version of the file's layout and of the transform that made it (part of its name: another
#: is never read). 2: the one-GEMM float32 transform.
FORMAT = 2


def cache_dir() -> Path:
    """The per-machine cache folder.

    ``$ACTORMATTE_CACHE``, else ``$XDG_CACHE_HOME/actormatte``, else ``~/.cache/actormatte``.
    """
    explicit = os.environ.get("ACTORMATTE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "actormatte"


def cache_path(folder: Path, weights_sha256: str) -> Path:
    """The filter file for weights ``weights_sha256`` in ``folder``."""
    key = f"{FORMAT}|{weights_sha256}|{torch.__version__}"
    weights = hashlib.sha256(weights_sha256.encode()).hexdigest()[:16]
    return folder / f"{FILE_PREFIX}{weights}-{hashlib.sha256(key.encode()).hexdigest()[:8]}.pt"


def _weight_sum(conv: nn.Conv2d, start: int | None, stop: int | None) -> torch.Tensor:
    return conv.weight.detach()[:, start:stop].sum(dtype=torch.float64)


def collect(network: nn.Module) -> dict[str, torch.Tensor]:
    """Every transformed filter cached on ``network``'s convolutions, with its weight sum."""
    entries: dict[str, torch.Tensor] = {}
    for name, module in network.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        for (start, stop), filter_u in filter_cache_of(module).items():
            key = f"{name}@{'' if start is None else start}:{'' if stop is None else stop}"
            entries[key] = filter_u
            entries[f"{key}#sum"] = _weight_sum(module, start, stop)
    return entries


def count(network: nn.Module) -> int:
    """How many valid transformed filters ``network``'s convolutions cache."""
    return sum(len(filter_cache_of(m)) for m in network.modules() if isinstance(m, nn.Conv2d))


def _bound(text: str) -> int | None:
    return None if text == "" else int(text)


def install(network: nn.Module, entries: dict[str, torch.Tensor]) -> int:
    """Put the filters of ``entries`` on ``network``'s convolutions; returns how many.

    All or nothing: an entry naming no convolution, or whose shape or weight sum does not match,
    installs none (the filters are then recomputed on first use).
    """
    modules = dict(network.named_modules())
    staged: list[tuple[nn.Conv2d, slice, torch.Tensor]] = []
    for key, filter_u in entries.items():
        if key.endswith("#sum"):
            continue
        name, _, bounds = key.rpartition("@")
        start_text, _, stop_text = bounds.partition(":")
        conv = modules.get(name)
        weight_sum = entries.get(f"{key}#sum")
        if not isinstance(conv, nn.Conv2d) or weight_sum is None:
            return 0
        start, stop = _bound(start_text), _bound(stop_text)
        part = conv.weight[:, start:stop]  # (C_out, C_part, 3, 3)
        if (filter_u.shape != (16, part.shape[1], part.shape[0])
                or filter_u.dtype != conv.weight.dtype
                or not torch.equal(weight_sum, _weight_sum(conv, start, stop))):
            return 0
        staged.append((conv, slice(start, stop), filter_u))
    for conv, channels, filter_u in staged:
        install_filter(conv, channels, filter_u)
    return len(staged)


def load(network: nn.Module, path: Path) -> int:
    """Install the filters saved in ``path`` (0 when absent, unreadable or not matching)."""
    if not path.is_file():
        return 0
    try:
        entries = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file only costs recomputing
        logger.warning("ignoring unreadable filter file %s (%s)", path, exc)
        return 0
    count = install(network, entries) if isinstance(entries, dict) else 0
    if not count:
        logger.warning("ignoring filter file %s: it does not match the XMem weights", path)
    return count


def save(network: nn.Module, path: Path) -> int:
    """Write ``network``'s cached filters to ``path`` atomically; returns how many.

    Files of the same weights in another format or for another torch version are removed.

    Raises:
        OSError: The folder cannot be written (callers log it and go on).
    """
    entries = collect(network)
    count = sum(not key.endswith("#sum") for key in entries)
    if not count:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(entries, handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    weights = path.name[len(FILE_PREFIX):].split("-")[0]
    for other in path.parent.glob(f"{FILE_PREFIX}{weights}-*.pt"):
        if other != path:
            other.unlink(missing_ok=True)
    return count
