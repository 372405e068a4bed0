"""A picture of the result: colour overlays of a matted shot, an H.264 movie, a contact sheet, QC.

Called by ``actormatte preview`` and ``actormatte run`` (:mod:`actormatte.cli.preview_cmd`).
It reads a finished matte sequence back (``<out>/<name>.<frame>.exr``; the plate, its colour
space and the actors come from the EXR metadata, the propagated ID maps from the work folder)
and writes into ``<out>/preview/<name>/``:

- ``<name>_preview.<frame>.png``: the plate (8-bit sRGB, as the networks saw it) with the
  background dimmed and each actor's alpha as a distinct colour;
- ``<name>_preview.mp4``: the same frames as H.264 (yuv420p; width and height padded by one
  pixel to even numbers when odd), through the ffmpeg binary of ``imageio-ffmpeg``;
- ``<name>_contact.png``: evenly spaced frames in a grid, each labelled with its frame
  number, under a legend of the actor names in their colours;
- ``qc.json``: :mod:`actormatte.qc` figures and flags (also written without the pictures).

Every file is written under a temporary name in the same folder and renamed into place, like
the mattes, so a crash leaves complete files only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from actormatte.errors import DependencyError, InputError
from actormatte.export import read_matte_exr
from actormatte.qc import QC_VERSION, QCConfig, QCReport, measure
from actormatte.qc_records import RECORDS_DIR, QCRecords, assemble

#: Overlay colours (RGB), one per actor in actor order, cycling after ten.
PALETTE = ((255, 70, 70), (60, 150, 255), (70, 220, 90), (255, 200, 40), (200, 90, 255),
           (0, 215, 215), (255, 120, 200), (170, 120, 60), (255, 150, 50), (150, 150, 255))
DIM = 0.35
STRENGTH = 0.6
_FRAME_FILE = re.compile(r"^(?P<stem>[^.].*)\.(?P<frame>-?\d+)\.exr$")


@dataclass(frozen=True)
class MatteSequence:
    """A matte sequence on disk and what its metadata says.

    Attributes:
        folder: The output folder.
        name: File stem (``<folder>/<name>.<frame>.exr``).
        padding: Digits of the frame numbers.
        frames: Frames present, sorted.
        layers: Actor layers in actor order.
        names: Actor display names.
        ids: Actor ids (the values of the propagated ID maps).
        plate: The plate pattern or movie, or None when the metadata lacks it.
        colorspace: The plate's OCIO colour space, or None.
    """

    folder: Path
    name: str
    padding: int
    frames: list[int]
    layers: list[str]
    names: list[str]
    ids: list[int]
    plate: str | None
    colorspace: str | None

    def path(self, frame: int) -> Path:
        """The EXR of ``frame``."""
        return self.folder / f"{self.name}.{frame:0{self.padding}d}.exr"


def find_sequence(out_dir: Path, name: str | None = None) -> MatteSequence:
    """The matte sequence in ``out_dir`` (``name``, else the only one there).

    Raises:
        InputError: No sequence, several without ``name``, or an unreadable first frame.
    """
    if not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: no such folder; give the folder of the mattes")
    groups: dict[str, list[tuple[int, int]]] = {}
    for entry in os.listdir(out_dir):
        match = _FRAME_FILE.match(entry)
        if match:
            digits = match.group("frame").lstrip("-")
            groups.setdefault(match.group("stem"), []).append((int(match.group("frame")),
                                                               len(digits)))
    if name is None:
        if len(groups) != 1:
            found = ", ".join(sorted(groups)) or "none"
            raise InputError(f"--out {out_dir}: {len(groups)} matte sequences ({found}); "
                             "pick one with --name NAME")
        name = next(iter(groups))
    if name not in groups:
        raise InputError(f"--out {out_dir}: no {name}.<frame>.exr files; check --name")
    frames = sorted(frame for frame, _ in groups[name])
    padding = min(width for _, width in groups[name])
    first = out_dir / f"{name}.{frames[0]:0{padding}d}.exr"
    layers, metadata = read_matte_exr(first)
    layers.pop(metadata.get("residual") or "", None)  # --residual's rest.A is no actor (#14)
    instances = json.loads(metadata.get("instances", "{}"))
    names = [str(instances.get(layer, {}).get("name", layer)) for layer in layers]
    ids = [int(instances.get(layer, {}).get("id", i + 1)) for i, layer in enumerate(layers)]
    return MatteSequence(out_dir, name, padding, frames, list(layers), names, ids,
                         metadata.get("plate"), metadata.get("input_colorspace"))


def colour_of(index: int) -> tuple[int, int, int]:
    """The overlay colour (RGB) of actor ``index`` (0-based, actor order)."""
    return PALETTE[index % len(PALETTE)]


def overlay(rgb: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """The plate dimmed outside the actors, each actor tinted with its colour.

    Shape:
        rgb: (H, W, 3) uint8 RGB; alphas: (N, H, W) float in [0, 1]; returns (H, W, 3) uint8.
    """
    image = rgb.astype(np.float32) / 255.0
    if alphas.shape[0]:
        union = alphas.max(axis=0)[:, :, None]  # (H, W) -> (H, W, 1)
    else:
        union = np.zeros(image.shape[:2] + (1,), np.float32)
    image = image * (DIM + (1.0 - DIM) * union)
    for index, alpha in enumerate(alphas):
        weight = STRENGTH * alpha[:, :, None]  # (H, W) -> (H, W, 1)
        colour = np.asarray(colour_of(index), np.float32) / 255.0
        image = image * (1.0 - weight) + weight * colour
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int],
           scale: float = 0.45) -> None:
    for thickness, ink in ((3, (0, 0, 0)), (1, colour)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thickness,
                    cv2.LINE_AA)


def contact_frames(frames: list[int], count: int) -> list[int]:
    """``count`` evenly spaced frames of ``frames`` (first and last included)."""
    if len(frames) <= count:
        return list(frames)
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]


def contact_sheet(tiles: list[tuple[int, np.ndarray]], names: list[str],
                  columns: int = 4, width: int = 320) -> np.ndarray:
    """Overlay tiles in a grid, frame numbers on each, the actor legend above.

    Shape:
        tiles: (H, W, 3) uint8 RGB each; returns (rows * h + legend, columns * w, 3) uint8 RGB.
    """
    height, full_width = tiles[0][1].shape[:2]
    tile_w = min(width, full_width)
    tile_h = max(1, round(height * tile_w / full_width))
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    legend = 28
    sheet = np.full((legend + rows * tile_h, columns * tile_w, 3), 32, np.uint8)
    x = 6
    for index, name in enumerate(names):
        _label(sheet, name, (x, 19), colour_of(index), 0.55)
        x += 12 * len(name) + 18
    for position, (frame, tile) in enumerate(tiles):
        row, column = divmod(position, columns)
        small = cv2.resize(tile, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        _label(small, str(frame), (4, 14), (255, 255, 255))
        top, left = legend + row * tile_h, column * tile_w
        sheet[top:top + tile_h, left:left + tile_w] = small
    return sheet


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically."""
    ok, data = cv2.imencode(".png", rgb[:, :, ::-1],  # RGB -> BGR for OpenCV
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])  # fast; previews are big
    if not ok:
        raise InputError(f"cannot encode {path} as PNG")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data.tobytes())
    os.replace(temp, path)


