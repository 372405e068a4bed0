"""``actormatte farm``: the job descriptions of every engine, checked structurally (fast).

Paths with spaces and shell characters run through every format: the OpenJD template passes
``openjd check`` and resolves with ``openjd summary``; the OpenCue XML parses and its commands
split back into the original arguments; the Deadline info files hold the keys the CommandLine
plugin and the scheduler need; the Deadline submission script chains the jobs by ``JobID``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actormatte.cli.main import main
from actormatte.farm import opencue, split_range
from actormatte.farm.chunks import format_range

VENV_BIN = Path(sys.executable).parent
OPENJD = str(VENV_BIN / "openjd")
NEEDS_OPENCUE = pytest.mark.skipif(not opencue.available(),
                                   reason="opencue-pyoutline is not installed (test extra)")


@pytest.fixture
def farm_case(tmp_path: Path, make_shot: Callable[..., Any]) -> dict[str, Any]:
    """A 10-frame shot and the paths of a farm job, all with spaces or shell characters."""
    shot = make_shot(10)
    masks = tmp_path / "key frames & co"
    masks.mkdir()
    ids = masks / "ids map.png"
    ids.write_bytes(Path(shot.ids).read_bytes())
    bob = masks / "bob's mask.png"
    bob.write_bytes(Path(shot.ids).read_bytes())
    models = tmp_path / "shared models"
    models.mkdir()
    return {"shot": shot, "ids": ids, "bob": bob, "models": models,
            "work": tmp_path / "work dir", "out": tmp_path / "out dir",
            "jobs": tmp_path / "job dir", "exe": tmp_path / "farm bin" / "actormatte"}


def run_farm(case: dict[str, Any], capsys: pytest.CaptureFixture[str], *extra: str) -> int:
    argv = ["farm", case["shot"].pattern, "--work", str(case["work"]), "--out", str(case["out"]),
            "--job-dir", str(case["jobs"]), "--masks", f"{case['ids']}@1001",
            "--actor-mask", f"bob={case['bob']}@1004", "--models", str(case["models"]),
            "--actormatte", str(case["exe"]), "--size", "64", "--device", "cpu", *extra]
    code = main(argv)
    capsys.readouterr()
    return code


def read_info(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(len(pair) == 2 for pair in pairs), path
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"duplicate keys in {path}"
    return dict(pairs)  # type: ignore[arg-type]


def flag_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_split_range() -> None:
    assert split_range(1001, 1010, 4) == [(1001, 1004), (1005, 1008), (1009, 1010)]
    assert split_range(1001, 1001, 10) == [(1001, 1001)]
    assert split_range(5, 7, 1) == [(5, 5), (6, 6), (7, 7)]
    assert format_range(1001, 1001) == "1001"
    assert format_range(1001, 1004) == "1001-1004"
    chunks = split_range(1, 100, 7)
    assert [a for a, _ in chunks[1:]] == [b + 1 for _, b in chunks[:-1]]
    from actormatte.errors import InputError
    with pytest.raises(InputError, match="--chunk 0"):
        split_range(1, 10, 0)


def test_openjd_template(farm_case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_farm(farm_case, capsys, "--engine", "openjd", "--chunk", "4", "--verify") == 0
    bundle = farm_case["jobs"] / "openjd"
    template_path = bundle / "template.json"
    params_path = farm_case["jobs"] / "openjd-params.json"
    check = subprocess.run([OPENJD, "check", str(template_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    template = json.loads(template_path.read_text())
    assert template["specificationVersion"] == "jobtemplate-2023-09"
    assert "TASK_CHUNKING" in template["extensions"]
    steps = {step["name"]: step for step in template["steps"]}
    assert list(steps) == ["propagate", "matte", "verify", "qc"]
    assert "parameterSpace" not in steps["propagate"]  # one task
    assert "parameterSpace" not in steps["qc"]  # one task, after everything else
    assert steps["qc"]["dependencies"] == [{"dependsOn": "verify"}]
    qc = steps["qc"]["script"]["actions"]["onRun"]["args"]
    assert qc[0] == "preview" and "--qc-only" in qc and "--plate" not in qc
    assert flag_value(qc, "--frames") == "{{Param.Frames}}"
    assert flag_value(qc, "--out") == "{{Param.OutDir}}"
    assert flag_value(qc, "--work") == "{{Param.WorkDir}}"
    assert flag_value(qc, "--name") == "plate_mattes"
    assert steps["matte"]["dependencies"] == [{"dependsOn": "propagate"}]
    assert steps["verify"]["dependencies"] == [{"dependsOn": "matte"}]
    (task_param,) = steps["matte"]["parameterSpace"]["taskParameterDefinitions"]
    assert task_param["type"] == "CHUNK[INT]"
    assert task_param["range"] == "{{Param.Frames}}"
    assert task_param["chunks"] == {"defaultTaskCount": "{{Param.ChunkSize}}",
                                    "rangeConstraint": "CONTIGUOUS"}
    matte = steps["matte"]["script"]["actions"]["onRun"]
    assert matte["command"] == "{{Param.ActorMatte}}"
    assert flag_value(matte["args"], "--frames") == "{{Task.Param.Frames}}"
    assert flag_value(matte["args"], "--work") == "{{Param.WorkDir}}"
    propagate = steps["propagate"]["script"]["actions"]["onRun"]["args"]
    assert propagate[:2] == ["propagate", "{{Param.Plate}}"]
    assert flag_value(propagate, "--masks") == "{{Param.Mask1}}@1001"
    assert flag_value(propagate, "--actor-mask") == "bob={{Param.Mask2}}@1004"
    verify = steps["verify"]["script"]["actions"]["onRun"]["args"]
    assert flag_value(verify, "--frames") == "{{Param.Frames}}"
    types = {p["name"]: p["type"] for p in template["parameterDefinitions"]}
    for name in ("ActorMatte", "Plate", "WorkDir", "OutDir", "ModelsDir", "Mask1", "Mask2"):
        assert types[name] == "PATH"
    assert all("default" not in p for p in template["parameterDefinitions"]
               if p["type"] == "PATH")  # OpenJD wants PATH defaults relative: values go apart

    values = json.loads(params_path.read_text())
    assert values["WorkDir"] == str(farm_case["work"])
    assert values["Mask1"] == str(farm_case["ids"])
    assert values["Mask2"] == str(farm_case["bob"])
    assert values["Frames"] == "1001-1010" and values["ChunkSize"] == 4
    bundle_values = json.loads((bundle / "parameter_values.json").read_text())
    assert {v["name"]: v["value"] for v in bundle_values["parameterValues"]} == values

    summary = subprocess.run([OPENJD, "summary", str(template_path), "-p", f"file://{params_path}",
                              "--output", "json"], capture_output=True, text=True)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    resolved = json.loads(summary.stdout)
    assert {p["name"]: p["value"] for p in resolved["parameter_definitions"]}["OutDir"] \
        == str(farm_case["out"])
    assert [s["name"] for s in resolved["steps"]] == ["propagate", "matte", "verify", "qc"]
    assert resolved["steps"][0]["total_tasks"] == 1


def test_farm_preview_makes_the_qc_step_write_the_pictures(farm_case: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert run_farm(farm_case, capsys, "--engine", "openjd", "--preview") == 0
    template = json.loads((farm_case["jobs"] / "openjd" / "template.json").read_text())
    steps = {step["name"]: step for step in template["steps"]}
    assert list(steps) == ["propagate", "matte", "qc"]
    assert steps["qc"]["dependencies"] == [{"dependsOn": "matte"}]
    qc = steps["qc"]["script"]["actions"]["onRun"]["args"]
    assert "--qc-only" not in qc and flag_value(qc, "--plate") == "{{Param.Plate}}"


@NEEDS_OPENCUE
def test_opencue_xml(farm_case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_farm(farm_case, capsys, "--engine", "opencue", "--chunk", "4", "--show", "vfx",
                    "--priority", "70") == 0
    root = ET.parse(farm_case["jobs"] / "opencue" / "job.xml").getroot()
    assert root.tag == "spec"
    assert root.findtext("show") == "vfx"
    job = root.find("job")
    assert job is not None and job.get("name") == "actormatte_plate_mattes"
    assert job.findtext("priority") == "70"
    layers = {layer.get("name"): layer for layer in job.iter("layer")}
    assert list(layers) == ["propagate", "matte", "qc"]
    for layer in layers.values():
        assert layer.findtext("range") == "1001-1010"
    assert layers["propagate"].findtext("chunk") == "10"  # the whole range: one task
    assert layers["matte"].findtext("chunk") == "4"
    assert layers["qc"].findtext("chunk") == "10"

    propagate = shlex.split(layers["propagate"].findtext("cmd") or "")
    assert propagate[:3] == [str(farm_case["exe"]), "propagate", farm_case["shot"].pattern]
    assert flag_value(propagate, "--work") == str(farm_case["work"])
    assert flag_value(propagate, "--masks") == f"{farm_case['ids']}@1001"
    assert flag_value(propagate, "--actor-mask") == f"bob={farm_case['bob']}@1004"
    assert flag_value(propagate, "--models") == str(farm_case["models"])
    assert flag_value(propagate, "--frames") == "1001-1010"
    matte = shlex.split(layers["matte"].findtext("cmd") or "")
    assert matte[1] == "matte"
    assert flag_value(matte, "--frames") == "#FRAME_START#-#FRAME_END#"
    assert flag_value(matte, "--out") == str(farm_case["out"])
    assert flag_value(matte, "--size") == "64"

    depends = root.find("depends")
    assert depends is not None
    assert all(depend.get("type") == "LAYER_ON_LAYER" for depend in depends)
    assert [(d.findtext("deplayer"), d.findtext("onlayer")) for d in depends] == [
        ("matte", "propagate"), ("qc", "matte")]
    qc = shlex.split(layers["qc"].findtext("cmd") or "")
    assert qc[1] == "preview" and "--qc-only" in qc


def test_deadline_files(farm_case: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_farm(farm_case, capsys, "--engine", "deadline", "--chunk", "3", "--pool", "gpu",
                    "--overwrite") == 0
    folder = farm_case["jobs"] / "deadline"
    propagate_job = read_info(folder / "propagate.job.info")
    matte_job = read_info(folder / "matte.job.info")
    assert not (folder / "verify.job.info").exists()
    for info in (propagate_job, matte_job):
        assert info["Plugin"] == "CommandLine"
        assert info["Frames"] == "1001-1010"
        assert info["Pool"] == "gpu"
        assert "JobDependencies" not in info  # set at submission, from the propagate JobID
    assert propagate_job["ChunkSize"] == "10" and propagate_job["MachineLimit"] == "1"
    assert matte_job["ChunkSize"] == "3" and "MachineLimit" not in matte_job
    assert matte_job["OutputDirectory0"] == str(farm_case["out"])
    assert matte_job["OutputFilename0"] == "plate_mattes.####.exr"

    propagate = read_info(folder / "propagate.plugin.info")
    matte = read_info(folder / "matte.plugin.info")
    assert propagate["Executable"] == matte["Executable"] == str(farm_case["exe"])
    # Deadline splits Arguments with the Windows rules; with no quotes or backslashes inside
    # the arguments these agree with shlex's.
    args = shlex.split(propagate["Arguments"])
    assert args[:2] == ["propagate", farm_case["shot"].pattern]
    assert flag_value(args, "--masks") == f"{farm_case['ids']}@1001"
    assert flag_value(args, "--work") == str(farm_case["work"])
    assert "--overwrite" not in args  # a retried propagate must resume, not start over
    margs = shlex.split(matte["Arguments"])
    assert flag_value(margs, "--frames") == "<STARTFRAME>-<ENDFRAME>"
    assert flag_value(margs, "--out") == str(farm_case["out"])
    assert "--overwrite" in margs

    qc_job = read_info(folder / "qc.job.info")
    assert qc_job["ChunkSize"] == "10" and qc_job["MachineLimit"] == "1"
    qargs = shlex.split(read_info(folder / "qc.plugin.info")["Arguments"])
    assert qargs[0] == "preview" and "--qc-only" in qargs and "--overwrite" not in qargs

    lines = (folder / "submit.args").read_text().splitlines()
    assert lines == ["-SubmitMultipleJobs", "-Dependent",
                     "-Job", str(folder / "propagate.job.info"),
                     str(folder / "propagate.plugin.info"),
                     "-Job", str(folder / "matte.job.info"), str(folder / "matte.plugin.info"),
                     "-Job", str(folder / "qc.job.info"), str(folder / "qc.plugin.info")]


def test_deadline_submit_script_chains_job_ids(farm_case: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    assert run_farm(farm_case, capsys, "--engine", "deadline", "--verify") == 0
    folder = farm_case["jobs"] / "deadline"
    log = tmp_path / "calls.txt"
    fake = tmp_path / "fake deadlinecommand"
    fake.write_text('#!/bin/sh\nn=$(($(wc -l < "$LOG") + 1))\n'
                    'printf "%s|%s\\n" "$1" "$2" >> "$LOG"\n'
                    'echo "Result=Success"\necho "JobID=job$n"\n')
    fake.chmod(0o755)
    log.write_text("")
    env = {**os.environ, "DEADLINECOMMAND": str(fake), "LOG": str(log)}
    done = subprocess.run([str(folder / "submit.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = [line.split("|") for line in log.read_text().splitlines()]
    assert [Path(plugin).name for _, plugin in calls] == [
        "propagate.plugin.info", "matte.plugin.info", "verify.plugin.info", "qc.plugin.info"]
    assert "JobDependencies" not in read_info(Path(calls[0][0]))
    assert read_info(Path(calls[1][0]))["JobDependencies"] == "job1"
    assert read_info(Path(calls[2][0]))["JobDependencies"] == "job2"
    assert read_info(Path(calls[2][0]))["MachineLimit"] == "1"
    assert read_info(Path(calls[3][0]))["JobDependencies"] == "job3"


def test_engine_all_writes_every_engine(farm_case: dict[str, Any],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["farm", farm_case["shot"].pattern, "--work", str(farm_case["work"]),
                 "--out", str(farm_case["out"]), "--job-dir", str(farm_case["jobs"]),
                 "--masks", str(farm_case["ids"]), "--models", str(farm_case["models"]),
                 "--frames", "1002-1009", "--chunk", "5"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    done = events[-1]
    assert done["event"] == "done" and done["command"] == "farm"
    assert (done["first"], done["last"], done["chunks"]) == (1002, 1009, 2)
    expected = {"openjd", "deadline"} | ({"opencue"} if opencue.available() else set())
    assert set(done["files"]) == expected
    for paths in done["files"].values():
        assert all(Path(p).is_file() for p in paths)
    matte = read_info(farm_case["jobs"] / "deadline" / "matte.job.info")
    assert matte["Frames"] == "1002-1009"


def test_bad_input_exits_2(farm_case: dict[str, Any], capsys: pytest.CaptureFixture[str],
                           tmp_path: Path) -> None:
    assert run_farm(farm_case, capsys, "--chunk", "0") == 2
    missing = dict(farm_case, ids=tmp_path / "nope.png")
    assert run_farm(missing, capsys) == 2
    assert run_farm(farm_case, capsys, "--frames", "1005-1030") == 2
    braces = dict(farm_case, out=tmp_path / "{{odd}}")
    assert run_farm(braces, capsys, "--engine", "openjd") == 2
    assert not (farm_case["jobs"] / "openjd" / "template.json").exists()


def test_missing_pyoutline(farm_case: dict[str, Any], capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    from actormatte.errors import DependencyError

    def missing() -> None:
        raise DependencyError(opencue.INSTALL_HINT)

    monkeypatch.setattr(opencue, "_import_outline", missing)
    assert run_farm(farm_case, capsys, "--engine", "opencue") == 2
    assert run_farm(farm_case, capsys) == 0  # `all` leaves OpenCue out with a warning
    assert not (farm_case["jobs"] / "opencue").exists()
    assert (farm_case["jobs"] / "deadline" / "matte.job.info").is_file()


def test_models_folder_missing_here_warns(farm_case: dict[str, Any],
                                          capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    shared = tmp_path / "not mounted here"
    code = main(["farm", farm_case["shot"].pattern, "--work", str(farm_case["work"]),
                 "--out", str(farm_case["out"]), "--job-dir", str(farm_case["jobs"]),
                 "--masks", str(farm_case["ids"]), "--models", str(shared),
                 "--engine", "deadline"])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert any(e["event"] == "warning" and str(shared) in e["message"] for e in events)
    args = shlex.split(read_info(farm_case["jobs"] / "deadline" / "matte.plugin.info")["Arguments"])
    assert flag_value(args, "--models") == str(shared)
