"""Keyframe instance masks: the ``MASKS`` options of the CLI turned into one :class:`KeyframeSet`.

The CLI parses ``--masks PATH[@FRAME]`` and ``--actor-mask NAME=PATH[@FRAME]`` with
:func:`parse_mask_arg` / :func:`parse_actor_mask_arg`; the pipeline calls :func:`load_keyframes`
(or :func:`keyframes_from_masks` for ``--detect`` results) and hands the set to propagation.

Rules (docs/CLI.md, MASKS):

* An ID map is a PNG, EXR or TIFF whose first channel holds integer ids: 0 = background, k = actor
  k. Float files (EXR) are rounded; a value more than 1e-3 away from an integer is rejected.
  An RGB(A) map whose channels differ is colour-coded (one actor per colour, ids by first
  appearance); maps that look like anti-aliased mattes are refused (:mod:`.id_maps`).
  JPEG is refused because lossy compression changes ids along every edge.
* ID k in several ID maps is the same actor (a re-annotation at a later frame, or a correction).
* ``names`` names the ID-map actors in ascending id order (ids 1, 3 with ``bob,ann`` give 1 = bob,
  3 = ann). Ids left without a name get ``actor_<id>`` (zero-padded to two digits, so ids stay
  visible in the name) and a log warning; more names than ids is an error.
* An actor mask is one image per actor, binary after normalising to 0..1 (> 0.5). Its alpha
  channel is used when the file has a non-constant one, otherwise its first channel. An actor-mask
  name equal to an ID-map actor's name is that actor (a correction); a new name is a new actor
  whose id follows the largest ID-map id, in order of first appearance.
* Every mask must have the plate's size, every keyframe must lie in the frame range, an actor mask
  must not be empty, and one actor gets at most one mask per frame.

Actor names are not checked for EXR layer rules here: ``actormatte.export.make_layer_names`` does
that. Overlapping masks within one keyframe are allowed; :meth:`Keyframe.label_map` resolves them
(the higher id wins) for consumers that need one label per pixel.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actormatte.errors import InputError
from actormatte.masks.id_maps import IdMapReader
from actormatte.masks.mask_files import read_actor_mask, read_id_map  # noqa: F401 - re-exported
from actormatte.masks.mask_layers import read_mask_layers

logger = logging.getLogger(__name__)

_FRAME_RE = re.compile(r"^-?\d+$")
#: More distinct ids than this in one ID map means the file is a picture, not an ID map.
_MAX_IDS = 64


@dataclass(frozen=True)
class ActorSpec:
    """One actor of the shot.

    Attributes:
        name: Display name (the exporter derives the EXR layer from it).
        id: 1-based actor id, stable across the shot; the id in ID maps and in propagated masks.
    """

    name: str
    id: int


@dataclass(frozen=True)
class Keyframe:
    """The annotated actors of one frame.

    Attributes:
        frame: Plate frame number.
        masks: Actor id -> (H, W) bool mask at plate resolution, for the actors annotated here.
    """

    frame: int
    masks: dict[int, np.ndarray] = field(hash=False)

    def label_map(self) -> np.ndarray:
        """One label per pixel: 0 background, else the actor id (the higher id wins overlaps).

        Shape:
            (H, W) uint16.
        """
        first = next(iter(self.masks.values()))
        labels = np.zeros(first.shape, dtype=np.uint16)
        for actor_id in sorted(self.masks):
            labels[self.masks[actor_id]] = actor_id
        return labels


@dataclass(frozen=True)
class KeyframeSet:
    """Every actor of the shot and every keyframe, sorted by frame.

    Attributes:
        actors: Actors sorted by id.
        keyframes: Keyframes sorted by frame, one per annotated frame.
    """

    actors: list[ActorSpec]
    keyframes: list[Keyframe]

    def first_keyframe(self, actor_id: int) -> int:
        """The first frame at which ``actor_id`` is annotated."""
        for keyframe in self.keyframes:
            if actor_id in keyframe.masks:
                return keyframe.frame
        raise KeyError(actor_id)

    def actor(self, actor_id: int) -> ActorSpec:
        """The actor with this id."""
        for spec in self.actors:
            if spec.id == actor_id:
                return spec
        raise KeyError(actor_id)


def _split_frame(text: str, flag: str) -> tuple[Path, int | None]:
    cut = max(text.rfind("/"), text.rfind("\\"))
    at = text.rfind("@")
    if at <= cut:
        return Path(text), None
    suffix = text[at + 1:]
    if _FRAME_RE.match(suffix):
        if at == cut + 1:
            raise InputError(f"{flag} {text}: a file name is missing before '@'")
        return Path(text[:at]), int(suffix)
    if Path(text).exists():
        return Path(text), None
    raise InputError(f"{flag} {text}: the frame after '@' must be an integer, e.g. "
                     f"{text[:at]}@1001")


def parse_mask_arg(text: str) -> tuple[Path, int | None]:
    """Parse ``--masks PATH[@FRAME]``.

    Only an ``@`` after the last path separator starts a frame, so folders may contain ``@``.

    Returns:
        The path and the keyframe (``None``: the first frame of the range).

    Raises:
        InputError: The text is empty or the frame is not an integer.
    """
    if not text.strip():
        raise InputError("--masks needs a file: --masks ids.png or --masks ids.png@1001")
    return _split_frame(text, "--masks")


def parse_actor_mask_arg(text: str) -> tuple[str, Path, int | None]:
    """Parse ``--actor-mask NAME=PATH[@FRAME]``.

    Returns:
        The actor name, the path and the keyframe (``None``: the first frame of the range).

    Raises:
        InputError: The name or the path is missing, or the frame is not an integer.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest:
        raise InputError(f"--actor-mask {text}: expected NAME=PATH[@FRAME], "
                         "e.g. --actor-mask bob=bob_mask.png@1001")
    path, frame = _split_frame(rest, f"--actor-mask {name}=")
    return name, path, frame


