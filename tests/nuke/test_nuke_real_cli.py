"""The Nuke plugin driving the REAL ``actormatte`` CLI of the core venv, in the stand-in ``nuke``.

Tiny synthetic plate (96x64, 2 actors), generated weights (``models_dir``), ``--size 64``.
Covers the GUI path (worker thread, ProgressTask, executeInMainThread), ``nuke -t`` with a
pre-rendered input, farm-safe reloading, cancel (ProgressTask and the Cancel button) and errors.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fake_nuke.exr_channels import nuke_channel_name, read_exr_channels
from nuke_env import CLI, start_nuke

pytestmark = pytest.mark.skipif(not CLI.is_file(), reason="the core venv has no actormatte CLI")


def _plate_read(nuke: ModuleType, shot: Any) -> Any:
    return nuke.nodes.Read(file=str(shot.folder / "plate.%04d.png"), first=shot.first,
                           last=shot.last, origfirst=shot.first, origlast=shot.last,
                           colorspace="sRGB")


def _gizmo(nuke: ModuleType, upstream: Any, shot: Any, models: Path) -> Any:
    node = nuke.createNode("ActorMatte")
    node.setInput(0, upstream)
    node["id_map"].setValue(str(shot.ids))
    node["core_cli"].setValue(str(CLI))
    node["models"].setValue(str(models))
    node["size"].setValue(64)
    node["xmem_size"].setValue(64)
    node["device"].setValue("cpu")
    return node


def _wait(nuke: ModuleType, job: Any, timeout: float = 600.0) -> Any:
    nuke.run_main_loop(lambda: not job.running and nuke.pending_main_calls() == 0, timeout)
    assert job.result is not None
    return job.result


def _run_button(nuke: ModuleType, node: Any) -> Any:
    import actormatte_nuke

    node["run"].execute()   # the Run button, as the artist presses it
    return actormatte_nuke.jobs[node.fullName()]


def test_gui_run_loads_one_layer_per_actor(nuke_gui: ModuleType, make_shot: Any,
                                           models_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    nuke = nuke_gui
    shot = make_shot(6)
    nuke.root()["name"].setValue(str(tmp_path / "comp" / "shot_v001.nk"))
    node = _gizmo(nuke, _plate_read(nuke, shot), shot, models_dir)
    job = _run_button(nuke, node)
    assert job.running and node["status"].value().startswith("running")
    result = _wait(nuke, job)
    assert result.ok, result.message
    assert nuke.violations == []                   # no node touched off the main thread
    # frames in: the Read's own files, its colour space, the input's range
    assert job.argv[1:3] == ["run", str(shot.folder / "plate.####.png")]
    joined = " ".join(job.argv)
    assert "--input-colorspace srgb_tx" in joined and "--frames 1001-1006" in joined
    assert f"--out {tmp_path / 'comp' / 'actormatte' / 'ActorMatte1'}" in joined
    # progress went through a ProgressTask, forwards only, to 100
    (task,) = nuke.progress_tasks
    assert task.progress == sorted(task.progress) and task.progress[-1] == 100
    assert any(m.startswith("Propagating masks") for m in task.messages)
    assert any(m.startswith("Matting") for m in task.messages)
    # output: the plate plus <layer>.alpha for every actor, named as Nuke names EXR channels
    layers = result.done["layers"]
    assert len(layers) == 2 and node["matte_layers"].value() == ",".join(layers)
    with node:
        read = nuke.toNode("MatteRead")
    first_exr = read["file"].evaluate(1001)
    exr_names = read_exr_channels(first_exr)
    assert sorted(exr_names) == sorted(f"{layer}.A" for layer in layers)
    for layer in layers:
        assert nuke_channel_name(f"{layer}.A") == f"{layer}.alpha"   # Nuke keeps the name
        assert nuke.layer_channels(layer) == [f"{layer}.alpha"]        # layer declared
    channels = node.channels()
    assert {"rgba.red", "rgba.green", "rgba.blue"} <= set(channels)
    assert {f"{layer}.alpha" for layer in layers} <= set(channels)
    assert (node.firstFrame(), node.lastFrame()) == (1001, 1006)
    for frame in range(1001, 1007):
        assert os.path.isfile(read["file"].evaluate(frame))
    _check_alpha_values(first_exr, layers)
    _check_farm_render_needs_only_the_exrs(nuke, node, shot, monkeypatch)


def _check_alpha_values(path: str, layers: list[str]) -> None:
    import OpenImageIO as oiio

    image = oiio.ImageBuf(path)
    names = list(image.spec().channelnames)
    for layer in layers:
        pixels = image.get_pixels(oiio.FLOAT)[..., names.index(f"{layer}.A")]
        assert all(0.0 <= float(v) <= 1.0 and not math.isnan(float(v)) for v in pixels.flat)


def _check_farm_render_needs_only_the_exrs(nuke: ModuleType, node: Any, shot: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Save (gizmo knobs only), then load as ``nuke -x`` would with no core at all."""
    saved = nuke.saved_knobs(node)
    expected = sorted(node.channels())

    def no_core(*args: object, **kwargs: object) -> None:
        raise AssertionError("a render started a process")

    monkeypatch.setattr(subprocess, "Popen", no_core)
    monkeypatch.setenv("PATH", "/nonexistent")
    render = start_nuke(gui=False)
    loaded = render.load_node("ActorMatte", saved)
    loaded.setInput(0, _plate_read(render, shot))
    assert sorted(loaded.channels()) == expected


