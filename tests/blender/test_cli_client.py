"""The extension's bpy-free modules (CLI bridge, CLI lookup, colour names) in the core venv.

``blender_addon/__init__.py`` imports bpy, so the modules are loaded as submodules of a bare
package object pointing at the folder (its ``__init__`` never runs). Process handling is tested
with a small Python program that speaks the progress protocol; the real CLI is driven by
``test_blender_extension.py``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import textwrap
import time
import types
from pathlib import Path

import psutil
import pytest

ADDON = Path(__file__).resolve().parents[2] / "blender_addon"
_package = types.ModuleType("actormatte_blender_addon")
_package.__path__ = [str(ADDON)]
sys.modules.setdefault("actormatte_blender_addon", _package)
cli_client = importlib.import_module("actormatte_blender_addon.cli_client")
locate = importlib.import_module("actormatte_blender_addon.locate")
colorspace = importlib.import_module("actormatte_blender_addon.colorspace")
keyframes = importlib.import_module("actormatte_blender_addon.keyframes")


def test_keyframe_lists_and_summaries(tmp_path: Path) -> None:
    assert keyframes.parse_keyframes("", 1001) == [1001]
    assert keyframes.parse_keyframes("1010, 1003 1010", 1001, 1020) == [1003, 1010]
    with pytest.raises(ValueError, match="outside the frame range 1001-1020"):
        keyframes.parse_keyframes("1030", 1001, 1020)
    with pytest.raises(ValueError, match="not a frame number"):
        keyframes.parse_keyframes("a", 1001)
    for frame in (1007, 1003, 10001):
        (tmp_path / f"plate.{frame:04d}.exr").touch()
    (tmp_path / "plate_v2.0001.exr").touch()
    assert keyframes.sequence_first_frame(str(tmp_path / "plate.####.exr")) == 1003
    assert keyframes.sequence_first_frame(str(tmp_path / "none.####.exr")) is None
    assert keyframes.reuse_summary({"frames_written": 2, "frames_skipped": 4}) == \
        "2 frames computed, 4 reused from the cache"
    assert keyframes.reuse_summary({"frames_written": 1, "frames_propagated": 3,
                                    "frames_resumed": 7}).endswith(
        "; propagation 3 computed, 7 reused")
    request = cli_client.RunRequest(plate="/p/a.####.exr", out="/o",
                                    mask_layers=("/o/masks/m.1001.exr@1001",))
    assert cli_client.build_run_command(["am"], request)[6:8] == [
        "--mask-layers", "/o/masks/m.1001.exr@1001"]


def test_parse_line_keeps_protocol_objects_only() -> None:
    event = {"event": "progress", "stage": "matte", "done": 1, "total": 2, "new_key": [1]}
    assert cli_client.parse_line(json.dumps(event) + "\n") == event
    for line in ("", "Progress: 19%", "{not json", "[1, 2]", '{"stage": "matte"}',
                 '{"event": 3}', "null"):
        assert cli_client.parse_line(line) is None, line


def test_build_run_command_maps_every_field() -> None:
    request = cli_client.RunRequest(
        plate="/p/shot.####.exr", out="/o", id_map="/m/ids.png", id_map_frame=1010,
        names=("bob", "alice"),
        actor_masks=(cli_client.ActorMask("carol", "/m/carol.png", 1020),
                     cli_client.ActorMask("dan", "/m/dan.png")),
        detect=True, frames=(1001, 1048), start_frame=None, size=320, xmem_size=-1,
        device="cpu", input_colorspace="ACEScg", models="/models", overwrite=True)
    assert cli_client.build_run_command(["/venv/bin/actormatte"], request) == [
        "/venv/bin/actormatte", "run", "/p/shot.####.exr", "--out", "/o", "--no-progress-bar",
        "--masks", "/m/ids.png@1010", "--names", "bob,alice",
        "--actor-mask", "carol=/m/carol.png@1020", "--actor-mask", "dan=/m/dan.png", "--detect",
        "--frames", "1001-1048", "--size", "320", "--xmem-size", "-1", "--device", "cpu",
        "--input-colorspace", "ACEScg", "--models", "/models", "--overwrite"]


def test_build_run_command_minimal_and_without_masks() -> None:
    request = cli_client.RunRequest(plate="/p/a.mov", out="/o", detect=True, start_frame=1001)
    assert cli_client.build_run_command(["am"], request) == [
        "am", "run", "/p/a.mov", "--out", "/o", "--no-progress-bar", "--detect",
        "--start-frame", "1001", "--device", "auto"]
    with pytest.raises(ValueError, match="no keyframe masks"):
        cli_client.build_run_command(["am"], cli_client.RunRequest(plate="/p/a.mov", out="/o"))


def test_sequence_patterns() -> None:
    assert cli_client.sequence_pattern("/s/sh010/plate.1001.exr") == "/s/sh010/plate.####.exr"
    assert cli_client.sequence_pattern("/s/plate_v2_0007.png") == "/s/plate_v2_####.png"
    assert cli_client.sequence_pattern("/s/plate.####.exr") == "/s/plate.####.exr"
    with pytest.raises(ValueError, match="no frame number"):
        cli_client.sequence_pattern("/s/sh010/plate.exr")
    assert cli_client.frame_path("/o/sh_mattes.####.exr", 1001) == "/o/sh_mattes.1001.exr"
    assert cli_client.frame_path("/o/sh.%04d.exr", 7) == "/o/sh.0007.exr"
    assert cli_client.frame_path("/o/sh.@@@.exr", 12345) == "/o/sh.12345.exr"


def test_monitor_folds_events_and_ignores_unknown_ones() -> None:
    monitor = cli_client.RunMonitor()
    fractions = []
    events = [
        {"event": "start", "frames": [1001, 1002], "actors": []},
        {"event": "telemetry", "whatever": 1},
        {"event": "progress", "stage": "read", "frame": 1001, "done": 2, "total": 2},
        {"event": "progress", "stage": "propagate", "done": 1, "total": 2, "eta": 3},
        {"event": "progress", "stage": "propagate", "done": "x", "total": 2},
        {"event": "progress", "stage": "matte", "frame": 1001, "done": 1, "total": 2},
        {"event": "frame", "frame": 1001, "path": "/o/a.1001.exr", "skipped": True},
        {"event": "frame", "frame": 1002, "path": "/o/a.1002.exr", "skipped": False},
        {"event": "warning", "message": "plate is dark"},
    ]
    for event in events:
        monitor.feed(event)
        fractions.append(monitor.fraction)
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1
    assert monitor.status == "ActorMatte matte: 1/2 (frame 1001)"
    assert (monitor.frames_skipped, monitor.frames_written) == (1, 1)
    assert monitor.warnings == ["plate is dark"] and monitor.start is not None
    monitor.feed({"event": "done", "layers": ["bob"], "pattern": "/o/a.####.exr"})
    assert monitor.fraction == 1.0 and monitor.done is not None and monitor.error is None


def test_failure_messages() -> None:
    monitor = cli_client.RunMonitor()
    assert cli_client.failure_message(4, monitor, "Traceback\nOSError: boom\n") == \
        "ActorMatte failed (exit 4, missing or wrong model weights: run `actormatte weights " \
        "install` (or install.py)): OSError: boom"
    monitor.feed({"event": "error", "code": 2, "message": "plate frame 1007 is missing"})
    assert cli_client.failure_message(2, monitor, "") == \
        "ActorMatte failed (exit 2): plate frame 1007 is missing"


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_find_cli_order(tmp_path: Path) -> None:
    cli = _executable(tmp_path / "venv" / "bin" / "actormatte")
    record = tmp_path / "venv" / locate.RECORD_NAME
    record.write_text(json.dumps({"cli": str(cli)}))
    env = {"PATH": ""}
    assert locate.find_cli(str(cli), env) == (cli, "preference")
    assert locate.find_cli(str(tmp_path / "venv"), env) == (cli, "preference")
    assert locate.find_cli(str(record), env) == (cli, "preference")
    assert locate.find_cli("", {"PATH": "", "ACTORMATTE_CLI": str(record)}) == \
        (cli, "$ACTORMATTE_CLI")
    repo = tmp_path / "repo"
    (repo / "blender_addon").mkdir(parents=True)
    (repo / ".venv").mkdir()
    (repo / ".venv" / locate.RECORD_NAME).write_text(json.dumps({"cli": str(cli)}))
    found, source = locate.find_cli("", env, repo / "blender_addon")
    assert found == cli and source.startswith("install record")
    on_path = _executable(tmp_path / "bin" / "actormatte")
    assert locate.find_cli(str(tmp_path / "missing"), {"PATH": str(tmp_path / "bin")}) == \
        (on_path, "PATH")


def test_find_cli_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(locate.CliNotFoundError) as info:
        locate.find_cli(str(tmp_path / "nope"), {"PATH": ""}, tmp_path / "blender_addon")
    message = str(info.value)
    assert "install.py" in message and str(tmp_path / "nope") in message
    assert str(tmp_path / ".venv" / locate.RECORD_NAME) in message


def test_child_environment_drops_blender_python_vars() -> None:
    env = locate.child_environment({"PYTHONHOME": "/blender/python", "PYTHONPATH": "/x",
                                    "OCIO": "/c.ocio", "PATH": "/bin"})
    assert env == {"OCIO": "/c.ocio", "PATH": "/bin", "PYTHONUNBUFFERED": "1"}


def test_colorspace_names() -> None:
    assert colorspace.ocio_name("Linear Rec.709", {}) == "lin_rec709"
    assert colorspace.ocio_name("sRGB", {}) == "srgb_tx"
    assert colorspace.ocio_name("Non-Color", {}) == "Raw"
    assert colorspace.ocio_name("AgX Log", {}) == "AgX Log"  # unknown: the CLI names it
    assert colorspace.ocio_name("Linear Rec.709", {"OCIO": "/studio.ocio"}) == "Linear Rec.709"
    assert colorspace.ocio_name("", {}) is None


def test_colorspace_names_exist_in_ocio_builtin_config() -> None:
    ocio = pytest.importorskip("PyOpenColorIO")
    config = ocio.Config.CreateFromBuiltinConfig("cg-config-latest")
    for blender_name, name in colorspace.BLENDER_TO_OCIO.items():
        assert config.getColorSpace(name) is not None, (blender_name, name)


STAND_IN = textwrap.dedent("""
    import json, signal, sys, time
    def emit(**event):
        print(json.dumps(event), flush=True)
    def on_term(signum, frame):
        emit(event="error", code=5, message="cancelled; frames already written stay on disk")
        sys.exit(5)
    signal.signal(signal.SIGTERM, on_term if sys.argv[1] != "stubborn" else signal.SIG_IGN)
    print("a stray library print", flush=True)
    emit(event="start", command="run", frames=[1, 3], actors=[])
    emit(event="future_event", data=1)
    print("Progress: 50%", file=sys.stderr, flush=True)
    if sys.argv[1] == "fail":
        emit(event="error", code=2, message="plate frame 2 is missing")
        sys.exit(2)
    if sys.argv[1] in ("hang", "stubborn"):
        time.sleep(60)
    emit(event="frame", frame=1, path="/o/a.0001.exr", skipped=False)
    emit(event="done", command="run", frames_written=1, frames_skipped=0, layers=["bob"])