@dataclass(frozen=True)
class _Annotation:
    """One actor's mask at one frame, before actor ids are settled."""

    frame: int
    mask: np.ndarray
    source: str
    actor_id: int | None = None
    name: str | None = None


def _keyframe_of(frame: int | None, default_frame: int, frame_range: tuple[int, int],
                 source: str) -> int:
    keyframe = default_frame if frame is None else frame
    first, last = frame_range
    if not first <= keyframe <= last:
        raise InputError(f"{source}: keyframe {keyframe} is outside the frame range "
                         f"{first}-{last}; give a frame inside it (PATH@FRAME) or widen --frames")
    return keyframe


def _id_map_annotations(id_maps: Sequence[tuple[Path, int | None]], *, default_frame: int,
                        frame_range: tuple[int, int], plate_size: tuple[int, int],
                        ) -> list[_Annotation]:
    annotations: list[_Annotation] = []
    reader = IdMapReader(plate_size)  # colour-coded maps share one colour -> id table
    for path, frame in id_maps:
        source = f"--masks {path}" + ("" if frame is None else f"@{frame}")
        keyframe = _keyframe_of(frame, default_frame, frame_range, source)
        ids = reader.read(Path(path), source)
        present = [int(k) for k in np.unique(ids) if k != 0]
        if not present:
            raise InputError(f"{source}: the ID map is all background (0); paint actor k "
                             "with value k, or drop this --masks")
        if len(present) > _MAX_IDS:
            raise InputError(f"{source}: {len(present)} different ids - this looks like a "
                             "picture, not an ID map (0 = background, k = actor k)")
        annotations += [_Annotation(keyframe, ids == k, source, actor_id=k) for k in present]
    return annotations



