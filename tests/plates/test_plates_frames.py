"""Frame numbers: negative and zero frames in names, --frames syntax, movies refused below 0."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from actormatte.cli.options import add_frames, frames_from_args
from actormatte.errors import InputError
from actormatte.io import open_plate, parse_plate_pattern
from actormatte.io.sequence import parse_frame_range


def _png(path: Path) -> None:
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.uint8))


def test_negative_and_zero_frames_are_discovered_and_named_like_nuke(tmp_path: Path) -> None:
    for name in ("s.-003.tif", "s.-002.png", "s.-0001.png", "s.0000.png", "s.0001.png",
                 "s.-000.png", "s.-00004.png"):
        _png(tmp_path / name)
    plate = open_plate(tmp_path / "s.####.png")
    assert plate.frames == [-2, -1, 0, 1]
    assert Path(plate.path_for(-2)).name == "s.-002.png"
    assert Path(plate.path_for(-1)).name == "s.-0001.png"  # the magnitude-padded spelling
    assert plate.read(-1).shape == (8, 8, 3)


def test_concrete_negative_frame_names_its_sequence(tmp_path: Path) -> None:
    _png(tmp_path / "s.-002.png")
    _png(tmp_path / "s-0001.png")
    pattern = parse_plate_pattern(tmp_path / "s.-002.png")
    assert (pattern.prefix, pattern.padding) == ("s.", 4)
    dash = parse_plate_pattern(tmp_path / "s-0001.png")
    assert (dash.prefix, dash.padding) == ("s-", 4)  # a dash without '.'/'_' is not a sign


@pytest.mark.parametrize("text,expected", [
    ("1001-1048", (1001, 1048)), ("-3--1", (-3, -1)), ("-3:4", (-3, 4)), ("0", (0, 0)),
    ("-5", (-5, -5)), (" 7 : 9 ", (7, 9))])
def test_frame_range_syntax(text: str, expected: tuple[int, int]) -> None:
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["3-1", "a-b", "1--", "1:2:3", ""])
def test_bad_frame_range(text: str) -> None:
    with pytest.raises(InputError):
        parse_frame_range(text)


def test_cli_frames_with_a_leading_minus() -> None:
    parser = argparse.ArgumentParser()
    add_frames(parser)
    assert frames_from_args(parser.parse_args(["--frames=-3:4"])) == (-3, 4)
    assert frames_from_args(parser.parse_args(["--frames", "1001-1003"])) == (1001, 1003)


def test_movie_negative_start_frame_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (16, 16))
    for _ in range(3):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    writer.release()
    with pytest.raises(InputError, match="-001 with 0000"):
        open_plate(path, start_frame=-5)
    assert open_plate(path, start_frame=0).frames == [0, 1, 2]
