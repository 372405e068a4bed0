"""Runtime knobs of each pipeline stage, as frozen dataclasses, and the device choice.

Architecture constants fixed by a checkpoint live next to the networks (``propagation/``,
``matting/``); this module only holds what a user or a host may change per job: processing sizes,
the matting schedule, checkpoint spacing, output precision. The CLI and the hosts build these from
flags; :mod:`actormatte.pipeline` reads them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from actormatte.errors import InputError

SCHEDULES = ("window5", "reference")
#: Largest processing short side (--size, --xmem-size): beyond it one frame's activations need
#: tens of GB; 8192 already covers 8K plates at full resolution.
MAX_PROCESSING_SIZE = 8192
RESAMPLES = ("auto", "aligned", "official")
UPSAMPLES = ("bilinear", "guided")
DEVICES = ("auto", "cpu", "cuda")
SPARSE_BACKENDS = ("auto", "torch", "spconv")  # actormatte.matting.sparse_backend
PRECISIONS = ("auto", "fp32", "tf32", "fp16", "bf16")  # actormatte.device


@dataclass(frozen=True)
class ReadConfig:
    """How the plate is read.

    Attributes:
        input_colorspace: OCIO colour space of the plate; ``None`` picks the io default
            (sRGB for integer files, scene-linear for float files).
        start_frame: First frame number of a movie (image sequences keep their own numbers).
    """

    input_colorspace: str | None = None
    start_frame: int = 1


@dataclass(frozen=True)
class PropagateConfig:
    """XMem propagation.

    Attributes:
        size: Short side XMem works at (480 as the official eval); ``-1`` keeps the plate size.
        checkpoint_every: An XMem snapshot in ``<work>/checkpoint`` before every frame that is
            a multiple of it.
        mem_every: XMem's memory-frame interval (official 5); a testing knob.
        max_mid_term_frames: Working-memory frames kept before consolidation (official 10);
            a testing knob.
        min_mid_term_frames: Working-memory frames kept after consolidation (official 5).
        checkpoint_keep: Most checkpoints kept per pass after the run (for corrections);
            beyond it they are thinned far from the pass's end first (docs/PROPAGATION.md).
        backfill: Propagate late actors backwards from their first keyframe
            (``--no-backfill`` turns it off: they are then empty before it).
    """

    size: int = 480
    checkpoint_every: int = 10
    mem_every: int = 5
    max_mid_term_frames: int = 10
    min_mid_term_frames: int = 5
    checkpoint_keep: int = 10
    backfill: bool = True

    def __post_init__(self) -> None:
        if self.size != -1 and self.size < 16:
            raise InputError(f"--xmem-size {self.size} is too small; use 16 or more, or -1 "
                             "to keep the plate size")
        if self.checkpoint_every < 1:
            raise InputError("--checkpoint-every must be 1 or more")
        if self.size > MAX_PROCESSING_SIZE:
            raise InputError(f"--xmem-size {self.size} is beyond the limit of "
                             f"{MAX_PROCESSING_SIZE}; use 480 (default) or -1 for the plate size")
        if self.checkpoint_keep < 1:
            raise InputError("--checkpoint-keep must be 1 or more")


@dataclass(frozen=True)
class MatteConfig:
    """MaGGIe matting.

    Attributes:
        size: Short side MaGGIe works at (576 as the official test transform).
        schedule: ``window5`` (5-frame windows, stride 3, chunkable) or ``reference`` (the
            official 3-frame loop with its previous-prediction carry).
        window: Frames per window of the ``window5`` schedule.
        stride: Frames between window starts of the ``window5`` schedule.
        max_instances: Actors per network forward (MaGGIe has 10 instance slots).
        resample: Plate <-> network transform (``matting/resample.py``): ``aligned``
            (half-pixel centres both ways), ``official`` (reverse with ``align_corners=True``),
            ``auto`` = official for the ``reference`` schedule, aligned otherwise.
        upsample: ``bilinear`` (default) or ``guided``: refine each alpha at plate resolution
            in its uncertain band with the plate as guide (``matting/guided.py``).
        sparse_backend: detail-branch backend: ``auto`` (spconv on CUDA when it imports, else
            the pure-PyTorch one), ``torch`` or ``spconv`` (docs/GPU.md).
        precision: ``auto`` (fp32 on every device), ``fp32``, ``tf32`` (CUDA), ``fp16``
            (CUDA) or ``bf16``: autocast for the dense parts of MaGGIe (``actormatte.device``).
        encoder_reuse: ``window5``: encode each frame once per actor slots and reuse it in
            every window holding it (within 1e-5 of whole-window forwards); off only to
            measure what it saves (``bench/bench_matte_split.py --side-by-side``).
    """

    size: int = 576
    schedule: str = "window5"
    window: int = 5
    stride: int = 3
    max_instances: int = 10
    resample: str = "auto"
    upsample: str = "bilinear"
    sparse_backend: str = "auto"
    precision: str = "auto"
    encoder_reuse: bool = True

    @property
    def resample_mode(self) -> str:
        """``aligned`` or ``official``: ``auto`` resolved by the schedule."""
        if self.resample != "auto":
            return self.resample
        return "official" if self.schedule == "reference" else "aligned"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule {self.schedule!r} is unknown; use one of "
                             f"{', '.join(SCHEDULES)}")
        if self.size < 32:
            raise InputError(f"--size {self.size} is too small; use 32 or more (576 default)")
        if self.size > MAX_PROCESSING_SIZE:
            raise InputError(f"--size {self.size} is beyond the limit of {MAX_PROCESSING_SIZE}; "
                             "use 576 (default) or up to the plate's short side")
        if self.window < 3 or not 1 <= self.stride <= self.window - 2:
            raise InputError("the window must have 3 frames or more and a stride between 1 "
                             "and window - 2")
        if not 1 <= self.max_instances <= 10:
            raise InputError("max_instances must be between 1 and 10 (MaGGIe's instance slots)")
        if self.resample not in RESAMPLES:
            raise InputError(f"--resample {self.resample!r} is unknown; use one of "
                             f"{', '.join(RESAMPLES)}")
        if self.sparse_backend not in SPARSE_BACKENDS:
            raise InputError(f"--sparse-backend {self.sparse_backend!r} is unknown; use one of "
                             f"{', '.join(SPARSE_BACKENDS)}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r} is unknown; use one of "
                             f"{', '.join(PRECISIONS)}")
        if self.upsample not in UPSAMPLES:
            raise InputError(f"--upsample {self.upsample!r} is unknown; use one of "
                             f"{', '.join(UPSAMPLES)}")


@dataclass(frozen=True)
class ExportConfig:
    """EXR output.

    Attributes:
        name: Output file stem (``<out>/<name>.<frame>.exr``); ``None`` = ``<plate stem>_mattes``.
        half: Write half-float channels (float32 when false).
        overwrite: Recompute frames that already exist instead of skipping them.
        exclusive: Scale overlapping actors so Σα ≤ 1 (``--exclusive``).
        residual: Also write ``<residual_name>.A`` = 1 - Σα (``--residual``).
        residual_name: Layer name of the residual (a reserved actor name when it is on).
        compression: EXR compression (``zip`` default; ``dwaa``/``dwab`` are lossy).
        foreground: Write each actor's premultiplied colour ``<layer>.R/.G/.B``.
    """

    name: str | None = None
    half: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        name = self.name
        if name is not None and (not name.strip() or name in (".", "..") or "/" in name
                                 or "\\" in name or any(ord(c) < 32 for c in name)):
            raise InputError(f"--name {name!r} must be a plain file name (no '/', '\\' or '..'; "
                             "the files go to --out): e.g. --name shot010_mattes")
    exclusive: bool = False
    residual: bool = False
    residual_name: str = "rest"
    compression: str = "zip"
    foreground: bool = False


def resolve_device(name: str) -> str:
    """Turn a ``--device`` value into a torch device string.

    Args:
        name: ``auto`` (CUDA when torch sees a GPU), ``cpu`` or ``cuda`` (``cuda:N`` accepted).

    Returns:
        ``"cpu"`` or a ``"cuda..."`` string.

    Raises:
        InputError: Unknown value, or CUDA asked for where torch sees no GPU.
    """
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        from actormatte.device import gpu_fallback_warning, query_nvidia_smi

        warning = gpu_fallback_warning(name, False, query_nvidia_smi())
        if warning:  # a GPU is there but torch cannot use it: say so (a warning event)
            logging.getLogger(__name__).warning(warning)
        return "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: torch sees no CUDA GPU on this machine "
                             f"(torch {torch.__version__}); use --device cpu or --device auto")
        return name
    raise InputError(f"--device {name!r} is unknown; use auto, cpu or cuda")



@dataclass(frozen=True)
class MaskConfig:
    """The ``MASKS`` options (docs/CLI.md): where the keyframe masks come from.

    Attributes:
        masks: ``--masks PATH[@FRAME]`` values.
        actor_masks: ``--actor-mask NAME=PATH[@FRAME]`` values.
        names: ``--names`` (ID-map actors in id order), or ``None``.
        detect: ``--detect``: find people automatically.
        detect_window: Frames searched for people from the start of the range.
        detect_threshold: Detection score threshold.
        detect_max: Most people kept.
        mask_layers: ``--mask-layers FILE[@FRAME]`` values (layered EXRs, layer = actor).
    """

    masks: tuple[str, ...] = ()
    actor_masks: tuple[str, ...] = ()
    names: tuple[str, ...] | None = None
    detect: bool = False
    detect_window: int = 48
    detect_threshold: float = 0.7
    detect_max: int = 10
    mask_layers: tuple[str, ...] = ()