def _detected_annotations(detected: tuple[int, Sequence[np.ndarray]] | None,
                          frame_range: tuple[int, int],
                          plate_size: tuple[int, int]) -> list[_Annotation]:
    if detected is None:
        return []
    frame, masks = detected
    source = f"--detect (frame {frame})"
    keyframe = _keyframe_of(frame, frame, frame_range, source)
    annotations = []
    for index, mask in enumerate(masks, start=1):
        if mask.shape != (plate_size[1], plate_size[0]):
            raise InputError(f"{source}: detection {index} has shape {mask.shape}, the plate "
                             f"is {plate_size[0]}x{plate_size[1]}")
        annotations.append(_Annotation(keyframe, mask.astype(bool), source, actor_id=index))
    return annotations


def default_actor_name(actor_id: int) -> str:
    """The name an unnamed ID-map actor gets: ``actor_01``, ``actor_02``, ... ``actor_100``."""
    return f"actor_{actor_id:02d}"


def _name_ids(ids: list[int], names: Sequence[str] | None) -> dict[int, str]:
    """Give every ID-map id a name: ``names`` in ascending id order, defaults for the rest."""
    given = [n.strip() for n in names] if names else []
    if any(not n for n in given):
        raise InputError("--names has an empty name; give one name per actor: --names bob,ann")
    if len(given) > len(ids):
        listed = ", ".join(str(k) for k in ids) or "none"
        raise InputError(f"--names gives {len(given)} names but the ID maps hold {len(ids)} "
                         f"actors (ids {listed}); drop the extra names or check the ID maps")
    named = {actor_id: given[i] if i < len(given) else default_actor_name(actor_id)
             for i, actor_id in enumerate(ids)}
    if given and len(given) < len(ids):
        rest = ", ".join(f"{k} -> {named[k]}" for k in ids[len(given):])
        logger.warning("--names names %d of %d ID-map actors; the others get default names "
                       "(%s)", len(given), len(ids), rest)
    return named


def _settle_actors(annotations: list[_Annotation], names: Sequence[str] | None,
                   ) -> tuple[list[ActorSpec], list[_Annotation]]:
    """Assign ids to named actor masks and build the actor list."""
    ids = sorted({a.actor_id for a in annotations if a.actor_id is not None})
    id_names = _name_ids(ids, names)
    by_name = {name: actor_id for actor_id, name in id_names.items()}
    if len(by_name) != len(id_names):
        dupes = sorted({n for n in id_names.values() if list(id_names.values()).count(n) > 1})
        raise InputError(f"actor name(s) {', '.join(dupes)} used for several ids; "
                         "every actor needs its own name (check --names)")
    next_id = (max(ids) if ids else 0) + 1
    settled = []
    for annotation in annotations:
        if annotation.actor_id is None:
            assert annotation.name is not None
            if annotation.name not in by_name:
                by_name[annotation.name] = next_id
                id_names[next_id] = annotation.name
                next_id += 1
            annotation = _Annotation(annotation.frame, annotation.mask, annotation.source,
                                     actor_id=by_name[annotation.name])
        settled.append(annotation)
    actors = [ActorSpec(name=id_names[k], id=k) for k in sorted(id_names)]
    return actors, settled


def _build_keyframes(annotations: list[_Annotation],
                     actors: list[ActorSpec]) -> list[Keyframe]:
    names = {a.id: a.name for a in actors}
    seen: dict[tuple[int, int], str] = {}
    frames: dict[int, dict[int, np.ndarray]] = {}
    for annotation in annotations:
        assert annotation.actor_id is not None
        key = (annotation.frame, annotation.actor_id)
        if key in seen:
            raise InputError(f"actor {names[annotation.actor_id]} (id {annotation.actor_id}) has "
                             f"two masks for frame {annotation.frame}: from {seen[key]} and "
                             f"{annotation.source}; keep one of them")
        seen[key] = annotation.source
        frames.setdefault(annotation.frame, {})[annotation.actor_id] = annotation.mask
    return [Keyframe(frame, dict(sorted(frames[frame].items()))) for frame in sorted(frames)]


