"""CompWriter: rest.A, exclusive coverage, <layer>.R/G/B and compression in real EXR files."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.errors import InputError
from actormatte.export import MatteWriter, read_matte_exr
from actormatte.export.comp import CompWriter, check_comp_options, make_writer

H, W = 24, 32


def _alphas() -> dict[str, np.ndarray]:
    bob = np.zeros((H, W), np.float32)
    bob[:, :20] = 0.8
    ann = np.zeros((H, W), np.float32)
    ann[:, 12:] = 0.6
    return {"bob": bob, "ann": ann}


def _plate(frame: int) -> np.ndarray:
    rgb = np.empty((H, W, 3), np.float32)
    rgb[...] = (2.5, 0.5, 0.25)  # scene-linear, above 1 in red
    return rgb


def _channels(path: Path) -> tuple[list[str], oiio.ImageSpec, np.ndarray]:
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    pixels = inp.read_image(oiio.FLOAT).reshape(H, W, -1)
    inp.close()
    return list(spec.channelnames), spec, pixels


def test_residual_exclusive_and_colour_layers(tmp_path: Path) -> None:
    writer = CompWriter(tmp_path, "shot_mattes", ["bob", "ann"], W, H, exclusive=True,
                        residual=True, plate_rgb=_plate, compression="piz")
    path = writer.write(1001, _alphas())
    names, spec, pixels = _channels(path)
    assert set(names) == {"bob.A", "ann.A", "rest.A", "bob.R", "bob.G", "bob.B", "ann.R",
                          "ann.G", "ann.B"}
    assert spec.get_string_attribute("compression") == "piz"
    alphas, metadata = read_matte_exr(path)
    assert list(alphas) == ["bob", "ann", "rest"]
    assert metadata["exclusive"] == "true" and metadata["residual"] == "rest"
    total = alphas["bob"].astype(np.float64) + alphas["ann"] + alphas["rest"]
    assert total.max() <= 1.0 and total.min() >= 1.0 - 2 ** -10
    assert alphas["bob"][0, 0] == np.float16(0.8).astype(np.float32)  # no overlap: untouched
    assert alphas["bob"][0, 15] < 0.8 and alphas["ann"][0, 15] < 0.6  # 1.4 scaled to 1
    red = pixels[:, :, names.index("bob.R")]
    assert red[0, 0] == pytest.approx(2.5 * alphas["bob"][0, 0], rel=1e-3)  # premultiplied
    assert red[0, 25] == 0.0  # bob absent: no colour
    assert writer.layers == ("bob", "ann") and writer.is_complete(1001)
    plain = MatteWriter(tmp_path, "shot_mattes", ["bob", "ann"], W, H)
    assert not plain.is_complete(1001)  # other channel set: a plain run rewrites it


def test_lossy_compression_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        writer = CompWriter(tmp_path, "m", ["bob"], W, H, compression="dwaa")
    assert "lossy" in caplog.text
    path = writer.write(1, {"bob": _alphas()["bob"]})
    assert _channels(path)[1].get_string_attribute("compression").startswith("dwaa")


def test_make_writer_plain_unless_asked(tmp_path: Path) -> None:
    plain = make_writer(SimpleNamespace(), None, tmp_path, "m", ["bob"], W, H)
    assert type(plain) is MatteWriter
    comp = make_writer(SimpleNamespace(residual=True), None, tmp_path, "m", ["bob"], W, H)
    assert isinstance(comp, CompWriter) and comp.file_layers == ("bob", "rest")


@pytest.mark.parametrize("export, layers", [
    (SimpleNamespace(compression="b44"), ["bob"]),
    (SimpleNamespace(residual=True), ["bob", "rest"]),
    (SimpleNamespace(foreground=True), ["bob"]),
])
def test_bad_comp_options_are_input_errors(export: SimpleNamespace, layers: list[str]) -> None:
    with pytest.raises(InputError):
        check_comp_options(export, layers, plate_is_sequence=False)


def test_farm_chunks_get_the_comp_flags() -> None:
    from actormatte.cli import farm_cmd
    from actormatte.cli.main import build_parser
    from actormatte.cli.options import comp_flags

    args = build_parser().parse_args(["farm", "p.####.exr", "--work", "w", "--out", "o",
                                      "--masks", "m.png", "--job-dir", "j", "--exclusive",
                                      "--residual", "--compression", "piz"])
    assert comp_flags(args) == ["--exclusive", "--residual", "--compression", "piz"]
    words = farm_cmd._matte_options(args, "shot_mattes")
    assert " ".join(words).count("--exclusive --residual --compression piz") == 1
    assert comp_flags(SimpleNamespace()) == []


def test_run_and_matte_flags_reach_the_export_config() -> None:
    from actormatte.cli.main import build_parser
    from actormatte.cli.options import export_from_args

    parser = build_parser()
    for argv in (["run", "p.####.exr", "--out", "o", "--masks", "m.png"],
                 ["matte", "--work", "w", "--out", "o"]):
        args = parser.parse_args([*argv, "--exclusive", "--residual", "--foreground",
                                  "--compression", "dwab"])
        export = export_from_args(args)
        assert (export.exclusive, export.residual, export.foreground, export.compression) == (
            True, True, True, "dwab")
        plain = export_from_args(parser.parse_args(argv))
        assert (plain.exclusive, plain.residual, plain.foreground, plain.compression) == (
            False, False, False, "zip")


def test_colour_beyond_half_range_is_clipped(tmp_path: Path) -> None:
    writer = CompWriter(tmp_path, "m", ["bob"], W, H, plate_rgb=lambda f: _plate(f) * 1e6)
    path = writer.write(1, {"bob": np.ones((H, W), np.float32)})
    names, _, pixels = _channels(path)
    assert np.isfinite(pixels).all() and pixels[..., names.index("bob.R")].max() == 65504.0
