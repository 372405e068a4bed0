"""The Blender extension in real Blender (bpy wheels), driving the real core CLI.

Each test starts ``blender_driver.py`` under a bpy test venv's Python in a subprocess with a
timeout (bpy can hang at exit), with ``$ACTORMATTE_CLI`` pointing at this venv's ``actormatte``
and the models folder of generated weights in the add-on preferences. The driver enables
``blender_addon/`` as an extension, sets up an ActorMatte node, runs the operator in background
mode and renders the compositor through a File Output node; the renders are read back here with
OpenImageIO and compared with the CLI's own EXRs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio
import psutil
import pytest

from support.blender import bpy_python
from support.reference import ROOT

DRIVER = Path(__file__).with_name("blender_driver.py")
ADDON = ROOT / "blender_addon"
TIMEOUT_S = 300  # a loaded 2-core CI machine: one run of 6 frames took ~170 s
pytestmark = pytest.mark.bpy


def read_channels(path: Path) -> dict[str, np.ndarray]:
    """Every channel of an EXR as float32 (H, W)."""
    buf = oiio.ImageBuf(str(path))
    assert not buf.has_error, buf.geterror()
    pixels = buf.get_pixels(oiio.FLOAT)  # (H, W, C)
    return {name: pixels[:, :, i] for i, name in enumerate(buf.spec().channelnames)}


def write_spec(tmp_path: Path, models: Path, **spec: Any) -> Path:
    spec = {"addon_dir": str(ADDON), "models": str(models), "size": 64,
            "resolution": [96, 64], **spec}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def driver_env(cli: Path) -> dict[str, str]:
    return {**os.environ, "ACTORMATTE_CLI": str(cli)}


def drive(version: str, spec: Path, cli: Path) -> tuple[dict[str, Any], str]:
    """Run the driver to its end; returns result.json and the combined output."""
    try:
        proc = subprocess.run([str(bpy_python(version)), str(DRIVER), str(spec)],
                              capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=driver_env(cli))
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"bpy did not finish in {TIMEOUT_S} s (hung at exit?): {error.stdout!r}")
    output = proc.stdout + proc.stderr
    result = json.loads(spec.with_name("result.json").read_text())
    assert "exception" not in result, result["exception"] + output
    return result, output


def mask_file(path: Path, mask: np.ndarray) -> str:
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    return str(path)


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_node_outputs_are_the_cli_mattes(version: str, tmp_path: Path, models_dir: Path,
                                         make_shot: Callable[..., Any], core_cli: Path) -> None:
    """Run twice (the second reuses the cache), render 3 frames, compare with the CLI's EXRs."""
    shot = make_shot(6)
    ghost = np.zeros((shot.height, shot.width), bool)
    ghost[20:40, 70:90] = True  # an actor keyed on the last frame (backward-filled before it)
    spec = write_spec(
        tmp_path, models_dir, blend=str(tmp_path / "scene.blend"), runs=2,
        source={"type": "IMAGE", "path": str(shot.folder / "plate.1001.png")},
        masks_mode=["ID_MAP", "ACTOR_MASKS"], id_map=str(shot.ids), names="bob,alice",
        actor_masks=[["ghost", mask_file(tmp_path / "ghost.png", ghost), 1006]],
        cache_probe=str(tmp_path / "actormatte" / "Hero"),
        render_frames=[1001, 1003, 1006], render_dir=str(tmp_path / "render") + "/")
    result, output = drive(version, spec, core_cli)
    first, second = result["runs"]
    assert first["error"] is None and first["result"] == ["FINISHED"], output
    assert first["status"].startswith("6 frames computed, 0 reused from the cache")
    assert second["status"].startswith("0 frames computed, 6 reused from the cache"), output
    assert first["cache_mtimes"] == second["cache_mtimes"] and len(first["cache_mtimes"]) == 6
    assert "ActorMatte matte: 6/6" in output  # background mode prints progress

    inside = result["inside"]
    assert inside["outputs"] == ["bob", "alice", "ghost", "Combined"]
    assert inside["filepath"] == "//actormatte/Hero/plate_mattes.1001.exr"  # default cache
    assert (inside["source"], inside["colorspace"]) == ("SEQUENCE", "Non-Color")
    assert (inside["frame_start"], inside["frame_offset"], inside["frame_duration"]) == \
        (1001, 1000, 6)

    cache = tmp_path / "actormatte" / "Hero"
    for frame in (1001, 1003, 1006):
        cli = read_channels(cache / f"plate_mattes.{frame}.exr")
        rendered = {name: read_channels(tmp_path / "render" / f"{frame}_{name}.exr")
                    for name in inside["outputs"]}
        for layer in ("bob", "alice", "ghost"):
            (values,) = rendered[layer].values()
            np.testing.assert_array_equal(values, cli[f"{layer}.A"], err_msg=f"{layer}@{frame}")
        (combined,) = rendered["Combined"].values()
        union = np.maximum.reduce([cli["bob.A"], cli["alice.A"], cli["ghost.A"]])
        np.testing.assert_array_equal(combined, union)
        assert cli["bob.A"].max() > 0.5 and cli["alice.A"].max() > 0.5
        # ghost, keyed at 1006 only, is propagated backwards from there by the core (issue 13
        # part 2, docs/PROPAGATION.md): whatever the core wrote, the node shows it unchanged.