class Movie:
    """An H.264 MP4 written frame by frame through imageio-ffmpeg, renamed into place on close."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        try:
            import imageio_ffmpeg
        except ImportError as error:
            raise DependencyError("the preview movie needs imageio-ffmpeg (its wheel ships an "
                                  "ffmpeg with H.264): pip install imageio-ffmpeg, or re-run "
                                  "install.py") from error
        self.path = path
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)  # H.264 4:2:0: even sides
        self._temp = path.with_name(f".{path.stem}.{os.getpid()}.partial.mp4")
        self._writer = imageio_ffmpeg.write_frames(
            str(self._temp), self.size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            macro_block_size=1, quality=7, ffmpeg_log_level="error")
        self._writer.send(None)

    def add(self, rgb: np.ndarray) -> None:
        """Append one RGB uint8 frame (padded by edge pixels to the even size)."""
        pad_h, pad_w = self.size[1] - rgb.shape[0], self.size[0] - rgb.shape[1]
        if pad_h or pad_w:
            rgb = np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        self._writer.send(np.ascontiguousarray(rgb))

    def close(self) -> Path:
        """Finish the file and rename it into place."""
        self._writer.close()
        os.replace(self._temp, self.path)
        return self.path


@dataclass(frozen=True)
class PreviewOptions:
    """What :func:`make_preview` writes.

    Attributes:
        pictures: Write the PNGs, the movie and the contact sheet (else only ``qc.json``).
        fps: Movie frame rate.
        contact: Frames on the contact sheet.
        qc: Flag thresholds.
    """

    pictures: bool = True
    fps: float = 24.0
    contact: int = 8
    qc: QCConfig = field(default_factory=QCConfig)


@dataclass(frozen=True)
class PreviewResult:
    """What :func:`make_preview` wrote: folder, files, the QC report, frames read for QC.

    Attributes:
        folder: The preview folder.
        files: What was written (``qc``, and ``movie``/``frames``/``contact_sheet``).
        qc: The QC report.
        measured: Frames whose mattes were read for QC (the others came from their records).
    """

    folder: Path
    files: dict[str, str]
    qc: QCReport
    measured: int = 0


FrameReader = Callable[[int], np.ndarray]


def _alphas(sequence: MatteSequence, frame: int) -> np.ndarray:
    mattes, _ = read_matte_exr(sequence.path(frame))
    planes = [mattes[layer] for layer in sequence.layers]
    return np.clip(np.stack(planes), 0.0, 1.0)  # N x (H, W) -> (N, H, W)


def _id_map_path(work: Path | None, frame: int) -> Path | None:
    return None if work is None else work / "masks" / f"{frame:04d}.png"


def _propagated(work: Path | None, frame: int, ids: list[int],
                shape: tuple[int, ...]) -> np.ndarray | None:
    path = _id_map_path(work, frame)
    if path is None or not path.is_file():
        return None
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None or labels.shape != shape[1:]:
        return None
    return np.stack([labels == actor for actor in ids])  # N x (H, W) -> (N, H, W)


def _qc_inputs(sequence: MatteSequence, frame: int,
               work: Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The mattes of ``frame`` and the propagated masks of the same actors (or None)."""
    alphas = _alphas(sequence, frame)
    return alphas, _propagated(work, frame, sequence.ids, alphas.shape)


