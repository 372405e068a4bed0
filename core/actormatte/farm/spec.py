"""What a farm job runs: the shot's paths and options, and the ``actormatte`` command lines.

Built by :mod:`actormatte.cli.farm_cmd` from the ``farm`` flags; read by the three engine writers
(:mod:`actormatte.farm.openjd`, :mod:`actormatte.farm.opencue`, :mod:`actormatte.farm.deadline`).
Every job has the same shape (CONVENTIONS.md, "Farm"):

1. ``propagate``: one task over the whole range (sequential XMem; resumes from its checkpoint when
   the engine retries it);
2. ``matte``: contiguous chunks of frames (``actormatte matte --frames A-B``), each depending on
   step 1; the matte stage reads the window context around a chunk itself, so chunk outputs equal
   a one-machine run;
3. ``verify`` (optional): ``actormatte matte`` over the whole range, which skips every complete
   frame and redoes any frame that is missing or damaged;
4. ``qc``: one task after every matte chunk (and ``verify``): ``actormatte preview --qc-only``
   writes the shot's ``qc.json`` (the temporal change crosses chunk boundaries, so no chunk can),
   from the per-frame records the chunks left, reading only frames whose record is stale
   (:mod:`actormatte.qc_records`); with ``preview`` it also writes the overlay pictures.

The writers differ only in how paths and frame numbers reach the command: OpenJD substitutes
job parameters (``{{Param.Plate}}``), OpenCue and Deadline substitute frame tokens in a command
string. :func:`propagate_argv` and :func:`matte_argv` take those spellings as :class:`Slots`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from actormatte.errors import InputError


@dataclass(frozen=True)
class MaskArg:
    """One ``--masks PATH[@FRAME]`` or ``--actor-mask NAME=PATH[@FRAME]`` argument.

    Attributes:
        path: Absolute path of the mask file.
        frame: Keyframe, or ``None`` for the first frame of the range.
        actor: Actor name for ``--actor-mask``; ``None`` for an ID map (``--masks``).
    """

    path: str
    frame: int | None = None
    actor: str | None = None

    def argv(self, path: str) -> list[str]:
        """The flag and its value, with ``path`` standing for the file."""
        value = path if self.frame is None else f"{path}@{self.frame}"
        if self.actor is None:
            return ["--masks", value]
        return ["--actor-mask", f"{self.actor}={value}"]


@dataclass(frozen=True)
class FarmJob:
    """Everything the job descriptions of one shot need.

    Attributes:
        name: Output stem (``<out>/<name>.####.exr``) and job name.
        executable: The ``actormatte`` program as the farm nodes see it.
        plate: Absolute plate pattern (``shot.####.exr``) or movie path.
        work: Absolute work folder (propagated masks, checkpoint).
        out: Absolute output folder.
        models: Absolute models folder shared by the nodes.
        first: First frame of the shot.
        last: Last frame of the shot.
        chunk: Frames per matte task.
        padding: Frame-number padding of the output files.
        masks: Keyframe mask arguments.
        propagate_options: Other ``propagate`` flags (no paths, no frames).
        matte_options: Other ``matte`` flags (no paths, no frames).
        overwrite: Matte tasks recompute frames that already exist (never the ``verify`` step).
        verify: Add the ``verify`` step.
        priority: Engine priority (0-100).
        preview: The last step also writes the preview pictures (PNGs, movie, contact sheet).
    """

    name: str
    executable: str
    plate: str
    work: str
    out: str
    models: str
    first: int
    last: int
    chunk: int
    padding: int = 4
    masks: tuple[MaskArg, ...] = ()
    propagate_options: tuple[str, ...] = ()
    matte_options: tuple[str, ...] = ()
    overwrite: bool = False
    verify: bool = False
    priority: int = 50
    preview: bool = False

    @property
    def num_frames(self) -> int:
        """Frames in the shot."""
        return self.last - self.first + 1

    @property
    def output_pattern(self) -> str:
        """``<name>.####.exr`` (the file names inside ``out``)."""
        return f"{self.name}.{'#' * self.padding}.exr"

    def slots(self) -> Slots:
        """The job's own values in every slot (engines that write paths literally)."""
        return Slots(executable=self.executable, plate=self.plate, work=self.work, out=self.out,
                     models=self.models, masks=tuple(m.path for m in self.masks),
                     frames=f"{self.first}-{self.last}")

    def check_text(self, forbidden: tuple[str, ...], why: str) -> None:
        """Raise :class:`InputError` if a path or option contains one of ``forbidden``."""
        values = [self.name, self.executable, self.plate, self.work, self.out, self.models,
                  *(m.path for m in self.masks), *(m.actor or "" for m in self.masks),
                  *self.propagate_options, *self.matte_options]
        for value in values:
            for bad in forbidden:
                if bad in value:
                    raise InputError(f"{value!r} contains {bad!r}, which {why}; rename it")


@dataclass(frozen=True)
class Slots:
    """How each variable part of a command is spelled in one engine's job description.

    Attributes:
        executable: The ``actormatte`` program.
        plate: The plate.
        work: The work folder.
        out: The output folder.
        models: The models folder.
        masks: One spelling per :class:`MaskArg`, in order.
        frames: The whole range (propagate, verify).
    """

    executable: str
    plate: str
    work: str
    out: str
    models: str
    masks: tuple[str, ...]
    frames: str

    def with_frames(self, frames: str) -> Slots:
        """The same slots with another whole-range spelling."""
        return replace(self, frames=frames)


def propagate_argv(job: FarmJob, slots: Slots) -> list[str]:
    """``actormatte propagate`` over the whole range."""
    argv = [slots.executable, "propagate", slots.plate, "--work", slots.work,
            "--frames", slots.frames]
    for mask, spelled in zip(job.masks, slots.masks, strict=True):
        argv += mask.argv(spelled)
    return argv + ["--models", slots.models, *job.propagate_options, "--no-progress-bar"]


def matte_argv(job: FarmJob, slots: Slots, frames: str, *, verify: bool = False) -> list[str]:
    """``actormatte matte --frames <frames>``: a chunk, or the whole range for ``verify``.

    The ``verify`` command never passes ``--overwrite``: it only redoes missing or damaged frames.
    """
    overwrite = ["--overwrite"] if job.overwrite and not verify else []
    return [slots.executable, "matte", "--work", slots.work, "--out", slots.out,
            "--frames", frames, "--models", slots.models, *job.matte_options, *overwrite,
            "--no-progress-bar"]


def qc_argv(job: FarmJob, slots: Slots) -> list[str]:
    """``actormatte preview --qc-only`` (or the whole preview) over the whole range: the last step.

    The plate is passed (not read from the mattes' metadata) so path mapping applies to it too.
    """
    what = ["--plate", slots.plate] if job.preview else ["--qc-only"]
    return [slots.executable, "preview", "--out", slots.out, "--name", job.name,
            "--work", slots.work, "--frames", slots.frames, *what, "--no-progress-bar"]