""")


@pytest.fixture
def stand_in(tmp_path: Path) -> list[str]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    return [sys.executable, str(script)]


def _follow(job: object, monitor: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not job.stdout_closed:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        for event in job.drain(0.2):  # type: ignore[attr-defined]
            monitor.feed(event)  # type: ignore[attr-defined]


def test_job_reads_events_in_order_and_exit_code(stand_in: list[str]) -> None:
    job = cli_client.CliJob([*stand_in, "ok"])
    events = []
    deadline = time.monotonic() + 30
    while not job.stdout_closed:
        assert time.monotonic() < deadline
        events.extend(job.drain(0.2))
    assert [e["event"] for e in events] == ["start", "future_event", "frame", "done"]
    assert job.wait() == 0 and job.poll() == 0
    assert "Progress: 50%" in job.stderr_tail


def test_job_failure_carries_the_cli_message(stand_in: list[str]) -> None:
    job = cli_client.CliJob([*stand_in, "fail"])
    monitor = cli_client.RunMonitor()
    _follow(job, monitor)
    code = job.wait()
    assert code == 2
    assert cli_client.failure_message(code, monitor, job.stderr_tail) == \
        "ActorMatte failed (exit 2): plate frame 2 is missing"


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_cancel_terminates_the_process(stand_in: list[str]) -> None:
    job = cli_client.CliJob([*stand_in, "hang"])
    first = next(job.drain(30))
    assert first["event"] == "start"
    started = time.monotonic()
    assert job.cancel() == 5
    assert time.monotonic() - started < 10 and job.cancelled
    assert not psutil.pid_exists(job.pid)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_cancel_kills_a_process_that_ignores_sigterm(stand_in: list[str]) -> None:
    job = cli_client.CliJob([*stand_in, "stubborn"])
    assert next(job.drain(30))["event"] == "start"
    assert job.cancel(grace=0.5) == -signal.SIGKILL
    assert not psutil.pid_exists(job.pid)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_request_stop_does_not_block(stand_in: list[str]) -> None:
    job = cli_client.CliJob([*stand_in, "stubborn"])
    assert next(job.drain(30))["event"] == "start"
    started = time.monotonic()
    job.request_stop()
    job.kill_if_overdue(grace=60)
    assert time.monotonic() - started < 1 and job.poll() is None
    time.sleep(0.3)
    job.kill_if_overdue(grace=0.1)
    assert job.wait(10) == -signal.SIGKILL
