"""EXR layer names: sanitising like Nuke, reserved names, collisions."""

from __future__ import annotations

import random
import string

import pytest

from actormatte.errors import InputError
from actormatte.export import LAYER_NAME_RE, channel_name, make_layer_names, sanitise_layer_name
from actormatte.export.layers import (
    BLENDER_RESERVED_SOCKETS,
    MAX_CHANNEL_NAME,
    NUKE_RESERVED_LAYERS,
    NUKE_VIEW_NAMES,
)


@pytest.mark.parametrize(("name", "layer"), [
    ("actor_01", "actor_01"),
    ("Bob Smith", "Bob_Smith"),
    ("José", "Jose"),
    ("1_bob", "bob"),  # Nuke strips leading digits; a layer starts with a letter
    ("007bond", "bond"),
    ("bob.1", "bob_1"),  # a dot would make a three-level channel name
    ("a--b  c", "a_b_c"),
    ("__x__", "x"),
    ("stunt (double)", "stunt_double"),
    ("123", ""),
    ("", ""),
    ("日本", ""),
])
def test_sanitise(name: str, layer: str) -> None:
    assert sanitise_layer_name(name) == layer


def test_long_names_fit_nuke_channel_names() -> None:
    layer = sanitise_layer_name("a" * 40)
    assert len(layer) == MAX_CHANNEL_NAME - 2
    assert len(channel_name(layer)) == MAX_CHANNEL_NAME
    assert LAYER_NAME_RE.match(layer)
    assert sanitise_layer_name("x" * 28 + "_yz") == "x" * 28  # no trailing _ after the cut


def test_sanitised_names_always_match_the_rule() -> None:
    rng = random.Random(7)
    alphabet = string.printable + "éü日ß"
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 45)))
        layer = sanitise_layer_name(name)
        assert layer == "" or LAYER_NAME_RE.match(layer), (name, layer)


def test_make_layer_names_keeps_order() -> None:
    assert make_layer_names(["zed", "Ann B", "1_carl"]) == ["zed", "Ann_B", "carl"]


@pytest.mark.parametrize("name", [
    *NUKE_RESERVED_LAYERS, *NUKE_VIEW_NAMES, *BLENDER_RESERVED_SOCKETS,
    "RGBA", "Alpha", "MAIN", "image", "combined", "2rgba", "depth.", " mask",
])
def test_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(InputError, match=rf"actor name '{name}' gives layer .*rename it"):
        make_layer_names(["ok_actor", name])


def test_empty_result_is_refused() -> None:
    with pytest.raises(InputError, match="'42' has no letters"):
        make_layer_names(["bob", "42"])


@pytest.mark.parametrize("names", [
    ["1_bob", "2_bob"],  # Nuke's digit stripping
    ["bob", "bob"],
    ["bob smith", "bob-smith"],
    ["Bob", "bob"],  # case
    ["a" * 29 + "x", "a" * 29 + "y"],  # truncation
])
def test_duplicates_after_sanitising_are_refused(names: list[str]) -> None:
    with pytest.raises(InputError, match=rf"actors '{names[0]}' and '{names[1]}' both give"):
        make_layer_names(names)
