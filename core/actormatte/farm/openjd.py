"""Open Job Description (``jobtemplate-2023-09``) job bundle for a shot.

Called by :func:`actormatte.farm.write_jobs`. Writes ``<job-dir>/openjd/template.json`` and
``parameter_values.json`` (a job bundle: ``deadline bundle submit <job-dir>/openjd`` sends it to
AWS Deadline Cloud) and ``<job-dir>/openjd-params.json`` (the same values as the plain mapping
``openjd run ... -p file://`` reads).

Every path is a ``PATH`` job parameter, so a queue's path-mapping rules (or ``openjd run
--path-mapping-rules``) move the job to other mounts; OpenJD requires PATH defaults to be relative
to the template, so the absolute values live in the parameter files, not in the template. The
``matte`` step uses the ``TASK_CHUNKING`` extension: one ``CHUNK[INT]`` task parameter over
``{{Param.Frames}}`` with ``rangeConstraint: CONTIGUOUS``, so each task receives ``A-B`` and runs
``actormatte matte --frames A-B`` (openjd-cli 0.8 / openjd-model 0.13 implement it). Commands
are argument lists, never shell strings: paths with spaces need no quoting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from actormatte.farm.spec import FarmJob, Slots, matte_argv, propagate_argv, qc_argv

SPECIFICATION = "jobtemplate-2023-09"
BUNDLE_DIR = "openjd"
TEMPLATE_FILE = "template.json"
BUNDLE_VALUES_FILE = "parameter_values.json"
RUN_PARAMS_FILE = "openjd-params.json"

#: Seconds a cancelled task gets (SIGTERM: actormatte stops after the current frame) before SIGKILL.
CANCEL_GRACE_S = 120


def template(job: FarmJob) -> dict[str, Any]:
    """The job template as a JSON-able mapping."""
    job.check_text(("{{",), "Open Job Description would read as a format string")
    slots = Slots(executable="{{Param.ActorMatte}}", plate="{{Param.Plate}}",
                  work="{{Param.WorkDir}}", out="{{Param.OutDir}}", models="{{Param.ModelsDir}}",
                  masks=tuple(f"{{{{Param.{name}}}}}" for name in _mask_names(job)),
                  frames="{{Param.Frames}}")
    steps = [
        {"name": "propagate",
         "description": "XMem over the whole shot: one task, resumes from its checkpoint",
         "script": _script(propagate_argv(job, slots))},
        {"name": "matte",
         "description": "mattes in contiguous chunks of frames",
         "dependencies": [{"dependsOn": "propagate"}],
         "parameterSpace": {"taskParameterDefinitions": [{
             "name": "Frames", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
             "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}",
                        "rangeConstraint": "CONTIGUOUS"}}]},
         "script": _script(matte_argv(job, slots, "{{Task.Param.Frames}}"))},
    ]
    if job.verify:
        steps.append({
            "name": "verify",
            "description": "every frame present and valid; redoes any that is not",
            "dependencies": [{"dependsOn": "matte"}],
            "script": _script(matte_argv(job, slots, "{{Param.Frames}}", verify=True))})
    before_qc = "verify" if job.verify else "matte"
    steps.append({
        "name": "qc",
        "description": "qc.json of the whole shot" + (" and the preview" if job.preview else ""),
        "dependencies": [{"dependsOn": before_qc}],
        "script": _script(qc_argv(job, slots))})
    return {
        "specificationVersion": SPECIFICATION,
        "extensions": ["TASK_CHUNKING"],
        "name": f"ActorMatte {job.name}",
        "description": f"Per-actor mattes of {job.name}: propagate once, matte in chunks",
        "parameterDefinitions": _parameter_definitions(job),
        "steps": steps,
    }


def parameter_values(job: FarmJob) -> dict[str, str | int]:
    """The job's values of every template parameter."""
    values: dict[str, str | int] = {
        "ActorMatte": job.executable, "Plate": job.plate, "WorkDir": job.work,
        "OutDir": job.out, "ModelsDir": job.models,
        "Frames": f"{job.first}-{job.last}", "ChunkSize": job.chunk,
    }
    for name, mask in zip(_mask_names(job), job.masks, strict=True):
        values[name] = mask.path
    return values


def write(job: FarmJob, job_dir: Path) -> list[Path]:
    """Write the bundle and the ``openjd run`` parameter file; return the paths written."""
    bundle = job_dir / BUNDLE_DIR
    bundle.mkdir(parents=True, exist_ok=True)
    values = parameter_values(job)
    files = {
        bundle / TEMPLATE_FILE: template(job),
        bundle / BUNDLE_VALUES_FILE: {"parameterValues": [{"name": k, "value": v}
                                                          for k, v in values.items()]},
        job_dir / RUN_PARAMS_FILE: values,
    }
    for path, data in files.items():
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return list(files)


def _mask_names(job: FarmJob) -> list[str]:
    return [f"Mask{index}" for index in range(1, len(job.masks) + 1)]


def _script(argv: list[str]) -> dict[str, Any]:
    return {"actions": {"onRun": {
        "command": argv[0], "args": argv[1:],
        "cancelation": {"mode": "NOTIFY_THEN_TERMINATE", "notifyPeriodInSeconds": CANCEL_GRACE_S},
    }}}


def _parameter_definitions(job: FarmJob) -> list[dict[str, Any]]:
    definitions: list[dict[str, Any]] = [
        _path("ActorMatte", "the actormatte program on the worker (installed by install.py)",
              "FILE", "NONE"),
        _path("Plate", "plate sequence pattern (shot.####.exr) or movie", None, None),
        _path("WorkDir", "work folder: propagated masks and the propagation checkpoint",
              "DIRECTORY", "INOUT"),
        _path("OutDir", f"output folder of {job.output_pattern}", "DIRECTORY", "OUT"),
        _path("ModelsDir", "shared models folder (ACTORMATTE_MODELS); nodes never download",
              "DIRECTORY", "NONE"),
    ]
    for name, mask in zip(_mask_names(job), job.masks, strict=True):
        what = "instance-ID map" if mask.actor is None else f"mask of actor {mask.actor}"
        definitions.append(_path(name, f"keyframe {what}", "FILE", "IN"))
    definitions += [
        {"name": "Frames", "type": "STRING", "minLength": 1,
         "default": f"{job.first}-{job.last}",
         "description": "frames of the shot, A-B (propagated as one task)"},
        {"name": "ChunkSize", "type": "INT", "minValue": 1, "default": job.chunk,
         "description": "frames per matte task"},
    ]
    return definitions


def _path(name: str, description: str, object_type: str | None,
          data_flow: str | None) -> dict[str, Any]:
    definition: dict[str, Any] = {"name": name, "type": "PATH", "description": description}
    if object_type is not None:
        definition["objectType"] = object_type
    if data_flow is not None:
        definition["dataFlow"] = data_flow
    return definition