def test_terminal_run_prerenders_a_processed_input(nuke_t: ModuleType, make_shot: Any,
                                                   models_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import actormatte_nuke

    nuke = nuke_t
    shot = make_shot(6)
    grade = nuke.nodes.Grade(inputs=[_plate_read(nuke, shot)])   # not a plain Read
    node = _gizmo(nuke, grade, shot, models_dir)
    node["use_input_range"].setValue(False)
    node["first"].setValue(1001)
    node["last"].setValue(1003)
    node["cache_dir"].setValue(str(tmp_path / "cache"))
    job = actormatte_nuke.run(node)                 # nuke -t: blocks and prints
    assert job is not None and job.result is not None and job.result.ok, job.result.message
    assert nuke.progress_tasks == []
    printed = capsys.readouterr().out
    assert re.search(r"ActorMatte ActorMatte1: +100% done", printed)
    assert "Propagating masks" in printed
    assert ("execute", "ActorMatte1.Write1", 1001, 1003, 1) in nuke.calls
    assert [n.Class() for n in node.nodes()].count("Write") == 0     # temporary Write removed
    prerendered = tmp_path / "cache" / "plate" / "ActorMatte1_plate.####.exr"
    assert job.argv[2] == str(prerendered)
    assert "--input-colorspace lin_rec709" in " ".join(job.argv)     # root working space
    assert not prerendered.parent.exists()                           # removed after success
    assert (node["matte_first"].value(), node["matte_last"].value()) == (1001, 1003)
    assert len(node["matte_layers"].value().split(",")) == 2
    assert {f"{x}.alpha" for x in node["matte_layers"].value().split(",")} <= set(node.channels())
    # Reload finds the same cache from the files alone
    node["matte_layers"].setValue("")
    assert actormatte_nuke.reload(node) == "2 actor(s), frames 1001-1003"
    assert len(node["matte_layers"].value().split(",")) == 2


def test_cancel_terminates_the_cli(nuke_gui: ModuleType, make_shot: Any, models_dir: Path,
                                   tmp_path: Path) -> None:
    nuke = nuke_gui
    shot = make_shot(6)
    nuke.root()["name"].setValue(str(tmp_path / "shot.nk"))
    node = _gizmo(nuke, _plate_read(nuke, shot), shot, models_dir)

    # 1. the ProgressTask's own Cancel (pressed after the first progress event)
    nuke.ProgressTask.cancel_after = 3
    job = _run_button(nuke, node)
    result = _wait(nuke, job, 300)
    assert result.cancelled and not result.ok
    assert job.process is not None and job.process.poll() == 5   # SIGTERM -> exit code 5
    assert node["matte_layers"].value() == "" and "cancelled" in node["status"].value()

    # 2. the node's Cancel button while the CLI runs
    nuke.ProgressTask.cancel_after = None
    job = _run_button(nuke, node)
    nuke.run_main_loop(lambda: len(nuke.progress_tasks[-1].progress) >= 3, 300)
    node["cancel"].execute()
    result = _wait(nuke, job, 300)
    assert result.cancelled and job.process is not None and job.process.poll() == 5
    assert nuke.messages == [] and nuke.violations == []


def test_cli_error_reaches_the_artist(nuke_gui: ModuleType, make_shot: Any, models_dir: Path,
                                      tmp_path: Path) -> None:
    nuke = nuke_gui
    shot = make_shot(6)
    (shot.folder / "plate.1003.png").unlink()
    node = _gizmo(nuke, _plate_read(nuke, shot), shot, models_dir)
    node["cache_dir"].setValue(str(tmp_path / "cache"))
    result = _wait(nuke, _run_button(nuke, node), 300)
    assert not result.ok and result.code == 2
    assert "1003" in result.message
    assert nuke.messages == [f"ActorMatte: {result.message}"]
    assert node["status"].value().startswith("failed:")
    assert node["matte_layers"].value() == ""


def test_errors_before_the_cli_starts(nuke_t: ModuleType, nuke_factory: Any, make_shot: Any,
                                      models_dir: Path) -> None:
    import actormatte_nuke

    shot = make_shot(2)
    node = _gizmo(nuke_t, _plate_read(nuke_t, shot), shot, models_dir)
    with pytest.raises(actormatte_nuke.ActorMatteNukeError, match="save the script"):
        actormatte_nuke.run(node)                  # unsaved script, no cache folder
    node["cache_dir"].setValue("/tmp/unused")
    node["core_cli"].setValue("/nonexistent/actormatte")
    with pytest.raises(actormatte_nuke.ActorMatteNukeError, match="does not exist"):
        actormatte_nuke.run(node)
    node["core_cli"].setValue(str(CLI))
    node["id_map"].setValue("")
    with pytest.raises(actormatte_nuke.ActorMatteNukeError, match="no keyframe masks"):
        actormatte_nuke.run(node)
    gui = nuke_factory(True)
    unconnected = gui.createNode("ActorMatte")
    unconnected["run"].execute()
    assert gui.messages == ["ActorMatte: connect the plate to the ActorMatte node's input"]
