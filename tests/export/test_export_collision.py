"""Output-vs-plate collision check."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import InputError
from actormatte.export import check_output_collision
from actormatte.io import open_plate


def write_frames(folder: Path, name: str, ext: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in (1001, 1002):
        path = str(folder / f"{name}.{frame}.{ext}")
        out = oiio.ImageOutput.create(path)
        out.open(path, oiio.ImageSpec(4, 4, 3, oiio.HALF if ext == "exr" else oiio.UINT8))
        out.write_image(np.zeros((4, 4, 3), np.float32))
        out.close()


def test_same_folder_same_stem_exr_collides(tmp_path: Path) -> None:
    write_frames(tmp_path / "plates", "shot", "exr")
    plate = open_plate(tmp_path / "plates" / "shot.%04d.exr")
    with pytest.raises(InputError, match=r"would overwrite the plate .*shot\.####\.exr.*--name"):
        check_output_collision(tmp_path / "plates", "shot", plate)
    os.symlink(tmp_path / "plates", tmp_path / "link")
    with pytest.raises(InputError):
        check_output_collision(tmp_path / "link", "shot", plate)
    check_output_collision(tmp_path / "plates", "shot_mattes", plate)
    check_output_collision(tmp_path / "out", "shot", plate)  # folder does not exist yet


def test_other_formats_and_movies_do_not_collide(tmp_path: Path) -> None:
    write_frames(tmp_path, "shot", "png")
    check_output_collision(tmp_path, "shot", open_plate(tmp_path / "shot.####.png"))
    movie = tmp_path / "shot.avi"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"MJPG"), 24.0, (16, 16))
    for _ in range(2):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()
    with open_plate(movie) as plate:
        check_output_collision(tmp_path, "shot", plate)
