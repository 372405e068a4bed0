"""Knob values of the ActorMatte gizmo -> arguments of ``actormatte run`` (docs/CLI.md).

Pure functions on plain values: no ``nuke`` import, so they are tested without Nuke. ``node.py``
reads the knobs into a :class:`Settings` and calls :func:`build_run_args`.

Nuke colour-space names -> the core's ``--input-colorspace`` (an OCIO name the core resolves in
``$OCIO``, else OCIO's built-in CG config): see :data:`COLORSPACES`. A name not in the table is
passed through unchanged, which is right under an OCIO config (Nuke then shows the config's own
names, and the core reads the same ``$OCIO``); the core rejects an unknown name with exit code 2
and a list of close names, which the node shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Nuke's built-in "nuke-default" names and the ACES 1.x config's display names, mapped to OCIO
# built-in CG/studio config aliases. rec709 (the BT.709 camera curve) has no exact twin in the CG
# config; gamma 2.2 Rec.709 is the nearest encoding (the networks see 8-bit sRGB-like images).
COLORSPACES = {
    "linear": "lin_rec709",
    "sRGB": "srgb_tx",
    "rec709": "g22_rec709",
    "Gamma1.8": "g18_rec709",
    "Gamma2.2": "g22_rec709",
    "Gamma2.4": "g24_rec709",
    "AlexaV3LogC": "arri_logc3_ei800",
    "SLog3": "slog3_sgamut3",
    "Log3G10": "log3g10_redwidegamutrgb",
    "Cineon": "Cineon",  # Nuke's DPX default; the core's built-in Kodak curve (same formula)
    "raw": "Raw",
    "Output - sRGB": "srgb_display",
    "Output - Rec.709": "rec1886_rec709_display",
}
MOVIE_EXTENSIONS = (".mov", ".mp4", ".avi", ".mkv", ".m4v", ".webm")
_PRINTF = re.compile(r"%(0?)(\d*)d")
_DEFAULT_CS = re.compile(r"^default\s*\((.*)\)$")


class SettingsError(ValueError):
    """The node's knobs do not describe a job; the message says which knob to fix."""


@dataclass
class Settings:
    """Everything ``actormatte run`` needs from the node, as plain values."""

    plate: str
    out_dir: str
    first: int
    last: int
    id_map: str = ""
    id_map_frame: int = 0
    more_id_maps: str = ""
    actor_names: str = ""
    actor_masks: str = ""
    detect: bool = False
    detect_threshold: float = 0.7
    detect_max: int = 10
    size: int = 576
    xmem_size: int = 480
    device: str = "auto"
    float32: bool = False
    overwrite: bool = False
    make_preview: bool = False
    models: str = ""
    input_colorspace: str = ""
    start_frame: int | None = None      # movies: the Read's first frame number
    mask_layers: list[str] = field(default_factory=list)   # pre-rendered masks input, PATH@FRAME
    mask_id_maps: list[str] = field(default_factory=list)  # masks input as ID maps, PATH@FRAME
    extra: list[str] = field(default_factory=list)


def nuke_to_cli_path(path: str) -> str:
    """Nuke's frame notation -> hashes: ``%04d`` -> ``####``, ``%d`` -> ``#``; ``####`` is kept.

    Raises:
        SettingsError: The path has TCL (``[...]``) or a view token (``%V``/``%v``) that only
            Nuke can expand.
    """
    if "[" in path or "%V" in path or "%v" in path:
        raise SettingsError(f"the path {path!r} has a TCL expression or a view token")
    return _PRINTF.sub(lambda m: "#" * max(1, int(m.group(2) or 1)), path)


def is_movie(path: str) -> bool:
    """Whether the path is a movie file the core reads with OpenCV."""
    return path.lower().endswith(MOVIE_EXTENSIONS)


def cli_colorspace(nuke_name: str) -> str:
    """The ``--input-colorspace`` for a Nuke colour-space knob value ("" = the core's default).

    ``default (sRGB)`` (Nuke 12+) is unwrapped; a bare ``default`` means Nuke's per-file-type
    default (linear for float files, sRGB for 8/16-bit), which is also the core's default.
    """
    name = nuke_name.strip()
    match = _DEFAULT_CS.match(name)
    if match:
        name = match.group(1).strip()
    if name in ("", "default"):
        return ""
    return COLORSPACES.get(name, name)


def _split_lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(";", "\n").splitlines() if line.strip()]


