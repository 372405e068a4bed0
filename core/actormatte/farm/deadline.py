"""Deadline 10 job-info and plugin-info files for CommandLine-plugin jobs, and how to submit them.

Called by :func:`actormatte.farm.write_jobs`; writes into ``<job-dir>/deadline/``:

- ``propagate.job.info`` / ``propagate.plugin.info``: ``Frames=<whole range>`` with
  ``ChunkSize=<frame count>`` (one task) and ``MachineLimit=1``;
- ``matte.job.info`` / ``matte.plugin.info``: ``Frames=<whole range>``, ``ChunkSize=--chunk``;
  the CommandLine plugin replaces ``<STARTFRAME>``/``<ENDFRAME>`` in ``Arguments=`` per task;
- ``verify.*`` with ``--verify``;
- ``qc.*``: one task (``preview --qc-only``, or the whole preview with ``--preview``) after the
  rest: the shot's ``qc.json``;
- ``submit.args``: a ``deadlinecommand`` arguments file (one argument per line) running
  ``-SubmitMultipleJobs -Dependent -Job ... -Job ...``, which makes each job depend on the one
  before it (Deadline knows a job's ID only after submission, so ``JobDependencies=`` cannot be
  written in advance);
- ``submit.sh``: the same by hand: submits ``propagate``, reads ``JobID=`` from
  ``deadlinecommand``'s output and submits the next job with ``JobDependencies=<that id>``.

Values are raw (``key=value``, one per line; only the first ``=`` splits). ``Executable=`` is a
plain path. ``Arguments=`` is one command-line string that Deadline splits with the Windows/.NET
rules on every OS, so arguments are quoted with :func:`subprocess.list2cmdline` (double quotes
around any argument with spaces).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from actormatte.farm.spec import FarmJob, matte_argv, propagate_argv, qc_argv

SPEC_DIR = "deadline"
ARGS_FILE = "submit.args"
SCRIPT_FILE = "submit.sh"

#: ``key=value`` pairs of one info file, in order.
Pairs = list[tuple[str, str]]


def info_text(pairs: Pairs) -> str:
    """``key=value`` lines."""
    return "".join(f"{key}={value}\n" for key, value in pairs)


def jobs(job: FarmJob, pool: str | None = None,
         group: str | None = None) -> dict[str, tuple[Pairs, Pairs]]:
    """``{step: (job info pairs, plugin info pairs)}`` in submission (dependency) order."""
    job.check_text(("\n", "\r"), "cannot be written into a Deadline info file")
    slots = job.slots()
    frames = f"{job.first}-{job.last}"
    steps = {
        "propagate": (propagate_argv(job, slots), job.num_frames, True),
        "matte": (matte_argv(job, slots, "<STARTFRAME>-<ENDFRAME>"), job.chunk, False),
    }
    if job.verify:
        steps["verify"] = (matte_argv(job, slots, frames, verify=True), job.num_frames, True)
    steps["qc"] = (qc_argv(job, slots), job.num_frames, True)
    result = {}
    for step, (argv, chunk, one_machine) in steps.items():
        job_info = [("Plugin", "CommandLine"), ("Name", f"{job.name} {step}"),
                    ("BatchName", f"ActorMatte {job.name}"), ("Frames", frames),
                    ("ChunkSize", str(chunk)), ("Priority", str(job.priority))]
        if one_machine:
            job_info.append(("MachineLimit", "1"))
        if pool:
            job_info.append(("Pool", pool))
        if group:
            job_info.append(("Group", group))
        if step != "propagate":
            job_info += [("OutputDirectory0", job.out), ("OutputFilename0", job.output_pattern)]
        plugin_info = [("Executable", argv[0]), ("Arguments", subprocess.list2cmdline(argv[1:])),
                       ("Shell", "default"), ("ShellExecute", "False"),
                       ("SingleFramesOnly", "False")]
        result[step] = (job_info, plugin_info)
    return result


def write(job: FarmJob, job_dir: Path, pool: str | None = None,
          group: str | None = None) -> list[Path]:
    """Write the info files and both submission helpers; return the paths written."""
    folder = (job_dir / SPEC_DIR).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    args = ["-SubmitMultipleJobs", "-Dependent"]
    for step, (job_info, plugin_info) in jobs(job, pool, group).items():
        job_path, plugin_path = folder / f"{step}.job.info", folder / f"{step}.plugin.info"
        job_path.write_text(info_text(job_info), encoding="utf-8")
        plugin_path.write_text(info_text(plugin_info), encoding="utf-8")
        written += [job_path, plugin_path]
        args += ["-Job", str(job_path), str(plugin_path)]
    args_path = folder / ARGS_FILE
    args_path.write_text("".join(f"{arg}\n" for arg in args), encoding="utf-8")
    script_path = folder / SCRIPT_FILE
    script_path.write_text(_submit_script(list(jobs(job, pool, group))), encoding="utf-8")
    script_path.chmod(0o755)
    return [*written, args_path, script_path]


def _submit_script(steps: list[str]) -> str:
    """A POSIX shell script submitting ``steps`` in order, each depending on the one before."""
    lines = [
        "#!/bin/sh",
        "# Submits the ActorMatte jobs in order; each depends on the job before it.",
        "# Needs deadlinecommand on PATH (or DEADLINECOMMAND=/path/to/deadlinecommand).",
        "set -eu",
        'here=$(cd "$(dirname "$0")" && pwd)',
        'dc=${DEADLINECOMMAND:-deadlinecommand}',
        'previous=""',
        "submit() {",
        '    info="$here/$1.job.info"',
        '    if [ -n "$previous" ]; then',
        '        info="$here/$1.submitted.job.info"',
        '        { cat "$here/$1.job.info"; echo "JobDependencies=$previous"; } > "$info"',
        "    fi",
        '    result=$("$dc" "$info" "$here/$1.plugin.info")',
        '    echo "$result"',
        "    previous=$(printf '%s\\n' \"$result\" | sed -n 's/^JobID=//p' | tr -d '\\r' "
        "| head -n 1)",
        '    if [ -z "$previous" ]; then echo "submitting $1 failed (no JobID)" >&2; exit 1; fi',
        "}",
        *(f"submit {shlex.quote(step)}" for step in steps),
    ]
    return "\n".join(lines) + "\n"
