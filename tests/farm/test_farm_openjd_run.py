"""The farm job run for real with ``openjd run``, against a one-machine ``actormatte run``.

One small synthetic shot (96x64, 10 frames, 2 actors, ``--size 64``, generated weights), paths
with spaces. The farm run is what a farm does on a bad day: the ``propagate`` task is SIGKILLed
midway (after its fifth frame), then the whole job runs: propagate is retried and resumes from its
checkpoint, ``matte`` runs in 3 chunks, ``verify`` finds every frame complete, ``qc`` writes the
shot's qc.json. The masks, the EXRs (channel sets and pixel data) and qc.json must equal the
single run bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte.preview import find_sequence, shot_qc
from actormatte.qc import QCConfig
from actormatte.threads import FARM_THREADS
from support.shots import write_shot

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
ACTORMATTE = str(VENV_BIN / "actormatte")
OPENJD = str(VENV_BIN / "openjd")
TIMEOUT_S = 900  # the CI machine is shared and slow; a normal run takes ~2 minutes
KILL_AFTER = 5  # propagated frames before the propagate task is killed
SHOT_FLAGS = ["--size", "64", "--xmem-size", "-1", "--checkpoint-every", "2", "--device", "cpu"]


def events_of(log: str) -> list[dict[str, Any]]:
    """The actormatte NDJSON events in an ``openjd run`` log (``<time>\\t<line>`` lines)."""
    events = []
    for line in log.splitlines():
        text = line.split("\t", 1)[-1]
        if text.startswith("{"):
            events.append(json.loads(text))
    return events


def done_events(log: str, command: str) -> list[dict[str, Any]]:
    return [e for e in events_of(log) if e["event"] == "done" and e["command"] == command]


def kill_propagate_midway(template: Path, params: Path) -> tuple[int, str]:
    """Run the propagate step and SIGKILL its task after ``KILL_AFTER`` frames."""
    proc = subprocess.Popen([OPENJD, "run", str(template), "--step", "propagate",
                             "-p", f"file://{params}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    task_pid, killed_at, lines = None, 0, []
    try:
        for line in proc.stdout:
            lines.append(line)
            started = re.search(r"Command started as pid: (\d+)", line)
            if started:
                task_pid = int(started.group(1))
            for event in events_of(line):
                if (event["event"] == "progress" and event["stage"] == "propagate"
                        and event["done"] >= KILL_AFTER and not killed_at):
                    assert task_pid is not None, "openjd did not report the task's pid"
                    # openjd starts each task in its own process group: kill the task only,
                    # as a dying node would; openjd sees it fail and cleans up its session.
                    os.killpg(task_pid, signal.SIGKILL)
                    killed_at = event["done"]
        proc.wait(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return killed_at, "".join(lines)


@pytest.fixture(scope="module")
def farm_run(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    """The single run and the killed-then-completed farm run of one shot."""
    root = tmp_path_factory.mktemp("farm") / "shot folder"
    shot = write_shot(root / "plate frames", 10, width=96, height=64, actors=2)
    masks = [f"{shot.ids}@1001", "--models", str(models_dir), *SHOT_FLAGS]
    single = root / "single run"
    # the farm pins FARM_THREADS in every task; bits are promised for one thread count
    subprocess.run([ACTORMATTE, "run", shot.pattern, "--out", str(single), "--masks", *masks,
                    "--threads", str(FARM_THREADS)], check=True, capture_output=True,
                   timeout=TIMEOUT_S)

    work, out, jobs = root / "farm work", root / "farm out", root / "farm jobs"
    subprocess.run([ACTORMATTE, "farm", shot.pattern, "--work", str(work), "--out", str(out),
                    "--job-dir", str(jobs), "--engine", "openjd", "--chunk", "4", "--verify",
                    "--masks", *masks], check=True, capture_output=True, timeout=120)
    template = jobs / "openjd" / "template.json"
    params = jobs / "openjd-params.json"
    killed_at, killed_log = kill_propagate_midway(template, params)
    job_after_kill = json.loads((work / "job.json").read_text())
    masks_after_kill = len(list((work / "masks").glob("*.png")))
    full = subprocess.run([OPENJD, "run", str(template), "--step", "qc", "--run-dependencies",
                           "-p", f"file://{params}"], capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert full.returncode == 0, full.stdout[-4000:] + full.stderr[-2000:]
    return {"single": single, "single_work": single / ".actormatte" / "plate_mattes",
            "work": work, "out": out, "killed_at": killed_at, "killed_log": killed_log,
            "job_after_kill": job_after_kill, "masks_after_kill": masks_after_kill,
            "log": full.stdout}


def read_exr(path: Path) -> tuple[list[str], np.ndarray]:
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    try:
        return list(image.spec().channelnames), np.asarray(image.read_image("float"))
    finally:
        image.close()


def assert_same_exrs(a: Path, b: Path, check: Callable[[np.ndarray], None] | None = None) -> None:
    names = sorted(p.name for p in a.glob("*.exr"))
    assert names == sorted(p.name for p in b.glob("*.exr"))
    assert len(names) == 10
    for name in names:
        channels_a, pixels_a = read_exr(a / name)
        channels_b, pixels_b = read_exr(b / name)
        assert channels_a == channels_b == ["actor_01.A", "actor_02.A"], name
        assert pixels_a.shape == pixels_b.shape == (64, 96, 2), name
        assert np.array_equal(pixels_a, pixels_b), f"{name}: max diff " \
            f"{np.abs(pixels_a - pixels_b).max()}"
        if check is not None:
            check(pixels_a)


def test_chunked_openjd_run_equals_single_run(farm_run: dict[str, Any]) -> None:
    mattes = done_events(farm_run["log"], "matte")
    chunks = sorted((e["first"], e["last"]) for e in mattes if e["frames_written"] > 0)
    assert len(chunks) == 3, chunks
    assert chunks[0][0] == 1001 and chunks[-1][1] == 1010
    assert all(b + 1 == c for (_, b), (c, _) in zip(chunks, chunks[1:], strict=False))
    assert all(last - first + 1 <= 4 for first, last in chunks)
    verify = [e for e in mattes if e["first"] == 1001 and e["last"] == 1010]
    assert len(verify) == 1 and verify[0]["frames_skipped"] == 10
    assert verify[0]["frames_written"] == 0

    def not_blank(pixels: np.ndarray) -> None:
        assert pixels.max() > 0.5 and pixels.min() == 0.0  # a real matte, not an empty frame

    assert_same_exrs(farm_run["single"], farm_run["out"], not_blank)


def test_killed_propagate_resumes(farm_run: dict[str, Any]) -> None:
    assert farm_run["killed_at"] >= KILL_AFTER, farm_run["killed_log"][-3000:]
    assert not done_events(farm_run["killed_log"], "propagate")  # it did not finish
    assert farm_run["job_after_kill"]["complete"] is False
    assert farm_run["masks_after_kill"] >= KILL_AFTER - 1
    (propagate,) = done_events(farm_run["log"], "propagate")
    resumed, computed = propagate["frames_resumed"], propagate["frames_propagated"]
    assert resumed + computed == 10
    assert resumed >= 2 and computed < 10  # fewer frames recomputed: it resumed
    single_masks = sorted((farm_run["single_work"] / "masks").glob("*.png"))
    assert len(single_masks) == 10
    for path in single_masks:
        expected = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        got = cv2.imread(str(farm_run["work"] / "masks" / path.name), cv2.IMREAD_UNCHANGED)
        assert got is not None and np.array_equal(expected, got), path.name
    assert_same_exrs(farm_run["single"], farm_run["out"])


def test_chunks_record_qc_and_the_last_step_writes_the_shots_qc(farm_run: dict[str, Any],
                                                                tmp_path: Path) -> None:
    mattes = done_events(farm_run["log"], "matte")
    chunks = [e for e in mattes if (e["first"], e["last"]) != (1001, 1010)]
    # A chunk writes no qc.json (it cannot see the whole shot), only its frames' records.
    assert all(e["qc"] is None and e["qc_frames_recorded"] == e["last"] - e["first"] + 1
               for e in chunks), chunks
    records = farm_run["out"] / "preview" / "plate_mattes" / "qc_frames"
    assert sorted(p.name for p in records.glob("*.json")) == [f"{f}.json"
                                                               for f in range(1001, 1011)]
    # verify mattes the whole range, so it writes qc.json: only the first frame of the 2nd and
    # 3rd chunks are measured again (their temporal change reads the previous chunk's frame).
    (verify,) = [e for e in mattes if (e["first"], e["last"]) == (1001, 1010)]
    assert verify["qc_frames_measured"] == 2
    (qc_done,) = done_events(farm_run["log"], "preview")
    assert qc_done["preview"] is None and qc_done["qc_frames_measured"] == 0
    farm_qc = json.loads(Path(qc_done["qc"]).read_text())
    # What measuring every frame of the farm's mattes afresh gives, bit for bit.
    sequence = find_sequence(farm_run["out"], "plate_mattes")
    fresh, measured = shot_qc(sequence, list(range(1001, 1011)), tmp_path / "fresh",
                              farm_run["work"], QCConfig())
    assert measured == 10 and fresh.to_json() == farm_qc
    actor = farm_qc["actors"][0]
    assert farm_qc["frames"]["1005"][actor]["change"] is not None  # across a chunk boundary
    # And what the single run wrote (equal flags; figures as close as the EXRs are).
    single_qc = json.loads((farm_run["single"] / "preview" / "plate_mattes" / "qc.json")
                           .read_text())
    assert farm_qc["flags"] == single_qc["flags"]
    for frame, figures in single_qc["frames"].items():
        for name, values in figures.items():
            for field, value in values.items():
                got = farm_qc["frames"][frame][name][field]
                assert (got is None) == (value is None), (frame, name, field)
                assert value is None or got == pytest.approx(value, abs=1e-3)
