"""Matte EXR writer: layout, metadata, atomicity, resume validation, folder checks."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import ActorMatteError, InputError, ShapeError
from actormatte.export import MatteFrame, MatteWriter, read_matte_exr
from actormatte.export.exr import _HOST

H, W = 24, 32
LAYERS = ["zed", "ann"]


def alpha(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((H, W), dtype=np.float32)


def header(path: Path) -> oiio.ImageSpec:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None
    spec = inp.spec()
    assert inp.read_image(oiio.FLOAT) is not None
    inp.close()
    return spec


@pytest.fixture()
def writer(tmp_path: Path) -> MatteWriter:
    return MatteWriter(tmp_path / "out", "shot_mattes", LAYERS, W, H,
                       metadata={"plate": "/p/shot.####.exr", "instances": '{"zed": 1}'})


def test_layout_half_zip_windows_and_channels(writer: MatteWriter) -> None:
    path = writer.write(1001, {"zed": alpha(1), "ann": alpha(2)})
    assert path == writer.out_dir / "shot_mattes.1001.exr"
    spec = header(path)
    assert sorted(spec.channelnames) == ["ann.A", "zed.A"]
    assert spec.format == oiio.HALF and not list(spec.channelformats)
    assert spec.get_string_attribute("compression") == "zip"
    assert (spec.x, spec.y, spec.width, spec.height) == (0, 0, W, H)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, W, H)
    assert spec.tile_width == 0 and not spec.deep
    assert spec.get_int_attribute("oiio:subimages", 1) == 1
    mattes, _ = read_matte_exr(path)
    assert list(mattes) == LAYERS  # actor order, not the file's sorted order
    np.testing.assert_allclose(mattes["zed"], alpha(1), atol=5e-4)
    np.testing.assert_allclose(mattes["ann"], alpha(2), atol=5e-4)


def test_float32_is_exact(tmp_path: Path) -> None:
    writer = MatteWriter(tmp_path, "m", ["bob"], W, H, half=False, padding=6)
    path = writer.write(7, {"bob": alpha(3)})
    assert path.name == "m.000007.exr"
    assert header(path).format == oiio.FLOAT
    np.testing.assert_array_equal(read_matte_exr(path)[0]["bob"], alpha(3))


def test_missing_actor_is_zeros_and_values_are_clipped(writer: MatteWriter) -> None:
    matte = np.full((H, W), 1.5, dtype=np.float32)
    matte[0, 0] = -0.25
    path = writer.write_frame(MatteFrame(1002, {"ann": matte}))
    mattes, _ = read_matte_exr(path)
    np.testing.assert_array_equal(mattes["zed"], 0.0)
    assert mattes["ann"][0, 0] == 0.0 and mattes["ann"][5, 5] == 1.0


def test_bad_mattes_are_refused_and_nothing_is_written(writer: MatteWriter) -> None:
    with pytest.raises(ActorMatteError, match="unknown layers"):
        writer.write(1, {"bob": alpha(1)})
    with pytest.raises(ShapeError, match="'ann'"):
        writer.write(1, {"ann": np.zeros((H, W + 1), np.float32)})
    for value in (np.nan, np.inf, -np.inf):
        bad = alpha(1)
        bad[3, 3] = value
        with pytest.raises(ActorMatteError, match="NaN or inf"):
            writer.write(1, {"ann": bad})
    assert not writer.out_dir.exists() or not os.listdir(writer.out_dir)


def test_metadata_round_trip(writer: MatteWriter) -> None:
    path = writer.write(1001, {"zed": alpha(1)}, {"plate_frame": "1001", "plate": "/other"})
    _, meta = read_matte_exr(path)
    assert meta["plate"] == "/other"  # per-frame values override the writer's
    assert meta["plate_frame"] == "1001"
    assert meta["instances"] == '{"zed": 1}'
    assert json.loads(meta["layers"]) == LAYERS
    assert meta["version"]
    names = [str(a.name) for a in header(path).extra_attribs]
    assert "actormatte/plate_frame" in names
    with pytest.raises(ValueError):
        writer.write(1, {}, {"bad key": "x"})
    with pytest.raises(TypeError):
        writer.write(1, {}, {"frame": 3})  # type: ignore[dict-item]


def test_union_channel(tmp_path: Path) -> None:
    writer = MatteWriter(tmp_path, "u", LAYERS, W, H, union=True)
    path = writer.write(1, {"zed": alpha(1), "ann": alpha(2)})
    spec = header(path)
    assert "A" in spec.channelnames
    inp = oiio.ImageInput.open(str(path))
    pixels = inp.read_image(oiio.FLOAT)
    inp.close()
    union = pixels[:, :, list(spec.channelnames).index("A")]
    np.testing.assert_allclose(union, np.maximum(alpha(1), alpha(2)), atol=5e-4)
    assert list(read_matte_exr(path)[0]) == LAYERS
    assert writer.is_complete(1)


def test_no_temp_left_and_overwrite(writer: MatteWriter) -> None:
    for frame in (1001, 1002):
        writer.write(frame, {"zed": alpha(frame)})
    writer.write(1001, {"zed": alpha(5)})
    assert sorted(os.listdir(writer.out_dir)) == ["shot_mattes.1001.exr", "shot_mattes.1002.exr"]
    np.testing.assert_allclose(read_matte_exr(writer.path_for(1001))[0]["zed"], alpha(5),
                               atol=5e-4)


def test_crash_before_rename_leaves_no_final_file(
    writer: MatteWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def crash(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(os.fspath(src))
        assert Path(src).stat().st_size > 0  # the temp was complete and flushed
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ActorMatteError, match=r"cannot write frame 1001 to .*: killed"):
        writer.write(1001, {"zed": alpha(1)})
    assert os.listdir(writer.out_dir) == []
    assert re.fullmatch(rf"\.shot_mattes\.1001\.{_HOST}\.{os.getpid()}\.[0-9a-f]+\.tmp\.exr",
                        Path(seen[0]).name)
    assert not writer.is_complete(1001)


def test_is_complete_catches_truncation_and_layout_changes(tmp_path: Path) -> None:
    writer = MatteWriter(tmp_path, "m", LAYERS, 64, 64)
    noise = {"zed": np.random.default_rng(0).random((64, 64), dtype=np.float32)}
    assert not writer.is_complete(1)
    path = writer.write(1, noise)
    assert writer.is_complete(1)
    assert writer.is_complete(1, decode_all=True)
    data = path.read_bytes()
    for cut in (1, 2, 200, len(data) // 2, len(data) - 100, 100):
        path.write_bytes(data[: len(data) - cut])
        assert not writer.is_complete(1), cut
        assert not writer.is_complete(1, decode_all=True), cut
    path.write_bytes(b"garbage")
    assert not writer.is_complete(1)

    MatteWriter(tmp_path, "m", ["zed"], 64, 64).write(2, noise)  # missing channel
    MatteWriter(tmp_path, "m", [*LAYERS, "carl"], 64, 64).write(3, noise)  # extra channel
    MatteWriter(tmp_path, "m", LAYERS, 64, 32).write(4, {})  # wrong size
    MatteWriter(tmp_path, "m", LAYERS, 64, 64, half=False).write(5, noise)  # float, not half
    assert [writer.is_complete(f) for f in (2, 3, 4, 5)] == [False] * 4
    writer.write(6, {})
    assert writer.is_complete(6)
    assert not MatteWriter(tmp_path, "m", LAYERS, 64, 64, half=False).is_complete(6)


def test_write_into_an_impossible_folder_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    writer = MatteWriter(tmp_path / "file" / "out", "m", ["bob"], W, H)
    with pytest.raises(ActorMatteError, match=r"cannot write frame 3 to .*m\.0003\.exr"):
        writer.write(3, {})


def test_check_writable(tmp_path: Path) -> None:
    nested = MatteWriter(tmp_path / "a" / "b", "m", ["bob"], W, H)
    nested.check_writable()
    assert (tmp_path / "a" / "b").is_dir() and os.listdir(tmp_path / "a" / "b") == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    under_file = MatteWriter(blocker / "out", "m", ["bob"], W, H)
    with pytest.raises(InputError, match=rf"cannot create the output folder {blocker / 'out'}"):
        under_file.check_writable()
    with pytest.raises(InputError, match="cannot create"):
        MatteWriter(blocker, "m", ["bob"], W, H).check_writable()


def test_cleanup_stale_temps(writer: MatteWriter, tmp_path: Path) -> None:
    out = writer.out_dir
    out.mkdir(parents=True)
    dead_pid = 99_999_999  # beyond any pid_max
    names = {
        "dead_here": f".shot_mattes.1001.{_HOST}.{dead_pid}.0a1b2c3d.tmp.exr",
        "alive_here": f".shot_mattes.1002.{_HOST}.{os.getpid()}.0a1b2c3d.tmp.exr",
        "fresh_other_host": ".shot_mattes.1003.farm-07.123.0a1b2c3d.tmp.exr",
        "old_other_host": ".shot_mattes.1004.farm-07.123.0a1b2c3d.tmp.exr",
        "other_writer": f".plate.1001.{_HOST}.{dead_pid}.0a1b2c3d.tmp.exr",
        "final": "shot_mattes.1005.exr",
    }
    for name in names.values():
        (out / name).write_bytes(b"x")
    old = (out / names["old_other_host"]).stat().st_mtime - 7200
    os.utime(out / names["old_other_host"], (old, old))
    assert writer.cleanup_stale_temps() == 2
    left = set(os.listdir(out))
    assert left == {names[k] for k in ("alive_here", "fresh_other_host", "other_writer", "final")}
    assert writer.cleanup_stale_temps(min_age_s=-1) == 2  # everything of this writer but own pid
    assert MatteWriter(tmp_path / "nope", "m", ["a"], W, H).cleanup_stale_temps() == 0


def test_constructor_checks_and_pattern(tmp_path: Path) -> None:
    writer = MatteWriter(tmp_path, "shot_mattes", ["bob"], W, H, padding=5)
    assert writer.pattern == str(tmp_path / "shot_mattes.#####.exr")
    for layers in (["bob", "bob"], ["1bob"], [], ["rgba.x"]):
        with pytest.raises(ValueError):
            MatteWriter(tmp_path, "m", layers, W, H)
    with pytest.raises(ValueError):
        MatteWriter(tmp_path, "a/b", ["bob"], W, H)
    with pytest.raises(ValueError):
        MatteWriter(tmp_path, "m", ["bob"], W, H, metadata={"layers": "[]"})


def test_read_matte_exr_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read matte file"):
        read_matte_exr(tmp_path / "missing.exr")
    writer = MatteWriter(tmp_path, "m", ["bob"], 64, 64)
    path = writer.write(1, {"bob": np.random.default_rng(1).random((64, 64), np.float32)})
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(InputError, match="does not decode"):
        read_matte_exr(path)


def test_half_pixels_round_as_openexr_does(tmp_path: Path) -> None:
    # The writer hands OIIO half pixels it converted itself; they must be the halves OpenEXR
    # makes from the float32 mattes: every half in 0..1, the midpoints between neighbours
    # (ties to even) and the floats just either side of them.
    halves = np.arange(0, 0x3C01, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((halves[:-1].astype(np.float64) + halves[1:]) / 2).astype(np.float32)
    values = np.concatenate([halves, mids, np.nextafter(mids, np.float32(0)),
                             np.nextafter(mids, np.float32(2))])
    width = 256
    height = -(-values.size // width)
    matte = np.zeros(height * width, np.float32)
    matte[:values.size] = values
    matte = matte.reshape(height, width)
    writer = MatteWriter(tmp_path, "h", ["bob", "carl"], width, height, union=True)
    path = writer.write(1, {"bob": matte, "carl": matte[::-1].copy()})
    spec = oiio.ImageSpec(width, height, 3, oiio.HALF)
    reference = tmp_path / "reference.exr"
    out = oiio.ImageOutput.create(str(reference))
    out.open(str(reference), spec)
    union = np.maximum(matte, matte[::-1])
    out.write_image(np.stack([union, matte, matte[::-1]], axis=-1))  # float32: OIIO converts
    out.close()
    ours = oiio.ImageBuf(str(path)).get_pixels(oiio.HALF).view(np.uint16)  # A, bob, carl
    theirs = oiio.ImageBuf(str(reference)).get_pixels(oiio.HALF).view(np.uint16)
    assert list(header(path).channelnames) == ["A", "bob.A", "carl.A"]
    assert np.array_equal(ours, theirs)
