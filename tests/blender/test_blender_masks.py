"""Keyframe masks from a Blender Mask datablock in real Blender (bpy 4.5, 5.0) with the real CLI.

The driver draws a Mask with two layers (``bob`` everywhere, ``ann`` with a keyframed render
opacity 0 -> 1 so she is only there at the second keyframe), sets the node's keyframes, runs the
node twice (the second run reuses the cache) and renders the node's outputs; the pre-rendered
layered EXRs, the CLI command and the outputs are checked against the CLI's own EXRs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
from test_blender_extension import drive, read_channels, write_spec

pytestmark = pytest.mark.bpy


def read_parts(path: Path) -> dict[str, np.ndarray]:
    """Every channel of every part of an EXR (Blender 5 writes one part per layer)."""
    image_in = oiio.ImageInput.open(str(path))
    assert image_in is not None, oiio.geterror()
    channels, part = {}, 0
    while image_in.seek_subimage(part, 0):
        spec = image_in.spec()
        pixels = image_in.read_image(part, 0, 0, spec.nchannels, oiio.FLOAT)
        pixels = np.asarray(pixels).reshape(spec.height, spec.width, -1)
        channels.update({n: pixels[:, :, i] for i, n in enumerate(spec.channelnames)})
        part += 1
    image_in.close()
    return channels


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_mask_datablock_keyframes(version: str, tmp_path: Path, models_dir: Path,
                                  make_shot: Callable[..., Any], core_cli: Path) -> None:
    shot = make_shot(4)
    cache = tmp_path / "cache"
    mask = {"bob": {"box": [0.15, 0.3, 0.4, 0.7]},
            "ann": {"box": [0.6, 0.3, 0.85, 0.7], "alpha_keys": [[1001, 0.0], [1003, 1.0]]}}
    spec = write_spec(tmp_path, models_dir, runs=2, masks_mode=["MASK"], mask=mask,
                      mask_keyframes="1003, 1001",
                      source={"type": "FILE", "path": shot.pattern}, cache_dir=str(cache) + "/",
                      render_frames=[1002], render_dir=str(tmp_path / "render") + "/")
    result, output = drive(version, spec, core_cli)
    first, second = result["runs"]
    assert first["error"] is None and first["result"] == ["FINISHED"], output
    assert first["status"] == "4 frames computed, 0 reused from the cache"
    assert second["status"] == "0 frames computed, 4 reused from the cache", output
    assert first["layers"] == "bob,ann"  # layer names are the actors, in keyframe order
    assert result["inside"]["outputs"] == ["bob", "ann", "Combined"]

    files = {frame: cache / "masks" / f"Hero_masks.{frame}.exr" for frame in (1001, 1003)}
    for frame, path in files.items():
        assert f"--mask-layers {path}@{frame}" in output      # the command the CLI got
        masks = read_parts(path)
        assert sorted(masks) == ["ann.V", "bob.V"]
        assert masks["bob.V"].shape == (shot.height, shot.width)
        bob = np.argwhere(masks["bob.V"] > 0.5)
        assert len(bob) > 100 and bob[:, 1].mean() < shot.width / 2
    assert not (read_parts(files[1001])["ann.V"] > 0.5).any()   # opacity 0 at 1001
    ann = np.argwhere(read_parts(files[1003])["ann.V"] > 0.5)
    assert len(ann) > 100 and ann[:, 1].mean() > shot.width / 2

    cli = read_channels(cache / "plate_mattes.1002.exr")
    assert cli["bob.A"].max() > 0.5
    for layer in ("bob", "ann"):
        (values,) = read_channels(tmp_path / "render" / f"1002_{layer}.exr").values()
        np.testing.assert_array_equal(values, cli[f"{layer}.A"], err_msg=layer)
