"""``actormatte eval`` end to end on tiny EXR/PNG sequences: JSON shape, values, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.cli.main import main
from actormatte.export.exr import MatteWriter

H, W = 32, 40
FRAMES = (1001, 1002, 1003)


def _alphas(offset: float = 0.0) -> dict[int, dict[str, np.ndarray]]:
    out = {}
    for i, frame in enumerate(FRAMES):
        bob = np.zeros((H, W), dtype=np.float32)
        bob[4:20, 4 + i:20 + i] = 0.75
        ann = np.zeros((H, W), dtype=np.float32)
        ann[18:30, 24:36] = 0.5
        out[frame] = {"bob": np.clip(bob + offset, 0, 1), "ann": np.clip(ann + offset, 0, 1)}
    return out


def _write(folder: Path, name: str, frames: dict[int, dict[str, np.ndarray]],
           layers: tuple[str, ...] = ("bob", "ann"), size: tuple[int, int] = (W, H)) -> str:
    writer = MatteWriter(folder, name, layers, *size, half=False)
    for frame, alphas in frames.items():
        writer.write(frame, {k: v for k, v in alphas.items() if k in layers})
    return writer.pattern


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["eval", "--no-progress-bar", *argv])
    return code, capsys.readouterr().out


def test_identical_sequences_score_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = _write(tmp_path, "pred", _alphas())
    code, out = _run(capsys, "--pred", pattern, "--gt", pattern, "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"metrics", "per_layer", "frames"}
    assert set(report["metrics"]) == {"MAD", "MSE", "SAD", "Grad", "Conn", "dtSSD", "MESSDdt"}
    assert all(abs(v) < 1e-9 for v in report["metrics"].values())
    assert [row["frame"] for row in report["frames"]] == list(FRAMES)
    assert list(report["per_layer"]) == ["bob", "ann"]


def test_offset_prediction_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _write(tmp_path, "gt", _alphas())
    pred = _write(tmp_path, "pred", _alphas(offset=0.125))
    code, out = _run(capsys, "--pred", pred, "--gt", gt, "--json", "--layers", "ann")
    assert code == 0
    report = json.loads(out)
    assert list(report["per_layer"]) == ["ann"]
    # ann is 0.5 on 12x12 px and 0 elsewhere; +0.125 everywhere (no clipping): SAD per map.
    expected_sad = 0.125 * H * W * 1e-3
    assert report["frames"][0]["layers"]["ann"]["SAD"] == pytest.approx(expected_sad, rel=1e-6)
    assert report["metrics"]["SAD"] == pytest.approx(3 * expected_sad / (3 + 1e-6), rel=1e-6)
    assert report["metrics"]["dtSSD"] == pytest.approx(0.0, abs=1e-9)


def test_events_and_plot_without_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _write(tmp_path, "gt", _alphas())
    pred = _write(tmp_path, "pred", _alphas(offset=0.1))
    plot = tmp_path / "curves.png"
    code, out = _run(capsys, "--pred", pred, "--gt", gt, "--plot", str(plot))
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["command"] == "eval"
    assert events[-1]["metrics"]["MAD"] > 0
    assert any(e["event"] == "progress" for e in events)
    assert plot.stat().st_size > 1000


def test_png_ground_truth_per_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    alphas = {f: {k: np.round(v * 255) / np.float32(255) for k, v in a.items()}
              for f, a in _alphas().items()}  # 8-bit values, exact in the PNGs
    for frame, layers in alphas.items():
        for name, alpha in layers.items():
            out = oiio.ImageOutput.create("png")
            spec = oiio.ImageSpec(W, H, 1, oiio.UINT8)
            out.open(str(tmp_path / f"{name}.{frame}.png"), spec)
            out.write_image(np.round(alpha * 255).astype(np.uint8)[:, :, None])
            out.close()
    pred = _write(tmp_path, "pred", alphas)
    code, out = _run(capsys, "--pred", pred, "--gt-layer", f"bob={tmp_path}/bob.####.png",
                     "--gt-layer", f"ann={tmp_path}/ann.####.png", "--json")
    assert code == 0
    assert json.loads(out)["metrics"]["SAD"] == pytest.approx(0.0, abs=1e-6)


def test_different_layer_sets_match_by_iou_and_add_imq(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt = _write(tmp_path, "gt", _alphas())
    renamed = {f: {"robert": a["bob"]} for f, a in _alphas().items()}
    pred = _write(tmp_path, "pred", renamed, layers=("robert",))
    code, out = _run(capsys, "--pred", pred, "--gt", gt, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["pairs"] == [{"name": "bob", "pred": "robert", "gt": "bob"},
                               {"name": "ann", "pred": None, "gt": "ann"}]
    assert report["per_layer"]["bob"]["SAD"] == pytest.approx(0.0, abs=1e-9)
    assert report["per_layer"]["ann"]["SAD"] > 0  # scored against zeros
    imq = report["metrics"]["IMQ"]["0.5"]
    assert (imq["TP"], imq["FP"], imq["FN"]) == (3, 0, 3)
    assert imq["MAD"] == pytest.approx(3 / (3 + 1.5), abs=1e-5)


@pytest.mark.parametrize("case", ["missing_frame", "size", "layers", "no_gt", "changing_layers"])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    gt = _write(tmp_path, "gt", _alphas())
    if case == "missing_frame":
        frames = _alphas()
        del frames[1002]
        argv = ["--pred", _write(tmp_path, "pred", frames), "--gt", gt]
    elif case == "size":
        small = {f: {k: v[:, :-1] for k, v in a.items()} for f, a in _alphas().items()}
        argv = ["--pred", _write(tmp_path, "pred", small, size=(W - 1, H)), "--gt", gt]
    elif case == "layers":
        argv = ["--pred", gt, "--gt", gt, "--layers", "bob,carl"]
    elif case == "changing_layers":
        pred = _write(tmp_path, "pred", _alphas())
        _write(tmp_path, "pred", {1002: _alphas()[1002]}, layers=("bob",))  # ann missing
        argv = ["--pred", pred, "--gt", gt]
    else:
        argv = ["--pred", gt]
    code, out = _run(capsys, *argv)
    assert code == 2
    assert json.loads(out.splitlines()[-1])["event"] == "error"


def test_residual_layer_is_not_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from actormatte.export.comp import CompWriter

    gt = _write(tmp_path, "gt", _alphas())
    writer = CompWriter(tmp_path, "pred", ["bob", "ann"], W, H, residual=True, half=False)
    for frame, alphas in _alphas().items():
        writer.write(frame, alphas)
    code, out = _run(capsys, "--pred", writer.pattern, "--gt", gt, "--json")
    assert code == 0
    report = json.loads(out)
    assert list(report["per_layer"]) == ["bob", "ann"] and "IMQ" not in report["metrics"]
    assert report["metrics"]["SAD"] == pytest.approx(0.0, abs=1e-9)