def qc_records(sequence: MatteSequence, dest: Path) -> QCRecords:
    """The per-frame QC records of ``sequence`` kept in its preview folder ``dest``."""
    return QCRecords(dest / RECORDS_DIR, sequence.names)


def shot_qc(sequence: MatteSequence, frames: list[int], dest: Path, work: Path | None,
            config: QCConfig, progress: Callable[[int, int, int], None] | None = None
            ) -> tuple[QCReport, int]:
    """QC of ``frames`` from the per-frame records, reading only frames whose record is stale.

    Returns:
        The report and how many frames were read.
    """
    def paths(frame: int) -> tuple[Path, Path | None]:
        return sequence.path(frame), _id_map_path(work, frame)

    return assemble(frames, qc_records(sequence, dest), paths,
                    lambda frame: _qc_inputs(sequence, frame, work), config, progress)


def make_preview(sequence: MatteSequence, frames: list[int], dest: Path,
                 read_plate: FrameReader | None, work: Path | None, options: PreviewOptions,
                 progress: Callable[[int, int, int], None] | None = None) -> PreviewResult:
    """Write the preview files (or only ``qc.json``) of ``frames`` into ``dest``.

    Without pictures the QC comes from the per-frame records (:mod:`actormatte.qc_records`),
    so only frames that changed since they were measured are read; with pictures every frame is
    read and its record refreshed.

    Args:
        sequence: The mattes.
        frames: Frames to show, sorted.
        dest: Output folder (created).
        read_plate: ``frame -> (H, W, 3) uint8 RGB``; required when ``options.pictures``.
        work: The work folder (propagated ID maps for the QC confidence), or None.
        options: What to write.
        progress: ``progress(done, total, frame)`` after each frame.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if not options.pictures or read_plate is None:
        report, measured = shot_qc(sequence, frames, dest, work, options.qc, progress)
        return PreviewResult(dest, {"qc": str(report.write(dest / "qc.json"))}, report,
                             measured)
    report = QCReport(list(sequence.names), options.qc)
    records = qc_records(sequence, dest)
    picks = set(contact_frames(frames, options.contact))
    tiles: list[tuple[int, np.ndarray]] = []
    movie: Movie | None = None
    files: dict[str, str] = {}
    previous: np.ndarray | None = None
    for done, frame in enumerate(frames, 1):
        alphas, propagated = _qc_inputs(sequence, frame, work)
        key = records.key(frame, lambda f: (sequence.path(f), _id_map_path(work, f)),
                          frames[done - 2] if done > 1 else None)
        figures = measure(alphas, propagated, previous)
        records.put(frame, key, figures)
        report.add_figures(frame, figures)
        previous = alphas
        rgb = read_plate(frame)
        size = (rgb.shape[1], rgb.shape[0])  # (W, H)
        shown = np.stack([p if p.shape[::-1] == size else cv2.resize(p, size) for p in alphas])
        picture = overlay(rgb, shown)
        write_png(dest / f"{sequence.name}_preview.{frame:0{sequence.padding}d}.png", picture)
        if movie is None:
            movie = Movie(dest / f"{sequence.name}_preview.mp4",
                          (picture.shape[1], picture.shape[0]), options.fps)
        movie.add(picture)
        if frame in picks:
            tiles.append((frame, picture))
        if progress is not None:
            progress(done, len(frames), frame)
    if movie is not None:
        files["movie"] = str(movie.close())
        files["frames"] = str(dest / f"{sequence.name}_preview.{'#' * sequence.padding}.png")
        contact = dest / f"{sequence.name}_contact.png"
        write_png(contact, contact_sheet(tiles, list(sequence.names)))
        files["contact_sheet"] = str(contact)
    files["qc"] = str(report.write(dest / "qc.json"))
    return PreviewResult(dest, files, report, len(frames))


def cached_qc_fields(qc_path: Path, frames: list[int], inputs: list[Path],
                     limit: int = 100) -> dict[str, Any] | None:
    """The ``done`` fields from an earlier ``qc.json`` still valid for ``frames``, else None.

    Valid: same QC version, the same frames, and written after every existing input (the
    mattes and the propagated ID maps), so a re-run that changed nothing reads no EXR again.
    """
    if not qc_path.is_file():
        return None
    stamp = qc_path.stat().st_mtime_ns
    if any(path.is_file() and path.stat().st_mtime_ns > stamp for path in inputs):
        return None
    try:
        data = json.loads(qc_path.read_text(encoding="utf-8"))
        if data.get("version") != QC_VERSION or sorted(map(int, data["frames"])) != frames:
            return None
        flags = list(data["flags"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"preview": None, "qc": str(qc_path), "qc_flags": flags[:limit],
            "qc_flags_total": len(flags), "flagged_frames": list(data.get("flagged_frames", [])),
            "qc_frames_measured": 0}


def done_fields(result: PreviewResult, limit: int = 100) -> dict[str, Any]:
    """The ``done`` event's preview and QC fields (docs/CLI.md): files, flags, flagged frames."""
    flags = result.qc.flags
    return {"preview": {k: v for k, v in result.files.items() if k != "qc"} or None,
            "qc": result.files["qc"], "qc_flags": [f.to_json() for f in flags[:limit]],
            "qc_flags_total": len(flags), "flagged_frames": result.qc.flagged_frames(),
            "qc_frames_measured": result.measured}
