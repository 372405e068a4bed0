"""``blender_addon/exr_header.py`` in the core venv (no bpy): EXR windows as OpenImageIO wrote
them, and the crop that puts a matte on Blender's view of the plate."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from actormatte.export import MatteWriter
from actormatte.io.geometry import PlateGeometry, Window
from plates.plate_files import write_exr

ADDON = Path(__file__).resolve().parents[2] / "blender_addon"
_package = types.ModuleType("actormatte_blender_addon")
_package.__path__ = [str(ADDON)]
sys.modules.setdefault("actormatte_blender_addon", _package)
exr_header = importlib.import_module("actormatte_blender_addon.exr_header")


def test_header_of_a_matte_the_core_writes(tmp_path: Path) -> None:
    geometry = PlateGeometry(Window(-8, -4, 80, 56), Window(0, 0, 64, 48), 2.0)
    writer = MatteWriter(tmp_path, "m", ["bob", "alice"], 80, 56, geometry=geometry)
    path = writer.write(1, {"bob": np.zeros((56, 80), np.float32)})
    header = exr_header.read_header(str(path))
    assert header.data == exr_header.Window(-8, -4, 80, 56)
    assert header.display == exr_header.Window(0, 0, 64, 48)
    assert header.pixel_aspect == 2.0
    assert header.channels == ("alice.A", "bob.A")


def test_not_an_exr_gives_none(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    (tmp_path / "cut.exr").write_bytes((20000630).to_bytes(4, "little") + b"\2\0\0\0chan")
    assert exr_header.read_header(str(tmp_path / "a.png")) is None
    assert exr_header.read_header(str(tmp_path / "cut.exr")) is None
    assert exr_header.read_header(str(tmp_path / "missing.exr")) is None


def test_crop_is_the_plate_data_window_from_the_bottom_left(tmp_path: Path) -> None:
    write_exr(tmp_path / "p.exr", np.zeros((20, 30, 3), np.float32), origin=(10, 6),
              display=(0, 0, 64, 48))
    plate = exr_header.read_header(str(tmp_path / "p.exr"))
    assert plate.data == exr_header.Window(10, 6, 30, 20)
    matte = exr_header.Window(0, 0, 64, 48)
    assert exr_header.crop_in_matte(plate.data, matte) == (10, 48 - 26, 30, 20)
    assert exr_header.crop_in_matte(matte, matte) is None
    partial = exr_header.Window(-8, 10, 50, 30)
    assert exr_header.crop_in_matte(partial, exr_header.Window(-8, 0, 72, 48)) == (0, 8, 50, 30)
    with pytest.raises(ValueError, match="is not inside the mattes' 64x48"):
        exr_header.crop_in_matte(exr_header.Window(-8, -4, 80, 56), matte)
