"""Sequence patterns: the three spellings, padding, concrete frame files, discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from actormatte.errors import InputError
from actormatte.io import SequencePattern, parse_plate_pattern


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x")


@pytest.mark.parametrize("spelling", ["shot.####.exr", "shot.%04d.exr", "shot.@@@@.exr"])
def test_three_spellings_parse_to_the_same_pattern(tmp_path: Path, spelling: str) -> None:
    pattern = parse_plate_pattern(str(tmp_path / spelling))
    assert pattern == SequencePattern(tmp_path, "shot.", ".exr", 4)
    assert pattern.path_for(1001) == tmp_path / "shot.1001.exr"
    assert pattern.path_for(7) == tmp_path / "shot.0007.exr"
    assert pattern.path_for(12345) == tmp_path / "shot.12345.exr"
    assert pattern.hashes() == str(tmp_path / "shot.####.exr")
    assert pattern.printf() == str(tmp_path / "shot.%04d.exr")
    assert pattern.extension == ".exr"


def test_padding_variants(tmp_path: Path) -> None:
    assert parse_plate_pattern(str(tmp_path / "a.%d.png")).padding == 1
    assert parse_plate_pattern(str(tmp_path / "a_%06d.tif")).padding == 6
    assert parse_plate_pattern(str(tmp_path / "a.#.dpx")).padding == 1
    assert parse_plate_pattern(str(tmp_path / "a.%d.png")).path_for(3).name == "a.3.png"
    with pytest.raises(InputError, match="%04d"):
        parse_plate_pattern(str(tmp_path / "a.%4d.png"))


def test_only_the_last_token_of_the_file_name_is_the_frame(tmp_path: Path) -> None:
    folder = tmp_path / "v###"
    pattern = parse_plate_pattern(str(folder / "shot_v##.####.exr"))
    assert pattern.directory == folder
    assert pattern.prefix == "shot_v##."
    assert pattern.path_for(5).name == "shot_v##.0005.exr"


def test_discovery_keeps_plate_numbers_and_ignores_lookalikes(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "shot.1001.exr", "shot.1002.exr", "shot.1005.exr", "shot.10000.exr",
        "shot.01004.exr",  # longer than the padding with a leading zero: not this sequence
        "shot.103.exr",  # shorter than the padding
        "shot.1003.exr.tmp", "other.1003.exr", "shot.abcd.exr", "shot.1006.png",
    )
    pattern = parse_plate_pattern(str(tmp_path / "shot.####.exr"))
    assert pattern.discover() == [1001, 1002, 1005, 10000]


def test_unpadded_discovery(tmp_path: Path) -> None:
    touch(tmp_path, "a.1.png", "a.2.png", "a.10.png", "a.011.png")
    assert parse_plate_pattern(str(tmp_path / "a.%d.png")).discover() == [1, 2, 10]


def test_concrete_frame_file_names_its_sequence(tmp_path: Path) -> None:
    touch(tmp_path, "shot_1001.exr", "shot_1002.exr", "shot_1003.exr")
    pattern = parse_plate_pattern(str(tmp_path / "shot_1002.exr"))
    assert pattern == SequencePattern(tmp_path, "shot_", ".exr", 4)
    assert pattern.discover() == [1001, 1002, 1003]


def test_concrete_name_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist.*shot\.####\.exr"):
        parse_plate_pattern(str(tmp_path / "shot.1001.exr"))
    touch(tmp_path, "still.png")
    with pytest.raises(InputError, match="no frame number"):
        parse_plate_pattern(str(tmp_path / "still.png"))


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    pattern = parse_plate_pattern(str(tmp_path / "nope" / "shot.####.exr"))
    with pytest.raises(InputError, match="does not exist"):
        pattern.discover()


def test_frame_of(tmp_path: Path) -> None:
    pattern = SequencePattern(tmp_path, "s.", ".exr", 4)
    assert pattern.frame_of("s.0042.exr") == 42
    assert pattern.frame_of("s.42.exr") is None
    assert pattern.frame_of("s.0042.exr.tmp") is None
    assert pattern.frame_of("s.\u0661\u0662\u0663\u0664.exr") is None  # non-ASCII digits
