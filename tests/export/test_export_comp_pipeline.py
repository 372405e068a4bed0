"""--exclusive --residual --foreground through the whole pipeline, and their bad-input exits."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio

from actormatte import pipeline
from actormatte.cli.main import main
from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig
from actormatte.export import read_matte_exr
from actormatte.export.comp import done_fields


def test_run_writes_comp_layers(tmp_path: Path, make_shot, models_dir) -> None:
    shot = make_shot(4)
    out = tmp_path / "out"
    options = pipeline.RunOptions(
        plate=shot.pattern, out=str(out), masks=MaskConfig(masks=(str(shot.ids),),
                                                           names=("bob", "ann")),
        models=str(models_dir), device="cpu", propagate=PropagateConfig(size=-1),
        matte=MatteConfig(size=64),
        export=ExportConfig(exclusive=True, residual=True, foreground=True, compression="piz"))
    result = pipeline.run(options)
    assert result.frames_written == 4 and result.layers == ["bob", "ann"]
    path = out / "plate_mattes.1002.exr"
    spec = oiio.ImageInput.open(str(path)).spec()
    assert sorted(spec.channelnames) == sorted(
        ["bob.A", "ann.A", "rest.A", "bob.R", "bob.G", "bob.B", "ann.R", "ann.G", "ann.B"])
    assert spec.get_string_attribute("compression") == "piz"
    alphas, metadata = read_matte_exr(path)
    total = sum(alphas[k].astype(np.float64) for k in ("bob", "ann", "rest"))
    assert total.max() <= 1.0 and total.min() >= 1.0 - 2 ** -10
    pixels = oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)  # (H, W, C)
    names = list(spec.channelnames)
    plate = cv2.imread(str(shot.folder / "plate.1002.png"))[:, :, ::-1] / 255.0  # own space
    bob = alphas["bob"]
    solid = bob == 1.0
    assert solid.any()
    red = pixels[:, :, names.index("bob.R")]
    np.testing.assert_allclose(red[solid], plate[:, :, 0][solid], atol=1e-3)  # half precision
    assert np.all(red[bob == 0] == 0)
    assert json.loads(metadata["layers"]) == ["bob", "ann", "rest"]
    again = pipeline.run(options)  # resume: the comp channel set validates
    assert (again.frames_written, again.frames_skipped) == (0, 4)
    assert done_fields(again.pattern, again.first) == {
        "residual_layer": "rest", "colour_layers": ["bob", "ann"], "exclusive": True,
        "compression": "piz"}


def test_residual_name_collision_exits_2(tmp_path: Path, make_shot, models_dir, capsys) -> None:
    shot = make_shot(2)
    code = main(["run", shot.pattern, "--out", str(tmp_path / "o"), "--masks", str(shot.ids),
                 "--names", "rest,ann", "--residual", "--models", str(models_dir),
                 "--device", "cpu", "--no-progress-bar"])
    assert code == 2
    assert "reserves" in json.loads(capsys.readouterr().out.splitlines()[-1])["message"]
    assert not list((tmp_path / "o").glob("*.exr"))


def test_done_event_of_plain_mattes_is_unchanged(tmp_path: Path) -> None:
    from actormatte.export.exr import MatteWriter

    writer = MatteWriter(tmp_path, "m", ["bob"], 8, 8)
    writer.write(1001, {"bob": np.zeros((8, 8), np.float32)})
    assert done_fields(writer.pattern, 1001) == {}
    assert done_fields(str(tmp_path / "none.####.exr"), 1001) == {}


def test_preview_sequence_leaves_the_residual_out(tmp_path: Path) -> None:
    from actormatte.export.comp import CompWriter
    from actormatte.preview import find_sequence

    writer = CompWriter(tmp_path, "m", ["bob"], 8, 8, residual=True)
    writer.write(1001, {"bob": np.zeros((8, 8), np.float32)})
    assert find_sequence(tmp_path).layers == ["bob"]
