"""Comp-ready matte EXRs: exclusive coverage, the residual layer, per-actor colour, compression.

Called by :mod:`actormatte.pipeline` (``make_writer`` where the matte writer is built). A
:class:`CompWriter` is a :class:`~actormatte.export.exr.MatteWriter` (same files, atomic writes,
resume checks over the full channel set) whose frames can also carry:

- ``--exclusive``: overlapping actors scaled so Σα ≤ 1 (:mod:`actormatte.export.coverage`);
- ``--residual``: one more layer ``rest.A`` = 1 - Σα (``rest`` is then a reserved actor name);
- ``--foreground``: ``<layer>.R/.G/.B``, the actor's premultiplied colour in the plate's own
  colour space (:mod:`actormatte.export.foreground`), read from the plate at write time;
- ``--compression``: zip (default), zips, piz, none (lossless) or dwaa/dwab (lossy: a warning).

:attr:`CompWriter.layers` stays the actor layers (what the matte stage maps its alphas to);
:attr:`CompWriter.file_layers` adds the residual layer, and the file's ``actormatte/layers``
lists every layer written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import OpenImageIO as oiio

from actormatte.errors import ActorMatteError, InputError, ShapeError
from actormatte.export import coverage, foreground
from actormatte.export.exr import UNION_CHANNEL, MatteWriter
from actormatte.export.layers import channel_name

logger = logging.getLogger(__name__)

COMPRESSIONS = ("zip", "zips", "piz", "dwaa", "dwab", "none")
LOSSY_COMPRESSIONS = ("dwaa", "dwab")
_HALF_MAX = 65504.0

#: ``plate_rgb(frame) -> (H, W, 3) float32`` in the plate's own colour space.
PlateReader = Callable[[int], np.ndarray]


def check_comp_options(export: Any, layers: Sequence[str], plate_is_sequence: bool) -> None:
    """Refuse comp options that cannot work, before anything is written (exit 2).

    Args:
        export: The :class:`~actormatte.config.ExportConfig`.
        layers: The actor layer names.
        plate_is_sequence: Whether the plate is an image sequence (``--foreground`` needs one).

    Raises:
        InputError: Unknown compression, an actor named like the residual layer, or
            ``--foreground`` on a movie plate.
    """
    compression = getattr(export, "compression", "zip")
    if compression not in COMPRESSIONS:
        raise InputError(f"--compression {compression!r} is unknown; use one of "
                         f"{', '.join(COMPRESSIONS)}")
    name = getattr(export, "residual_name", coverage.RESIDUAL_LAYER)
    if getattr(export, "residual", False) and name in layers:
        raise InputError(f"an actor's layer is named '{name}', which --residual reserves for "
                         "1 - Σα; rename the actor (--names / --actor-mask NAME=...)")
    if getattr(export, "foreground", False) and not plate_is_sequence:
        raise InputError("--foreground needs an image-sequence plate (EXR/DPX/TIFF/PNG); "
                         "convert the movie to a sequence first")


class CompWriter(MatteWriter):
    """A :class:`MatteWriter` that can add exclusive coverage, ``rest.A`` and ``<layer>.RGB``.

    Args:
        out_dir: Output folder.
        name: File stem.
        layers: Actor layer names in actor order.
        width: Plate width.
        height: Plate height.
        exclusive: Scale overlapping actors so Σα ≤ 1.
        residual: Write the residual layer ``residual_name``.
        residual_name: Its layer name.
        compression: One of :data:`COMPRESSIONS`.
        plate_rgb: Plate reader for ``--foreground`` (``None``: no colour channels).
        margin: Context pixels around each actor for the colour estimate.
        **kwargs: ``padding``, ``half``, ``metadata``, ``union`` as for :class:`MatteWriter`.
    """

    def __init__(self, out_dir: str | os.PathLike[str], name: str, layers: Sequence[str],
                 width: int, height: int, *, exclusive: bool = False, residual: bool = False,
                 residual_name: str = coverage.RESIDUAL_LAYER, compression: str = "zip",
                 plate_rgb: PlateReader | None = None,
                 margin: int = foreground.DEFAULT_MARGIN, **kwargs: Any) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        file_layers = [*layers, residual_name] if residual else list(layers)
        metadata = dict(kwargs.pop("metadata", {}))
        metadata.update({"exclusive": str(exclusive).lower(),
                         "residual": residual_name if residual else "",
                         "foreground": "premultiplied" if plate_rgb is not None else ""})
        super().__init__(out_dir, name, file_layers, width, height, metadata=metadata, **kwargs)
        self.file_layers = self.layers
        self.layers = tuple(layers)
        self.exclusive, self.residual_name = exclusive, (residual_name if residual else None)
        self.compression, self.plate_rgb, self.margin = compression, plate_rgb, margin
        if plate_rgb is not None:
            colour = tuple(f"{layer}.{c}" for layer in self.layers for c in ("R", "G", "B"))
            self.channels = self.channels + colour
        if compression in LOSSY_COMPRESSIONS:
            logger.warning("--compression %s is lossy: it damages mattes (edges, low alphas); "
                           "use zip, zips or piz for deliverables", compression)

    def _stack(self, frame: int, alphas: Mapping[str, np.ndarray]) -> np.ndarray:
        """Actor alphas -> every channel of the file, in :attr:`channels` order.

        Shape:
            alphas: layer -> (H, W). Returns (H, W, C).
        """
        actors = self._actor_stack(frame, alphas)  # (N, H, W)
        if self.exclusive:
            actors = coverage.make_exclusive(actors, self.half)
        planes = {channel_name(layer): actors[k] for k, layer in enumerate(self.layers)}
        if self.residual_name is not None:
            planes[channel_name(self.residual_name)] = coverage.residual(actors, self.half)
        if self.union:
            planes[UNION_CHANNEL] = actors.max(axis=0)
        if self.plate_rgb is not None:
            plate = self.plate_rgb(frame)
            for k, layer in enumerate(self.layers):
                colour = foreground.estimate_foreground(plate, actors[k], margin=self.margin)
                if self.half:  # beyond half's range would be inf in the file
                    colour = np.clip(colour, -_HALF_MAX, _HALF_MAX)
                for c, suffix in enumerate(("R", "G", "B")):
                    planes[f"{layer}.{suffix}"] = colour[:, :, c]
        return np.stack([planes[channel] for channel in self.channels], axis=-1)

    def _actor_stack(self, frame: int, alphas: Mapping[str, np.ndarray]) -> np.ndarray:
        unknown = sorted(set(alphas) - set(self.layers))
        if unknown:
            raise ActorMatteError(f"frame {frame}: mattes for unknown layers {unknown} "
                                  f"(expected {self.layers}); this is a bug, please report it")
        actors = np.zeros((len(self.layers), self.height, self.width), dtype=np.float32)
        for k, layer in enumerate(self.layers):
            alpha = alphas.get(layer)
            if alpha is None:
                continue
            if alpha.shape != (self.height, self.width):
                raise ShapeError(f"frame {frame}: matte '{layer}' is {alpha.shape}, expected "
                                 f"{(self.height, self.width)}")
            if not np.all(np.isfinite(alpha)):
                raise ActorMatteError(f"frame {frame}: matte '{layer}' has NaN or inf values")
            actors[k] = np.clip(alpha, 0.0, 1.0)
        return actors

    def _spec(self, *args: Any, **kwargs: Any) -> oiio.ImageSpec:
        spec = super()._spec(*args, **kwargs)  # the plain writer's header, then our compression
        spec.attribute("compression", self.compression)
        return spec


def make_writer(export: Any, plate: Any, out_dir: str | os.PathLike[str], name: str,
                layers: Sequence[str], width: int, height: int, **kwargs: Any) -> MatteWriter:
    """The writer of a job: a plain :class:`MatteWriter` unless a comp option is on.

    Args:
        export: The :class:`~actormatte.config.ExportConfig` (comp fields read with defaults).
        plate: The opened :class:`~actormatte.io.Plate` (``read(frame)`` gives its own colours).
        out_dir: Output folder.
        name: File stem.
        layers: Actor layers in actor order.
        width: Plate width.
        height: Plate height.
        **kwargs: ``padding``, ``half``, ``metadata``, ``union``.

    Raises:
        InputError: See :func:`check_comp_options`.
    """
    from actormatte.io import ImageSequencePlate

    check_comp_options(export, layers, isinstance(plate, ImageSequencePlate))
    exclusive = bool(getattr(export, "exclusive", False))
    residual = bool(getattr(export, "residual", False))
    compression = str(getattr(export, "compression", "zip"))
    colour = bool(getattr(export, "foreground", False))
    if not (exclusive or residual or colour or compression != "zip"):
        return MatteWriter(out_dir, name, layers, width, height, **kwargs)
    return CompWriter(out_dir, name, layers, width, height, exclusive=exclusive,
                      residual=residual,
                      residual_name=getattr(export, "residual_name", coverage.RESIDUAL_LAYER),
                      compression=compression, plate_rgb=plate.read if colour else None,
                      **kwargs)


def done_fields(pattern: str, frame: int) -> dict[str, Any]:
    """What the ``done`` event adds for hosts when a sequence carries comp layers.

    Reads the header of one written frame (no pixels). Returns ``{}`` for plain mattes, else
    ``{"residual_layer": "rest" | None, "colour_layers": [...], "exclusive": bool,
    "compression": "piz"}`` (``colour_layers``: the actors with ``<layer>.R/.G/.B``).
    """
    from actormatte.io.sequence import parse_plate_pattern

    path = parse_plate_pattern(pattern).path_for(frame)
    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        oiio.geterror()
        return {}
    try:
        spec = inp.spec()
    finally:
        inp.close()
    prefix = "actormatte/"
    residual = spec.get_string_attribute(prefix + "residual")
    exclusive = spec.get_string_attribute(prefix + "exclusive")
    compression = spec.get_string_attribute("compression")
    if not (residual or exclusive or spec.get_string_attribute(prefix + "foreground")):
        return {}
    names = {str(n) for n in spec.channelnames}
    layers = json.loads(spec.get_string_attribute(prefix + "layers") or "[]")
    colour = [layer for layer in layers
              if {f"{layer}.R", f"{layer}.G", f"{layer}.B"} <= names]
    return {"residual_layer": residual or None, "colour_layers": colour,
            "exclusive": exclusive == "true", "compression": compression}