def mask_args(s: Settings) -> list[str]:
    """The MASKS part of the command line.

    Raises:
        SettingsError: No keyframe masks and no detection, or a malformed line.
    """
    args: list[str] = []
    if s.id_map:
        args += ["--masks", s.id_map + (f"@{s.id_map_frame}" if s.id_map_frame else "")]
    for line in _split_lines(s.more_id_maps):
        if "@" not in line:
            raise SettingsError(f"'more ID maps': {line!r} needs a keyframe: PATH@FRAME")
        args += ["--masks", line]
    if s.actor_names.strip():
        names = [n.strip() for n in s.actor_names.split(",") if n.strip()]
        args += ["--names", ",".join(names)]
    for line in _split_lines(s.actor_masks):
        name, sep, path = line.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise SettingsError(f"'actor masks': {line!r} is not NAME=PATH or NAME=PATH@FRAME")
        args += ["--actor-mask", f"{name.strip()}={path.strip()}"]
    for item in s.mask_layers:
        args += ["--mask-layers", item]
    for item in s.mask_id_maps:
        args += ["--masks", item]
    if s.detect:
        args += ["--detect", "--detect-threshold", f"{s.detect_threshold:g}",
                 "--detect-max", str(s.detect_max)]
    if not any(a in args for a in ("--masks", "--actor-mask", "--mask-layers", "--detect")):
        raise SettingsError("no keyframe masks: connect the masks input, set an ID map, actor "
                            "masks, or 'detect people'")
    return args


def parse_keyframes(text: str, first: int, last: int) -> list[int]:
    """The 'mask keyframes' knob: frames separated by blanks or commas; empty = ``[first]``.

    Raises:
        SettingsError: A word is not a frame number, or a frame is outside ``first..last``.
    """
    frames: list[int] = []
    for word in text.replace(",", " ").split():
        try:
            frame = int(word)
        except ValueError:
            raise SettingsError(f"'mask keyframes': {word!r} is not a frame number; list "
                                "frames like 1001 1020 1045") from None
        if not first <= frame <= last:
            raise SettingsError(f"'mask keyframes': frame {frame} is outside the range "
                                f"{first}-{last}")
        if frame not in frames:
            frames.append(frame)
    return sorted(frames) or [first]


def build_run_args(s: Settings) -> list[str]:
    """``run PLATE --out DIR MASKS [OPTIONS]`` (without the program itself)."""
    if s.first > s.last:
        raise SettingsError(f"frame range {s.first}-{s.last} is empty; check first/last")
    if s.size < 32:
        raise SettingsError(f"matting size {s.size} is too small; use 32 or more")
    args = ["run", s.plate, "--out", s.out_dir, *mask_args(s),
            "--frames", f"{s.first}-{s.last}", "--size", str(s.size),
            "--xmem-size", str(s.xmem_size), "--device", s.device, "--no-progress-bar"]
    if s.start_frame is not None:
        args += ["--start-frame", str(s.start_frame)]
    if s.input_colorspace:
        args += ["--input-colorspace", s.input_colorspace]
    if s.models:
        args += ["--models", s.models]
    if s.float32:
        args.append("--float32")
    if s.overwrite:
        args.append("--overwrite")
    if s.make_preview:
        args.append("--preview")
    return args + list(s.extra)


def reuse_summary(done: dict) -> str:
    """Computed vs reused counts of a ``done`` event (docs/CLI.md), e.g. for the status line.

    ``frames_written``/``frames_skipped`` count mattes; ``frames_propagated``/``frames_resumed``
    (propagation) are shown when the event has them.
    """
    text = (f"{int(done.get('frames_written', 0))} frame(s) computed, "
            f"{int(done.get('frames_skipped', 0))} reused from the cache")
    if "frames_propagated" in done:
        text += (f"; propagation {int(done['frames_propagated'])} computed, "
                 f"{int(done.get('frames_resumed', 0))} reused")
    return text


def progress_percent(stage: str, done: int, total: int) -> int:
    """Overall progress 0..100 of a ``run``: read 0-5, propagate 5-50, matte/write 50-100.

    The CLI interleaves ``matte`` and ``write`` events frame by frame, so both map to one span.
    """
    spans = {"read": (0, 5), "propagate": (5, 50), "matte": (50, 100), "write": (50, 100)}
    low, high = spans.get(stage, (0, 100))
    fraction = min(1.0, max(0.0, done / total)) if total > 0 else 0.0
    return int(low + (high - low) * fraction)
