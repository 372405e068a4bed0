"""Keyframe masks as a layered EXR: one layer per actor, the layer name is the actor's name.

This is what the hosts pre-render from the artist's drawing (a Nuke Roto into per-actor layers,
a Blender Mask datablock's layers) and what ``--mask-layers FILE[@FRAME]`` reads. Called by
:func:`actormatte.masks.keyframes.load_keyframes`, which settles the actors: a layer named like
an ID-map actor (``--names``) or an ``--actor-mask`` is that actor, a new name is a new actor.

Rules (docs/CLI.md, MASKS; CONVENTIONS.md, "Keyframe masks as a layered EXR"):

* A layer is ``bob.alpha``, ``bob.A`` or ``bob.a`` (with or without colour channels beside it),
  or a bare single channel ``bob``. A layer without an alpha channel must have exactly one
  channel (``bob.mask``, ``bob.Y``); several channels and no alpha is refused (which one is it?).
* The root ``R G B A`` / ``Y`` / ``Z`` channels (Nuke's ``rgba``, ``depth``) are not actors and
  are ignored: a host writes them when it renders "all" channels.
* A multi-part EXR (Blender 5 writes one part per layer) is read part by part.
* Three-level names (``matte.bob.A``) are refused: they behave differently in Nuke and Blender.
* Values above 0.5 are the actor. NaN or infinite values are refused.
* Windows are placed as every mask file is (:mod:`actormatte.masks.mask_files`): a display window
  of the plate's format places the data window by its coordinates (any bbox, also one reaching
  into or past the overscan: what lies outside the plate's working window is dropped); a file
  without windows the size of the plate's working window or of its own data window (Blender
  renders what it shows: the data window) covers that window. Pixels outside the data window
  are background.
* A layer with no pixel above 0.5 is no keyframe for that actor (a host renders every layer at
  every keyframe, so an actor off screen there is empty); it is skipped with a log line. A file
  whose layers are all empty is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from actormatte.errors import InputError
from actormatte.io.geometry import spec_windows
from actormatte.masks.mask_files import place_in_plate

logger = logging.getLogger(__name__)

_ALPHA_NAMES = ("alpha", "A", "a")
_ROOT_CHANNELS = {"R", "G", "B", "A", "Y", "Z"}
_FLAG = "--mask-layers"


def parse_mask_layers_arg(text: str) -> tuple[Path, int | None]:
    """Parse ``--mask-layers FILE[@FRAME]`` (an ``@`` after the last separator starts a frame).

    Returns:
        The path and the keyframe (``None``: the first frame of the range).

    Raises:
        InputError: The text is empty or the frame is not an integer.
    """
    from actormatte.masks.keyframes import _split_frame  # keyframes imports this module

    if not text.strip():
        raise InputError(f"{_FLAG} needs a file: {_FLAG} masks.exr or {_FLAG} masks.exr@1001")
    return _split_frame(text, _FLAG)


def read_layered_exr(path: Path, plate_size: tuple[int, int],
                     flag: str = _FLAG) -> dict[str, np.ndarray]:
    """Read all channels of an EXR, each placed in the plate's working window.

    A multi-part EXR (Blender 5's multilayer File Output writes one part per layer) is read part
    by part; every part must share the display window and channel names must be unique.

    Shape:
        Each channel (H, W) float32 over the working window (0 outside the file's data window).

    Raises:
        InputError: Missing or unreadable file, a format that is not the plate's, parts with
            different display windows, a channel in two parts.
    """
    import OpenImageIO as oiio  # a core dependency; imported here to keep module import light

    if not path.is_file():
        raise InputError(f"{flag} {path}: no such file; check the path")
    image_in = oiio.ImageInput.open(str(path))
    if image_in is None:
        raise InputError(f"{flag} {path}: cannot read it ({oiio.geterror()}); write the masks "
                         "as a layered OpenEXR file")
    channels: dict[str, np.ndarray] = {}
    display = None
    try:
        part = 0
        while image_in.seek_subimage(part, 0):
            spec = image_in.spec()
            windows = spec_windows(spec)
            if display is not None and windows[1] != display:
                raise InputError(f"{flag} {path}: part {part} has another display window "
                                 f"({windows[1]}) than part 0 ({display}); write one format")
            display = windows[1]
            pixels = image_in.read_image(part, 0, 0, spec.nchannels, oiio.FLOAT)
            if pixels is None:
                raise InputError(f"{flag} {path}: cannot decode its pixels; write it again")
            pixels = np.asarray(pixels, np.float32).reshape(spec.height, spec.width, -1)
            for index, name in enumerate(spec.channelnames):
                if name in channels:
                    raise InputError(f"{flag} {path}: channel {name!r} is in two parts; name "
                                     "each actor's layer once")
                channels[name] = place_in_plate(pixels[:, :, index], windows, plate_size,
                                                flag, path)
            part += 1
    finally:
        image_in.close()
    return channels


def group_layers(channel_names: list[str], path: Path, flag: str = _FLAG) -> dict[str, str]:
    """Which channel holds each actor's mask: layer name -> channel name.

    Raises:
        InputError: A bad layer (three-level name, several channels and no alpha, an empty
            name, a bare channel clashing with a layer); the message names it.
    """
    members: dict[str, list[str]] = {}
    for name in channel_names:
        if "." not in name:
            if name not in _ROOT_CHANNELS:
                members.setdefault(name, []).append(name)
            continue
        layer, _, channel = name.rpartition(".")
        if not layer or not channel:
            raise InputError(f"{flag} {path}: channel {name!r} has an empty layer or channel "
                             "name; name it <actor>.alpha")
        if "." in layer:
            raise InputError(f"{flag} {path}: layer {layer!r} (channel {name!r}) has three "
                             "levels; name each actor's channel <actor>.alpha")
        members.setdefault(layer, []).append(name)
    chosen = {}
    for layer, names in members.items():
        alphas = [n for n in names if n.rpartition(".")[2] in _ALPHA_NAMES and n != layer]
        if layer in names and len(names) > 1:
            raise InputError(f"{flag} {path}: layer {layer!r} is both a bare channel and a "
                             f"layer ({', '.join(sorted(names))}); keep one of them")
        if len(alphas) > 1:
            raise InputError(f"{flag} {path}: layer {layer!r} has several alpha channels "
                             f"({', '.join(sorted(alphas))}); keep one")
        if alphas:
            chosen[layer] = alphas[0]
        elif len(names) == 1:
            chosen[layer] = names[0]
        else:
            raise InputError(f"{flag} {path}: layer {layer!r} has channels "
                             f"{', '.join(sorted(names))} but no alpha; put the actor's mask in "
                             f"{layer}.alpha")
    return chosen


def read_mask_layers(path: Path, plate_size: tuple[int, int],
                     flag: str = _FLAG) -> dict[str, np.ndarray]:
    """Read a layered keyframe-mask EXR: actor name -> mask, in the file's channel order.

    Args:
        path: The EXR.
        plate_size: Plate (width, height), a :class:`~actormatte.io.geometry.PlateSpace` for
            plates with windows; the file is placed by the module docstring's rules.
        flag: The option named in error messages.

    Returns:
        Non-empty masks only (see the module docstring).

    Shape:
        Each mask (H, W) bool at plate resolution.

    Raises:
        InputError: Unreadable file, wrong size, a bad layer (named), no actor layer at all.
    """
    channels = read_layered_exr(path, plate_size, flag)
    chosen = group_layers(list(channels), path, flag)
    if not chosen:
        raise InputError(f"{flag} {path}: no actor layer (only {', '.join(channels)}); "
                         "put each actor's mask in its own layer, e.g. bob.alpha")
    masks = {}
    for layer, channel in chosen.items():
        values = channels[channel]
        if not np.isfinite(values).all():
            raise InputError(f"{flag} {path}: layer {layer!r} ({channel}) has NaN or infinite "
                             "values; a mask is 0 (background) to 1 (actor)")
        mask = values > 0.5
        if mask.any():
            masks[layer] = mask
        else:
            logger.info("%s %s: layer %s is empty there; not a keyframe for that actor",
                        flag, path, layer)
    if not masks:
        raise InputError(f"{flag} {path}: every layer is empty (no pixel above 0.5: "
                         f"{', '.join(chosen)}); draw the actors or drop this {flag}")
    return masks