def load_keyframes(id_maps: Sequence[tuple[Path, int | None]],
                   actor_masks: Sequence[tuple[str, Path, int | None]],
                   names: Sequence[str] | None, *, default_frame: int,
                   frame_range: tuple[int, int], plate_size: tuple[int, int],
                   detected: tuple[int, Sequence[np.ndarray]] | None = None,
                   mask_layers: Sequence[tuple[Path, int | None]] = ()) -> KeyframeSet:
    """Read every keyframe mask and settle the shot's actors.

    Args:
        id_maps: ``--masks`` arguments as parsed by :func:`parse_mask_arg`.
        actor_masks: ``--actor-mask`` arguments as parsed by :func:`parse_actor_mask_arg`.
        names: ``--names``, naming ID-map actors in ascending id order.
        default_frame: Keyframe of an argument without ``@FRAME`` (the first frame of the range).
        frame_range: First and last frame processed, inclusive.
        plate_size: Plate (width, height); every mask must have this size.
        detected: ``--detect`` result ``(frame, masks)``, masks left to right; they are taken as
            an ID map with ids 1..K at that frame.
        mask_layers: ``--mask-layers`` arguments (layered EXRs, :mod:`.mask_layers`): every
            non-empty layer is the mask of the actor of that name, like an ``--actor-mask``.

    Returns:
        The actors (sorted by id) and the keyframes (sorted by frame).

    Raises:
        InputError: A file, frame, size, name or mask breaks the rules in the module docstring.
    """
    annotations = _id_map_annotations(id_maps, default_frame=default_frame,
                                      frame_range=frame_range, plate_size=plate_size)
    annotations += _detected_annotations(detected, frame_range, plate_size)
    for name, path, frame in actor_masks:
        source = f"--actor-mask {name}={path}" + ("" if frame is None else f"@{frame}")
        keyframe = _keyframe_of(frame, default_frame, frame_range, source)
        mask = read_actor_mask(Path(path), plate_size)
        if not mask.any():
            raise InputError(f"{source}: the mask is empty (no pixel above 0.5); paint the "
                             "actor white on black, or drop this --actor-mask")
        annotations.append(_Annotation(keyframe, mask, source, name=name.strip()))
    for path, frame in mask_layers:
        source = f"--mask-layers {path}" + ("" if frame is None else f"@{frame}")
        keyframe = _keyframe_of(frame, default_frame, frame_range, source)
        for name, mask in read_mask_layers(Path(path), plate_size).items():
            annotations.append(_Annotation(keyframe, mask, f"{source} (layer {name})", name=name))
    if not annotations:
        raise InputError("no keyframe masks: give --masks PATH[@FRAME], "
                         "--actor-mask NAME=PATH[@FRAME], --mask-layers FILE[@FRAME] "
                         "or --detect")
    actors, settled = _settle_actors(annotations, names)
    keyframes = _build_keyframes(settled, actors)
    logger.info("%d actor(s) over %d keyframe(s): %s", len(actors), len(keyframes),
                ", ".join(f"{a.id}={a.name}" for a in actors))
    return KeyframeSet(actors=actors, keyframes=keyframes)


def keyframes_from_masks(frame: int, masks: Sequence[np.ndarray],
                         names: Sequence[str] | None = None) -> KeyframeSet:
    """A one-keyframe set from masks ordered as actors 1..K (e.g. :func:`detect_people` output).

    Shape:
        masks: K arrays of (H, W) bool.
    """
    if not masks:
        raise InputError(f"no actor masks for frame {frame}")
    named = _name_ids(list(range(1, len(masks) + 1)), names)
    actors = [ActorSpec(name=named[k], id=k) for k in sorted(named)]
    keyframe = Keyframe(frame, {k: np.asarray(m, dtype=bool) for k, m in
                                enumerate(masks, start=1)})
    return KeyframeSet(actors=actors, keyframes=[keyframe])
