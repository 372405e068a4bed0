"""Per-frame matte EXRs: atomic writer, resume validation and a reader for tests and hosts.

Called by the pipeline's write stage (:class:`MatteWriter`); the reader, pixel stacking and
chunk checks are in :mod:`actormatte.export.exr_files`.
The file layout follows CONVENTIONS.md: one single-part scanline EXR per plate frame, data and
display windows and pixel aspect = the plate's (:class:`~actormatte.io.geometry.PlateGeometry`:
the data window is the plate's working window, overscan included), timecode and frame rate
copied from each plate frame's header, ZIP compression, half (or float32) channels ``<layer>.A`` for
every actor on every frame (zeros where absent), optional root ``A`` = max over actors, string
attributes ``actormatte/<key>``. ``actormatte/layers`` always holds the JSON list of layers in
actor order (EXR stores channels sorted by name).

Atomicity: a frame is written to a hidden temporary file in the output folder,
``.<name>.<frame>.<host>.<pid>.<token>.tmp.exr`` (no host pattern ``<name>.####.exr`` matches it),
fsynced, then renamed into place with ``os.replace``; the folder is fsynced after the rename. A
kill leaves complete frames plus, at worst, a temporary file that :meth:`MatteWriter.
cleanup_stale_temps` removes on the next run.

Resume: :meth:`MatteWriter.is_complete` checks the header (channel set, size, windows, pixel
type, scanline) and decodes the last scanline chunk, which is what catches a truncated file (the
header of a cut file reads fine; its last chunk never decodes). Our own writes are atomic, so a
cut file can only come from outside (a partial copy); ``decode_all=True`` decodes every chunk.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import psutil

from actormatte import __version__
from actormatte.errors import ActorMatteError, InputError, ShapeError, no_space_error
from actormatte.export.exr_files import (
    LAYERS_KEY,
    METADATA_PREFIX,
    decodes_tail,
    fsync_dir,
    fsync_file,
    stack_half,
)
from actormatte.export.layers import LAYER_NAME_RE, channel_name
from actormatte.io.geometry import PlateGeometry, spec_windows

logger = logging.getLogger(__name__)

UNION_CHANNEL = "A"
_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"
_EMPTY: Mapping[str, str] = {}
#: ``attributes(frame) -> [(name, OIIO TypeDesc, value)]`` copied from the plate frame's header.
PlateAttributes = Callable[[int], list[tuple[str, Any, Any]]]


@dataclass(frozen=True)
class MatteFrame:
    """The mattes of one plate frame.

    Attributes:
        frame: Plate frame number.
        alphas: Layer -> (H, W) float32 matte in 0..1, in actor order.
    """

    frame: int
    alphas: dict[str, np.ndarray] = field(default_factory=dict)


class MatteWriter:
    """Writes ``<out_dir>/<name>.<frame>.exr`` files atomically and validates them for resume."""

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        name: str,
        layers: Sequence[str],
        width: int,
        height: int,
        *,
        padding: int = 4,
        half: bool = True,
        metadata: Mapping[str, str] = _EMPTY,
        union: bool = False,
        geometry: PlateGeometry | None = None,
        plate_attributes: PlateAttributes | None = None,
    ) -> None:
        """Describe the sequence; nothing touches the disk until a write or a check.

        Args:
            out_dir: Output folder (created by :meth:`check_writable` or the first write).
            name: File stem, ``<plate stem>_mattes`` by default in the CLI.
            layers: Layer names in actor order, already valid (see ``make_layer_names``).
            width: Plate width.
            height: Plate height.
            padding: Minimum digits of the frame number in file names.
            half: Half-float channels (default) or float32.
            metadata: Attributes for every frame, written as ``actormatte/<key>``.
            union: Also write a root ``A`` channel, the max over actors.
            geometry: The plate's windows and pixel aspect; its data window must be
                ``width x height`` (default: full frame at the origin, square pixels).
            plate_attributes: Per-frame header attributes to copy (timecode, frame rate).

        Raises:
            ValueError: An invalid layer, duplicate layer, size, padding, name or metadata key
                (callers validate user input before this; these are bugs).
        """
        bad = [layer for layer in layers if not LAYER_NAME_RE.match(layer)]
        if bad or len(set(layers)) != len(layers) or not layers:
            raise ValueError(f"layers must be unique valid layer names, got {list(layers)}")
        if width <= 0 or height <= 0 or padding < 1:
            raise ValueError(f"bad size {width}x{height} or padding {padding}")
        if not name or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"output name must be a plain file stem, got {name!r}")
        self.geometry = geometry or PlateGeometry.full_frame(width, height)
        if self.geometry.data.size != (width, height):
            raise ValueError(f"geometry {self.geometry} does not cover {width}x{height}")
        self._plate_attributes = plate_attributes
        self.out_dir = Path(out_dir)
        self.name = name
        self.layers = tuple(layers)
        self.width, self.height = width, height
        self.padding = padding
        self.half = half
        self.union = union
        self.channels = tuple(channel_name(layer) for layer in self.layers) + (
            (UNION_CHANNEL,) if union else ()
        )
        self.metadata = {"version": __version__, **_checked_metadata(metadata)}
        self.metadata[LAYERS_KEY] = json.dumps(list(self.layers))
        self._temp_re = re.compile(
            rf"^\.{re.escape(name)}\.-?\d+\.([A-Za-z0-9-]+)\.(\d+)\.[0-9a-f]+\.tmp\.exr$"
        )

    def __repr__(self) -> str:
        kind = "half" if self.half else "float"
        return f"MatteWriter({self.pattern!r}, layers={list(self.layers)}, {kind})"

    @property
    def pattern(self) -> str:
        """The output sequence spelled with hashes, ``<out>/<name>.####.exr``."""
        return str(self.out_dir / f"{self.name}.{'#' * self.padding}.exr")

    def path_for(self, frame: int) -> Path:
        """``<out_dir>/<name>.<frame padded>.exr``."""
        return self.out_dir / f"{self.name}.{frame:0{self.padding}d}.exr"

    def write_frame(self, matte: MatteFrame, extra_metadata: Mapping[str, str] = _EMPTY) -> Path:
        """Write a :class:`MatteFrame` (see :meth:`write`)."""
        return self.write(matte.frame, matte.alphas, extra_metadata)

    def write(
        self,
        frame: int,
        alphas: Mapping[str, np.ndarray],
        extra_metadata: Mapping[str, str] = _EMPTY,
    ) -> Path:
        """Write one frame atomically; a missing layer is written as zeros.

        Shape:
            alphas: layer -> (H, W) float in 0..1 (values are clipped to 0..1).

        Returns:
            The final path.

        Raises:
            ShapeError: A matte's shape differs from the plate size.
            ActorMatteError: An unknown layer or non-finite values (a bug upstream), or the
                file cannot be written, e.g. a full disk (the message names the file).
        """
        pixels = self._stack(frame, alphas)  # (H, W, C)
        spec = self._spec({**self.metadata, **_checked_metadata(extra_metadata)}, frame)
        final = self.path_for(frame)
        temp = self.out_dir / (
            f".{self.name}.{frame:0{self.padding}d}.{_HOST}.{os.getpid()}."
            f"{secrets.token_hex(4)}.tmp.exr"
        )
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            _write_exr(temp, spec, pixels)
            fsync_file(temp)
            os.replace(temp, final)
            fsync_dir(self.out_dir)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            space = no_space_error(self.out_dir, exc, pixels.nbytes)
            if space is not None and isinstance(exc, (OSError, ActorMatteError)):
                raise space from exc
            if isinstance(exc, OSError):
                raise ActorMatteError(
                    f"cannot write frame {frame} to {final}: {exc.strerror or exc}; check free "
                    f"space and permissions of {self.out_dir}"
                ) from exc
            raise
        return final

    def is_complete(self, frame: int, *, decode_all: bool = False) -> bool:
        """Whether ``frame``'s file exists and is a whole, decodable file of this layout.

        Checks the channel set, size and windows, pixel type and scanline layout in the header,
        then decodes the last scanline chunk, which fails for a file cut at any byte (tested
        cut by cut); ``decode_all`` decodes every chunk instead (also catches damage inside).
        """
        path = self.path_for(frame)
        if not path.is_file():
            return False
        inp = oiio.ImageInput.open(str(path))
        if inp is None:
            oiio.geterror()  # clear OIIO's per-thread error
            logger.info("frame %d: unreadable header, will rewrite %s", frame, path)
            return False
        try:
            spec = inp.spec()
            reason = self._layout_mismatch(spec)
            if reason is None and not decodes_tail(inp, spec, decode_all):
                reason = f"pixels do not decode ({inp.geterror()})"
        finally:
            inp.close()
        if reason is not None:
            logger.info("frame %d: %s, will rewrite %s", frame, reason, path)
        return reason is None

    def check_writable(self) -> None:
        """Create the output folder if needed and prove a file can be created in it.

        Raises:
            InputError: The folder cannot be created or written; names it and the fix.
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the output folder {self.out_dir}: {exc.strerror or exc}; "
                "pass an --out folder you can write to"
            ) from exc
        probe = self.out_dir / f".{self.name}.probe.{_HOST}.{os.getpid()}.tmp"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"actormatte")
            probe.unlink()
        except OSError as exc:
            raise InputError(
                f"cannot write in the output folder {self.out_dir}: {exc.strerror or exc}; "
                "fix its permissions or free space, or pass another --out"
            ) from exc

    def cleanup_stale_temps(self, *, min_age_s: float = 3600.0) -> int:
        """Remove temporary files this writer's name left behind in a killed run.

        A temp file is stale when its process (same host) no longer runs, or when it is older
        than ``min_age_s`` (other hosts writing the same folder on a farm are left alone until
        then). Returns the number of files removed.
        """
        if not self.out_dir.is_dir():
            return 0
        removed = 0
        now = time.time()
        for entry in os.scandir(self.out_dir):
            match = self._temp_re.match(entry.name)
            if match is None:
                continue
            host, pid = match.group(1), int(match.group(2))
            try:
                age = now - entry.stat().st_mtime
            except FileNotFoundError:
                continue
            dead = host == _HOST and pid != os.getpid() and not psutil.pid_exists(pid)
            if dead or age > min_age_s:
                Path(entry.path).unlink(missing_ok=True)
                logger.info("removed stale temporary file %s", entry.path)
                removed += 1
        return removed

    def _stack(self, frame: int, alphas: Mapping[str, np.ndarray]) -> np.ndarray:
        """Stack the mattes into the file's channel order, zeros for absent layers.

        Shape:
            Returns (H, W, C), C = number of layers (+1 with the union channel); float16 for
            half files, else float32.
        """
        unknown = sorted(set(alphas) - set(self.layers))
        if unknown:
            raise ActorMatteError(
                f"frame {frame}: mattes for unknown layers {unknown} (expected {self.layers}); "
                "this is a bug, please report it"
            )
        inside: set[str] = set()  # layers already within 0..1 (no clip needed)
        for layer, alpha in alphas.items():
            if alpha.shape != (self.height, self.width):
                raise ShapeError(
                    f"frame {frame}: matte '{layer}' is {alpha.shape}, expected "
                    f"{(self.height, self.width)}"
                )
            # min and max are NaN when a value is (two reductions, no full-size temporaries)
            low, high = (float(alpha.min()), float(alpha.max())) if alpha.size else (0.0, 0.0)
            if not (np.isfinite(low) and np.isfinite(high)):
                raise ActorMatteError(f"frame {frame}: matte '{layer}' has NaN or inf values")
            if low >= 0.0 and high <= 1.0:
                inside.add(layer)
        if self.half:
            return stack_half(self.layers, alphas, inside, (self.height, self.width),
                               self.union)
        pixels = np.zeros((self.height, self.width, len(self.channels)), dtype=np.float32)
        for index, layer in enumerate(self.layers):
            if layer in alphas:
                pixels[:, :, index] = np.clip(alphas[layer], 0.0, 1.0)
        if self.union:
            pixels[:, :, -1] = pixels[:, :, : len(self.layers)].max(axis=2)
        return pixels

    def _spec(self, metadata: Mapping[str, str], frame: int) -> oiio.ImageSpec:
        pixel_type = oiio.HALF if self.half else oiio.FLOAT
        spec = oiio.ImageSpec(self.width, self.height, len(self.channels), pixel_type)
        spec.channelnames = self.channels
        spec.alpha_channel = -1
        self.geometry.apply_to(spec)
        for name, kind, value in self._plate_attributes(frame) if self._plate_attributes else ():
            spec.attribute(name, kind, value)
        spec.attribute("compression", "zip")
        spec.attribute("openexr:lineOrder", "increasingY")
        for key, value in metadata.items():
            spec.attribute(METADATA_PREFIX + key, value)
        return spec

    def _layout_mismatch(self, spec: oiio.ImageSpec) -> str | None:
        """Why a file's header does not match this writer's layout, or ``None``."""
        windows = spec_windows(spec)
        if windows != (self.geometry.data, self.geometry.display):
            return (f"windows (data {windows[0]}, display {windows[1]}) differ from the plate's "
                    f"({self.geometry.data}, {self.geometry.display})")
        aspect = spec.get_float_attribute("PixelAspectRatio", 1.0)
        if abs(aspect - self.geometry.pixel_aspect) > 1e-6:
            return f"pixel aspect {aspect} differs from the plate's {self.geometry.pixel_aspect}"
        if set(spec.channelnames) != set(self.channels) or spec.nchannels != len(self.channels):
            return f"channels {list(spec.channelnames)} differ from {list(self.channels)}"
        expected = oiio.HALF if self.half else oiio.FLOAT
        formats = list(spec.channelformats) or [spec.format]
        if any(f.basetype != expected for f in formats):
            return f"pixel type {spec.format} is not {'half' if self.half else 'float'}"
        if spec.tile_width or spec.deep:
            return "not a flat scanline file"
        return None


def _checked_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    for key, value in metadata.items():
        if not _KEY_RE.match(key) or key == LAYERS_KEY:
            raise ValueError(f"bad metadata key {key!r} (letters, digits, _ . - ; not 'layers')")
        if not isinstance(value, str):
            raise TypeError(f"metadata {key!r} must be a string, got {type(value).__name__}")
    return dict(metadata)


def _write_exr(path: Path, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    out = oiio.ImageOutput.create("openexr")
    if out is None:
        raise ActorMatteError(f"OpenImageIO has no EXR writer: {oiio.geterror()}")
    if not out.open(str(path), spec):
        raise ActorMatteError(
            f"cannot write {path}: {out.geterror()}; check the folder's permissions and free space"
        )
    ok = out.write_image(pixels)
    error = out.geterror() if not ok else ""
    closed = out.close()
    if not ok or not closed:
        raise ActorMatteError(
            f"writing {path} failed: {error or out.geterror()}; check free space on the disk"
        )
