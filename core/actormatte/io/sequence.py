"""Image-sequence file patterns: parsing, frame paths and frame discovery.

Called by :mod:`actormatte.io.plate` to open a plate sequence and by the CLI/pipeline to print
patterns. Three spellings of a frame token are accepted in the file name (never in the folder):

- ``shot.####.exr`` (Nuke/Houdini hashes, one digit each; ``####`` is 4-digit padding),
- ``shot.@@@@.exr`` (``@`` one digit each, as in RV/Shake),
- ``shot.%04d.exr`` (printf; ``%d`` means no padding).

Only the last token in the file name is the frame number. A concrete file name whose stem ends
in digits (``shot.1001.exr``, ``shot_1001.exr``, ``shot1001.exr``) is also accepted when that file
exists: it names the whole sequence it belongs to, with the padding of its digits, like the file
browsers of Nuke and RV do. A name without any frame token is an :class:`InputError`.

Padding is a minimum width: with 4-digit padding frame 12345 is ``shot.12345.exr``. Discovery
accepts a longer number only when it has no leading zero, so ``shot.01001.exr`` is not frame 1001
of a 4-padded sequence.

Negative and zero frames: names follow printf/Nuke, whose padding counts the minus sign, so with
``####`` frame -3 is ``shot.-003.exr``, frame 0 ``shot.0000.exr`` and frame -1234
``shot.-1234.exr``. Discovery also accepts the magnitude padded to the full width
(``shot.-0003.exr``, as some tools write) and reads such a file under its own name; ``-0`` is
never a frame. In a concrete file name a minus sign is a sign only after ``.`` or ``_``
(``shot.-003.exr``), so ``shot-0001.exr`` stays frame 1 of ``shot-####.exr``.

Frame ranges (``--frames``, :func:`parse_frame_range`): ``A``, ``A-B`` or ``A:B`` with optionally
negative numbers: ``1001-1048``, ``-3--1``, ``-3:4``, ``-5``. On the command line a value that
starts with a minus must be attached with ``=``: ``--frames=-3:4``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from actormatte.errors import InputError

_HASH_TOKEN = re.compile(r"(#+|@+)")
_PRINTF_TOKEN = re.compile(r"%(0?)(\d*)d")
_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")
_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:[-:]\s*(-?\d+))?\s*$")


@dataclass(frozen=True)
class SequencePattern:
    """A numbered file sequence ``<directory>/<prefix><frame><suffix>``.

    Attributes:
        directory: Folder that holds the frames.
        prefix: File-name text before the frame number (``"shot."``).
        suffix: File-name text after the frame number, extension included (``".exr"``).
        padding: Minimum number of digits of the frame number (1 = no padding).
    """

    directory: Path
    prefix: str
    suffix: str
    padding: int

    def path_for(self, frame: int) -> Path:
        """The file of one frame.

        The printf/Nuke spelling (``-003``); for a negative frame the full-width magnitude
        spelling (``-0003``) when only that file exists.
        """
        path = self.directory / f"{self.prefix}{frame:0{self.padding}d}{self.suffix}"
        if frame < 0 and not path.exists():
            wide = self.directory / f"{self.prefix}-{-frame:0{self.padding}d}{self.suffix}"
            if wide.exists():
                return wide
        return path

    @property
    def extension(self) -> str:
        """Lower-case file extension with its dot (``".exr"``)."""
        dot = self.suffix.rfind(".")
        return self.suffix[dot:].lower() if dot >= 0 else ""

    def hashes(self) -> str:
        """The pattern spelled with hashes (``/p/shot.####.exr``), as Nuke and the CLI print it."""
        return str(self.directory / f"{self.prefix}{'#' * self.padding}{self.suffix}")

    def printf(self) -> str:
        """The pattern spelled printf-style (``/p/shot.%04d.exr``), as Blender and ffmpeg use it."""
        token = "%d" if self.padding == 1 else f"%0{self.padding}d"
        return str(self.directory / f"{self.prefix}{token}{self.suffix}")

    def frame_of(self, file_name: str) -> int | None:
        """The frame number of a file name in this sequence, or ``None`` when it is not one."""
        if not (file_name.startswith(self.prefix) and file_name.endswith(self.suffix)):
            return None
        end = len(file_name) - len(self.suffix)
        text = file_name[len(self.prefix) : end]
        digits = text[1:] if text.startswith("-") else text
        if not digits.isdigit() or not digits.isascii() or len(text) < self.padding:
            return None
        if text.startswith("-"):
            if int(digits) == 0 or (len(text) > self.padding + 1 and digits[0] == "0"):
                return None
            return -int(digits)
        if len(digits) > self.padding and digits[0] == "0" and len(digits) > 1:
            return None
        return int(digits)

    def discover(self) -> list[int]:
        """Sorted frame numbers of the files of this sequence that exist on disk.

        Raises:
            InputError: The folder does not exist or cannot be listed.
        """
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError as exc:
            raise InputError(
                f"plate folder {self.directory} does not exist; check the path of {self.hashes()}"
            ) from exc
        except OSError as exc:
            raise InputError(f"cannot list plate folder {self.directory}: {exc}") from exc
        frames = {f for f in (self.frame_of(n) for n in names) if f is not None}
        return sorted(frames)

    def __str__(self) -> str:
        return self.hashes()


def parse_plate_pattern(path: str | os.PathLike[str]) -> SequencePattern:
    """Parse a sequence pattern or a concrete frame file into a :class:`SequencePattern`.

    Args:
        path: ``shot.####.exr``, ``shot.@@@@.exr``, ``shot.%04d.exr`` or an existing frame file
            such as ``shot.1001.exr`` (see the module docstring).

    Returns:
        The pattern; nothing is read from disk except to check a concrete file exists.

    Raises:
        InputError: No frame token in the file name, or a concrete name that does not exist.
    """
    full = Path(os.path.expanduser(os.fspath(path)))
    directory, name = full.parent, full.name
    hash_matches = list(_HASH_TOKEN.finditer(name))
    printf_matches = list(_PRINTF_TOKEN.finditer(name))
    last_hash = hash_matches[-1] if hash_matches else None
    last_printf = printf_matches[-1] if printf_matches else None
    if last_hash and (not last_printf or last_hash.start() > last_printf.start()):
        start, end, padding = last_hash.start(), last_hash.end(), len(last_hash.group(1))
        return SequencePattern(directory, name[:start], name[end:], padding)
    if last_printf:
        width = last_printf.group(2)
        if last_printf.group(1) == "" and width not in ("", "1"):
            raise InputError(
                f"{name}: '%{width}d' pads with spaces, not zeros; write '%0{width}d'"
            )
        padding = int(width) if width else 1
        start, end = last_printf.start(), last_printf.end()
        return SequencePattern(directory, name[:start], name[end:], max(padding, 1))
    return _pattern_from_concrete_file(full)


def _pattern_from_concrete_file(full: Path) -> SequencePattern:
    stem, ext = os.path.splitext(full.name)
    match = _TRAILING_DIGITS.match(stem)
    if match is None or not match.group(2).isascii():
        raise InputError(
            f"{full} has no frame number; give a sequence pattern such as "
            f"{full.parent / (stem + '.####' + ext)} or a movie file"
        )
    if not full.is_file():
        raise InputError(
            f"{full} does not exist; give an existing frame or a pattern such as "
            f"{full.parent / (match.group(1) + '#' * len(match.group(2)) + ext)}"
        )
    prefix, digits = match.group(1), match.group(2)
    if prefix.endswith(("._-", ".-", "_-")) or prefix == "-":
        return SequencePattern(full.parent, prefix[:-1], ext, len(digits) + 1)
    return SequencePattern(full.parent, prefix, ext, len(digits))


def parse_frame_range(text: str, flag: str = "--frames") -> tuple[int, int]:
    """Parse ``A``, ``A-B`` or ``A:B`` with optionally negative frames (module docstring).

    Raises:
        InputError: Not that form, or A > B.
    """
    match = _RANGE.match(text)
    if match is None:
        raise InputError(f"{flag} {text!r}: expected A-B or A:B (e.g. 1001-1048, -3--1, -3:4) "
                         f"or one frame (e.g. 1001); attach a value that starts with '-' with "
                         f"'=': {flag}=-3:4")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    if first > last:
        raise InputError(f"{flag} {text}: the first frame is after the last; write A-B "
                         "with A <= B")
    return first, last
