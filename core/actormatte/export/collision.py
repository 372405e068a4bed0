"""Refuse an output sequence that would overwrite or join the plate's own files.

Called by the CLI/pipeline before anything is written (exit code 2, nothing on disk). The danger
is ``--out`` pointing at the plate folder with ``--name`` equal to the plate's stem: an EXR plate
``shot.####.exr`` and mattes ``shot.####.exr`` are the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from actormatte.errors import InputError
from actormatte.io.image_sequence import ImageSequencePlate
from actormatte.io.plate import Plate


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output_collision(out_dir: str | os.PathLike[str], name: str, plate: Plate) -> None:
    """Raise when ``<out_dir>/<name>.####.exr`` is (or overlaps) the plate's file sequence.

    Frame-number padding is ignored (``shot.1001.exr`` is frame 1001 of ``shot.%d.exr`` and of
    ``shot.####.exr``), and so is the extension's case. A movie plate never collides: mattes are
    never written over a movie file, whose name does not end in ``.exr``.

    Raises:
        InputError: The output names collide with the plate's; the message gives the fix.
    """
    if not isinstance(plate, ImageSequencePlate):
        return
    out, pattern = Path(out_dir), plate.pattern
    if not _same_folder(out, pattern.directory):
        return
    if pattern.prefix == f"{name}." and pattern.suffix.lower() == ".exr":
        raise InputError(
            f"the output {out / (name + '.####.exr')} would overwrite the plate "
            f"{pattern.hashes()}; pass another --name (e.g. --name {name}_mattes) or --out"
        )
