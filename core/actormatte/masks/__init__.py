"""Keyframe instance masks: hand-made ID maps and actor masks, or automatic person detection.

The CLI parses the ``MASKS`` options with :func:`parse_mask_arg` and :func:`parse_actor_mask_arg`;
the pipeline turns them into a :class:`KeyframeSet` with :func:`load_keyframes` and, for
``--detect``, finds people with :func:`load_detector` and :func:`find_first_people`.
"""

from actormatte.masks.detect import detect_people, find_first_people, load_detector
from actormatte.masks.keyframes import (
    ActorSpec,
    Keyframe,
    KeyframeSet,
    default_actor_name,
    keyframes_from_masks,
    load_keyframes,
    parse_actor_mask_arg,
    parse_mask_arg,
    read_actor_mask,
    read_id_map,
)

__all__ = [
    "ActorSpec",
    "Keyframe",
    "KeyframeSet",
    "default_actor_name",
    "detect_people",
    "find_first_people",
    "keyframes_from_masks",
    "load_detector",
    "load_keyframes",
    "parse_actor_mask_arg",
    "parse_mask_arg",
    "read_actor_mask",
    "read_id_map",
]
