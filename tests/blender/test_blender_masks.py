"""Keyframe masks from a Blender Mask datablock in real Blender (bpy 4.5, 5.0) with the real CLI.

The driver draws a Mask with two layers (``bob`` everywhere, ``ann`` with a keyframed render
opacity 0 -> 1 so she is only there at the second keyframe), sets the node's keyframes, runs the
node twice (the second run reuses the cache) and renders the node's outputs; the pre-rendered
layered EXRs, the CLI command and the outputs are checked against the CLI's own EXRs.
"""

from __future__ import annotations

import json
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
    assert first["status"].startswith("4 frames computed, 0 reused from the cache")
    assert second["status"].startswith("0 frames computed, 4 reused from the cache"), output
    qc = json.loads((cache / "preview" / "plate_mattes" / "qc.json").read_text())
    assert first["qc_flags_total"] == len(qc["flags"])          # the done event's flags
    assert [f[0] for f in first["qc_flags"]] == [f["frame"] for f in qc["flags"]][:12]
    if qc["flags"]:
        assert first["frame_after_goto"] == qc["flags"][0]["frame"]
        assert first["status"].endswith(f"; {len(qc['flags'])} flagged frames")
    assert "--preview" in output and Path(first["preview_movie"]).is_file()
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


def write_colour_mattes(folder: Path) -> dict[str, np.ndarray]:
    """Two frames with ``bob.R/G/B/A`` (an actor with its colour, as --foreground writes) and
    ``ann.A``; returns the channels (the same on both frames)."""
    height, width = 64, 96
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = {"ann.A": (xx > 60).astype(np.float32), "bob.A": np.clip(xx / 40, 0, 1),
                "bob.B": yy / 128, "bob.G": xx / 256, "bob.R": (xx + yy) / 400}
    for frame in (1001, 1002):
        path = folder / f"shot_mattes.{frame}.exr"
        spec = oiio.ImageSpec(width, height, len(channels), oiio.HALF)
        spec.channelnames = tuple(channels)
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(path))
        assert out.open(str(path), spec)
        out.write_image(np.ascontiguousarray(np.stack(list(channels.values()), -1)))
        out.close()
    return {k: v.astype(np.float16).astype(np.float32) for k, v in channels.items()}


@pytest.mark.parametrize("version", ["4.5", "5.0"])
def test_colour_layers_give_an_image_and_an_alpha_socket(version: str, tmp_path: Path,
                                                         models_dir: Path,
                                                         core_cli: Path) -> None:
    """An actor whose EXR holds <layer>.R/G/B/A gets '<layer> Image' (RGBA) beside '<layer>'."""
    channels = write_colour_mattes(tmp_path)
    spec = write_spec(tmp_path, models_dir, inside={
        "pattern": str(tmp_path / "shot_mattes.####.exr"), "first": 1001, "last": 1002,
        "layers": ["bob", "ann"]}, render_frames=[1002], render_dir=str(tmp_path / "r") + "/")
    result, output = drive(version, spec, core_cli)
    assert result["inside"]["outputs"] == ["bob", "bob Image", "ann", "Combined"], output
    rendered = {name: read_channels(tmp_path / "r" / f"1002_{name}.exr")
                for name in result["inside"]["outputs"]}
    (bob_alpha,) = rendered["bob"].values()
    np.testing.assert_array_equal(bob_alpha, channels["bob.A"])
    image = rendered["bob Image"]
    for channel in "RGBA":
        np.testing.assert_array_equal(image[channel], channels[f"bob.{channel}"], err_msg=channel)
    (ann,) = rendered["ann"].values()
    np.testing.assert_array_equal(ann, channels["ann.A"])
    (combined,) = rendered["Combined"].values()
    np.testing.assert_array_equal(combined, np.maximum(channels["bob.A"], channels["ann.A"]))
