"""The options and results of the pipeline's entry points (:mod:`actormatte.pipeline`).

Frozen dataclasses, one per entry point, built by the CLI or by any Python caller; the stage
knobs inside them are :mod:`actormatte.config`'s. Re-exported by :mod:`actormatte.pipeline`
(``pipeline.RunOptions`` and so on), where callers find them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig, ReadConfig


@dataclass(frozen=True)
class PropagateOptions:
    """Options of :func:`propagate`.

    Attributes:
        plate: Plate pattern, frame file or movie.
        work: Work folder.
        masks: Keyframe masks.
        frames: ``(first, last)`` or ``None`` for the plate's range.
        models: Models folder, or ``None`` for the default.
        device: ``auto``, ``cpu`` or ``cuda``.
        read: How the plate is read.
        propagate: XMem knobs.
        overwrite: Start over even if the work folder holds this job.
    """

    plate: str
    work: str
    masks: MaskConfig
    frames: tuple[int, int] | None = None
    models: str | None = None
    device: str = "auto"
    read: ReadConfig = field(default_factory=ReadConfig)
    propagate: PropagateConfig = field(default_factory=PropagateConfig)
    overwrite: bool = False


@dataclass(frozen=True)
class MatteOptions:
    """Options of :func:`matte`.

    Attributes:
        work: Work folder written by :func:`propagate`.
        out: Output folder.
        frames: ``(first, last)`` within the propagated range, or ``None`` for all of it.
        models: Models folder, or ``None`` for the default.
        device: ``auto``, ``cpu`` or ``cuda``.
        matte: MaGGIe knobs.
        export: EXR knobs.
    """

    work: str
    out: str
    frames: tuple[int, int] | None = None
    models: str | None = None
    device: str = "auto"
    matte: MatteConfig = field(default_factory=MatteConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass(frozen=True)
class RunOptions:
    """Options of :func:`run` (see :class:`PropagateOptions` and :class:`MatteOptions`).

    Attributes:
        work: Work folder; ``None`` = ``<out>/.actormatte/<name>``.
    """

    plate: str
    out: str
    masks: MaskConfig
    frames: tuple[int, int] | None = None
    models: str | None = None
    device: str = "auto"
    read: ReadConfig = field(default_factory=ReadConfig)
    propagate: PropagateConfig = field(default_factory=PropagateConfig)
    matte: MatteConfig = field(default_factory=MatteConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    work: str | None = None


@dataclass(frozen=True)
class PropagateResult:
    """What :func:`propagate` did.

    Attributes:
        work: The work folder.
        first: First propagated frame.
        last: Last propagated frame.
        frames_propagated: Frames computed by this call.
        frames_resumed: Frames already done by an earlier call.
    """

    work: str
    first: int
    last: int
    frames_propagated: int
    frames_resumed: int


@dataclass(frozen=True)
class RunResult:
    """What :func:`matte` or :func:`run` wrote.

    Attributes:
        frames_written: Frames computed and written.
        frames_skipped: Frames already complete on disk.
        out: Output folder.
        pattern: ``<out>/<name>.####.exr``.
        first: First frame of the range.
        last: Last frame of the range.
        layers: Layer names in actor order.
        work: The work folder used.
        frames_propagated: ``run``: ID maps computed by XMem in this call (any pass).
        frames_resumed: ``run``: ID maps reused from an earlier call (a correction reuses
            those before its last valid checkpoint).
    """

    frames_written: int
    frames_skipped: int
    out: str
    pattern: str
    first: int
    last: int
    layers: list[str]
    work: str
    frames_propagated: int = 0
    frames_resumed: int = 0