def test_cli_error_reaches_the_user(tmp_path: Path, models_dir: Path, make_shot: Callable[..., Any],
                                    core_cli: Path) -> None:
    """A missing plate: the operator fails with the CLI's own message; nothing is written."""
    shot = make_shot(2)
    missing = tmp_path / "nowhere" / "plate.####.png"
    spec = write_spec(tmp_path, models_dir, source={"type": "FILE", "path": str(missing)},
                      masks_mode=["ID_MAP"], id_map=str(shot.ids),
                      cache_dir=str(tmp_path / "cache") + "/")
    result, output = drive("4.5", spec, core_cli)
    (run,) = result["runs"]
    assert run["error"] is not None, output
    assert "ActorMatte failed (exit 2)" in run["error"]
    assert f"plate folder {missing.parent} does not exist" in run["error"]
    assert run["status"].startswith("ActorMatte failed (exit 2)")
    assert not list((tmp_path / "cache").glob("*.exr"))


def test_cancel_stops_the_cli_and_keeps_finished_frames(
        tmp_path: Path, models_dir: Path, make_shot: Callable[..., Any], core_cli: Path) -> None:
    """Ctrl+C in background mode: the CLI is terminated, complete frames stay, no temp files."""
    frames = 9
    shot = make_shot(frames)
    cache = tmp_path / "cache"
    spec = write_spec(tmp_path, models_dir, source={"type": "FILE", "path": shot.pattern},
                      masks_mode=["ID_MAP"], id_map=str(shot.ids), cache_dir=str(cache) + "/")
    proc = subprocess.Popen([str(bpy_python("4.5")), str(DRIVER), str(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=driver_env(core_cli))
    deadline = time.monotonic() + TIMEOUT_S
    while not list(cache.glob("plate_mattes.[0-9]*.exr")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "no frame written in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("bpy did not exit after the cancel")
    result = json.loads(spec.with_name("result.json").read_text())
    assert "exception" not in result, result["exception"] + output
    (run,) = result["runs"]
    assert run["result"] == ["CANCELLED"] and run["status"].startswith("cancelled"), output
    pid = int(output.split("core CLI (pid ")[1].split(")")[0])
    assert not psutil.pid_exists(pid)
    written = sorted(cache.glob("plate_mattes.*.exr"))
    assert 1 <= len(written) < frames, "the cancel came too late to test anything"
    for path in written:
        channels = read_channels(path)
        assert sorted(channels) == ["actor_01.A", "actor_02.A"]
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == [p.name for p in written]


def test_node_settings_map_to_cli_commands(tmp_path: Path, models_dir: Path,
                                           make_shot: Callable[..., Any], core_cli: Path) -> None:
    """Sources, colour spaces, masks, range and cache become the documented CLI flags."""
    shot = make_shot(3)
    movie = tmp_path / "plate.mp4"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"mp4v"), 24, (96, 64))
    for _ in range(3):
        writer.write(np.full((64, 96, 3), 128, np.uint8))
    writer.release()
    first_png = str(shot.folder / "plate.1001.png")
    ids = {"masks_mode": ["ID_MAP"], "id_map": str(shot.ids), "cache_dir": "/c/"}
    probes = [
        {"source": {"type": "IMAGE", "path": first_png}, **ids, "names": "bob, alice"},
        {"source": {"type": "IMAGE", "path": first_png, "colorspace": "ACEScg"}, **ids},
        {"source": {"type": "IMAGE", "path": first_png}, **ids, "input_colorspace": "lin_ap1"},
        {"source": {"type": "CLIP", "path": str(movie), "frame_start": 101}, **ids},
        {"source": {"type": "FILE", "path": shot.pattern}, "masks_mode": ["DETECT"],
         "cache_dir": "/c/", "frames": [1002, 1003]},
        {"source": {"type": "FILE", "path": shot.pattern}, "masks_mode": [], "cache_dir": "/c/"},
        {"source": {"type": "IMAGE"}, **ids},
        {"source": {"type": "IMAGE", "path": first_png, "image_source": "FILE"}, **ids},
        {"source": {"type": "FILE", "path": shot.pattern}, "masks_mode": ["ID_MAP"],
         "id_map": str(shot.ids)},  # default cache, blend not saved yet
    ]
    saved = [{"source": {"type": "FILE", "path": shot.pattern}, "masks_mode": ["ID_MAP"],
              "id_map": str(shot.ids), "name": "Shot 10"}]
    spec = write_spec(tmp_path, models_dir, probes=probes, probes_saved=saved,
                      blend=str(tmp_path / "comp.blend"))
    result, output = drive("4.5", spec, core_cli)
    commands = [probe.get("command") or probe["error"] for probe in result["probes"]]
    tail = ["--size", "64", "--xmem-size", "64", "--device", "cpu"]
    head = ["am", "run", shot.pattern, "--out", "/c", "--no-progress-bar", "--masks", str(shot.ids)]
    assert commands[0] == [*head, "--names", "bob,alice", *tail, "--input-colorspace", "srgb_tx",
                           "--models", str(models_dir)]
    assert commands[1] == [*head, *tail, "--input-colorspace", "ACEScg",
                           "--models", str(models_dir)]
    assert commands[2][-4:] == ["--input-colorspace", "lin_ap1", "--models", str(models_dir)]
    assert commands[3][:8] == ["am", "run", str(movie), "--out", "/c", "--no-progress-bar",
                               "--masks", str(shot.ids)]
    assert commands[3][8:10] == ["--start-frame", "101"]
    assert commands[3][-4:-2] == ["--input-colorspace", "srgb_tx"]
    assert commands[4][3:] == ["--out", "/c", "--no-progress-bar", "--detect",
                               "--frames", "1002-1003", *tail, "--models", str(models_dir)]
    assert commands[5] == ("choose the keyframe masks: ID map, actor masks, mask or detect "
                           "people")
    assert commands[6] == "choose the source image of the ActorMatte node"
    assert "is not an image sequence or movie" in commands[7]
    assert commands[8].startswith("save the blend file first")
    (saved_command,) = [probe["command"] for probe in result["probes_saved"]]
    assert saved_command[3:5] == ["--out", str(tmp_path / "actormatte" / "Shot_10")]
