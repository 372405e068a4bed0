"""The gizmo's ``masks`` input: keyframes, the pre-render into layered EXRs, the real CLI run.

The masks input is a Read of a layered EXR (what a Roto per actor shuffled into ``<actor>.alpha``
layers renders), with a data window smaller than the format; the stand-in Write renders it with
``channels all`` at the node's mask keyframes and the core takes the files as ``--mask-layers``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
from fake_nuke.exr_channels import read_exr_channels
from nuke_env import CLI

W, H = 96, 64


@pytest.fixture
def plugin(nuke_t: ModuleType) -> ModuleType:
    import actormatte_nuke

    return actormatte_nuke


def write_layers(path: Path, channels: dict[str, np.ndarray],
                 window: tuple[int, int, int, int]) -> None:
    """A half-float EXR with a data window ``(x, y, w, h)`` inside a 96x64 display window."""
    x, y, w, h = window
    names = list(channels)
    spec = oiio.ImageSpec(w, h, len(names), oiio.HALF)
    spec.channelnames = tuple(names)
    spec.x, spec.y = x, y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = 0, 0, W, H
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    planes = np.stack([channels[n][y:y + h, x:x + w] for n in names], -1).astype(np.float32)
    out.write_image(np.ascontiguousarray(planes))
    out.close()


def box(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((H, W), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def test_keyframe_knob_parsing(plugin: ModuleType) -> None:
    parse = plugin.knobs.parse_keyframes
    assert parse("", 1001, 1010) == [1001]
    assert parse("1005, 1001 1005", 1001, 1010) == [1001, 1005]
    with pytest.raises(plugin.knobs.SettingsError, match="outside the range 1001-1010"):
        parse("1011", 1001, 1010)
    with pytest.raises(plugin.knobs.SettingsError, match="not a frame number"):
        parse("10x", 1001, 1010)
    s = plugin.knobs.Settings(plate="/p.####.exr", out_dir="/o", first=1, last=2,
                              mask_layers=["/o/masks/m.0001.exr@1"],
                              mask_id_maps=["/ids.0002.exr@2"])
    joined = " ".join(plugin.knobs.build_run_args(s))
    assert "--mask-layers /o/masks/m.0001.exr@1" in joined and "--masks /ids.0002.exr@2" in joined


def test_add_keyframe_button(nuke_t: ModuleType, plugin: ModuleType) -> None:
    node = nuke_t.createNode("ActorMatte")
    node["mask_keyframes"].setValue("1010")
    nuke_t.frame(1003)
    node["add_keyframe"].execute()
    nuke_t.frame(1010)
    node["add_keyframe"].execute()
    assert node["mask_keyframes"].value() == "1003 1010"


def _masks_read(nuke: ModuleType, folder: Path, first: int, last: int) -> Any:
    return nuke.nodes.Read(file=str(folder / "roto.####.exr"), first=first, last=last,
                           origfirst=first, origlast=last, raw=True)


def _gizmo(nuke: ModuleType, shot: Any, models: Path, cache: Path) -> Any:
    node = nuke.createNode("ActorMatte")
    node.setInput(0, nuke.nodes.Read(file=str(shot.folder / "plate.%04d.png"), first=shot.first,
                                     last=shot.last, origfirst=shot.first, origlast=shot.last,
                                     colorspace="sRGB"))
    for knob, value in (("core_cli", str(CLI)), ("models", str(models)), ("size", 64),
                        ("xmem_size", 64), ("device", "cpu"), ("cache_dir", str(cache))):
        node[knob].setValue(value)
    return node


@pytest.mark.skipif(not CLI.is_file(), reason="the core venv has no actormatte CLI")
def test_masks_input_prerenders_layers_at_the_keyframes(nuke_t: ModuleType, plugin: ModuleType,
                                                        make_shot: Any, models_dir: Path,
                                                        tmp_path: Path) -> None:
    """Two keyframes; bob keyed at both, ann only at the second: layer names are the actors."""
    nuke = nuke_t
    shot = make_shot(4)
    roto = tmp_path / "roto"
    roto.mkdir()
    write_layers(roto / "roto.1001.exr", {"bob.alpha": box(10, 14, 30, 50),
                                          "ann.alpha": box(0, 0, 0, 0)}, (8, 10, 40, 44))
    write_layers(roto / "roto.1003.exr", {"bob.alpha": box(12, 14, 32, 50),
                                          "ann.alpha": box(60, 14, 80, 50)}, (8, 10, 80, 44))
    cache = tmp_path / "cache"
    node = _gizmo(nuke, shot, models_dir, cache)
    node.setInput(1, _masks_read(nuke, roto, 1001, 1003))
    node["mask_keyframes"].setValue("1003 1001")
    job = plugin.run(node)
    assert job is not None and job.result is not None and job.result.ok, job.result.message
    executed = [c for c in nuke.calls if c[0] == "execute"]
    assert executed == [("execute", "ActorMatte1.Write1", 1001, 1001, 1),
                        ("execute", "ActorMatte1.Write1", 1003, 1003, 1)]
    assert [n.Class() for n in node.nodes()].count("Write") == 0     # temporary Write removed
    rendered = [cache / "masks" / f"ActorMatte1_masks.{f}.exr" for f in (1001, 1003)]
    argv = job.argv
    for path, frame in zip(rendered, (1001, 1003), strict=True):
        assert argv[argv.index(f"{path}@{frame}") - 1] == "--mask-layers"
        assert sorted(read_exr_channels(str(path))) == ["ann.A", "bob.A"]
        spec = oiio.ImageInput.open(str(path)).spec()
        assert (spec.full_width, spec.full_height, spec.x, spec.y) == (W, H, 8, 10)
        assert spec.format.basetype == oiio.FLOAT
    assert "--masks" not in argv and "--actor-mask" not in argv
    assert node["matte_layers"].value() == "bob,ann"
    assert {"bob.alpha", "ann.alpha"} <= set(node.channels())
    assert node["status"].value().startswith("2 actor(s), frames 1001-1004 (4 frame(s) "
                                             "computed, 0 reused from the cache; propagation 4 "
                                             "computed, 0 reused)")
    assert "--preview" in argv and node["preview_file"].value() == str(
        cache / "preview" / "plate_mattes" / "plate_mattes_preview.####.png")
    assert node["qc_flags"].values()[0] != ""      # '(none)' or the flagged frames
    again = plugin.run(node)                       # Run again: the CLI reuses the cache
    assert again is not None and again.result is not None and again.result.ok
    assert ("(0 frame(s) computed, 4 reused from the cache; propagation 0 computed, 4 reused)"
            in node["status"].value())
    # a correction: a third keyframe; Run again without 'recompute all frames'
    write_layers(roto / "roto.1004.exr", {"bob.alpha": box(14, 14, 34, 50),
                                          "ann.alpha": box(58, 14, 78, 50)}, (8, 10, 80, 44))
    node.input(1)["last"].setValue(1004)
    node["mask_keyframes"].setValue("1001 1003 1004")
    corrected = plugin.run(node)
    assert corrected is not None and corrected.result is not None, "no job"
    assert corrected.result.ok, corrected.result.message
    assert corrected.argv.count("--mask-layers") == 3 and "--overwrite" not in corrected.argv
    status = node["status"].value()
    assert "reused from the cache" in status
    assert "(0 frame(s) computed" not in status, status   # the changed frames are re-matted


@pytest.mark.skipif(not CLI.is_file(), reason="the core venv has no actormatte CLI")
def test_masks_input_as_id_map_uses_the_reads_files(nuke_t: ModuleType, plugin: ModuleType,
                                                    make_shot: Any, models_dir: Path,
                                                    tmp_path: Path) -> None:
    nuke = nuke_t
    shot = make_shot(3)
    ids = nuke.nodes.Read(file=str(shot.folder / "ids.png"), first=1001, last=1001)
    node = _gizmo(nuke, shot, models_dir, tmp_path / "cache")
    node.setInput(1, ids)
    node["masks_mode"].setValue("ID map")
    node["actor_names"].setValue("bob,ann")
    job = plugin.run(node)
    assert job is not None and job.result is not None and job.result.ok, job.result.message
    assert f"--masks {shot.ids}@1001" in " ".join(job.argv)
    assert not [c for c in nuke.calls if c[0] == "execute"]          # nothing pre-rendered
    assert node["matte_layers"].value() == "bob,ann"


def test_masks_input_errors(nuke_t: ModuleType, plugin: ModuleType, make_shot: Any,
                            tmp_path: Path) -> None:
    nuke = nuke_t
    shot = make_shot(2)
    node = _gizmo(nuke, shot, Path("/unused"), tmp_path / "cache")
    node.setInput(1, _masks_read(nuke, tmp_path, 1001, 1002))
    node["mask_keyframes"].setValue("999")
    with pytest.raises(plugin.ActorMatteNukeError, match="frame 999 is outside the range"):
        plugin.run(node)
    node["mask_keyframes"].setValue("1002")
    node["masks_mode"].setValue("ID map")
    with pytest.raises(plugin.ActorMatteNukeError, match="roto.1002.exr does not exist"):
        plugin.run(node)


def test_qc_flags_and_preview_from_the_done_event(nuke_t: ModuleType, plugin: ModuleType,
                                                  tmp_path: Path) -> None:
    """A finished job's flags fill 'flagged frames' (rebuilt on load); 'go to' moves the viewer."""
    nuke = nuke_t
    node = nuke.createNode("ActorMatte")
    node["xpos"].setValue(100)
    done = {"event": "done", "pattern": str(tmp_path / "m.####.exr"), "first": 1001,
            "last": 1010, "layers": [], "frames_written": 10, "frames_skipped": 0,
            "qc": "/o/preview/m/qc.json", "qc_flags_total": 3,
            "qc_flags": [{"frame": 1004, "actor": "alice", "kind": "jump",
                          "message": "alice area +50% at 1004: consider a keyframe"},
                         {"frame": 1005, "actor": "bob", "kind": "lost",
                          "message": "bob lost at 1005"}],
            "preview": {"frames": "/o/preview/m/m_preview.####.png", "movie": "/o/m.mp4"}}
    result = plugin.progress.JobResult(node.fullName(), True, False, 0, "", done, [])
    plugin._finish(result, None)
    assert node["qc_flags"].values() == [
        "1004 alice area +50% at 1004: consider a keyframe", "1005 bob lost at 1005",
        "... 1 more in /o/preview/m/qc.json"]
    assert "3 flagged frame(s)" in node["status"].value()
    node["qc_flags"].setValue("1005 bob lost at 1005")
    node["qc_goto"].execute()
    assert nuke.frame() == 1005
    node["view_preview"].execute()
    read = nuke.toNode("ActorMatte1_preview")
    assert read is not None and read.parent is nuke.root()
    assert read["file"].value() == "/o/preview/m/m_preview.####.png"
    assert (read["first"].value(), read["last"].value(), read["xpos"].value()) == (1001, 1010, 250)
    loaded = nuke.load_node("ActorMatte", nuke.saved_knobs(node))   # a script load: onCreate
    assert loaded["qc_flags"].values()[1] == "1005 bob lost at 1005"


def test_colour_layers_become_full_nuke_layers(nuke_t: ModuleType, plugin: ModuleType,
                                               tmp_path: Path) -> None:
    """EXRs with bob.R/G/B/A (--foreground) and ann.A: bob is red/green/blue/alpha, ann alpha."""
    nuke = nuke_t
    for frame in (1001, 1002):
        path = tmp_path / f"m_mattes.{frame}.exr"
        spec = oiio.ImageSpec(W, H, 5, oiio.HALF)
        spec.channelnames = ("ann.A", "bob.A", "bob.B", "bob.G", "bob.R")
        out = oiio.ImageOutput.create(str(path))
        assert out.open(str(path), spec)
        out.write_image(np.full((H, W, 5), 0.5, np.float32))
        out.close()
    node = nuke.createNode("ActorMatte")
    node.setInput(0, nuke.nodes.Read(file=str(tmp_path / "m_mattes.%04d.exr"), first=1001,
                                     last=1002))
    done = {"event": "done", "pattern": str(tmp_path / "m_mattes.####.exr"), "first": 1001,
            "last": 1002, "layers": ["bob", "ann"], "colour_layers": ["bob"],
            "frames_written": 2, "frames_skipped": 0}
    plugin._finish(plugin.progress.JobResult(node.fullName(), True, False, 0, "", done, []), None)
    channels = set(node.channels())
    assert {"bob.red", "bob.green", "bob.blue", "bob.alpha", "ann.alpha"} <= channels
    assert "ann.red" not in channels
    assert nuke.layer_channels("bob") == ["bob.red", "bob.green", "bob.blue", "bob.alpha"]
    with node:
        copies = [n for n in nuke.allNodes("Copy")]
    assert [copies[0][f"to{i}"].value() for i in range(4)] == [
        "bob.red", "bob.green", "bob.blue", "bob.alpha"]
    assert [copies[1][f"to{i}"].value() for i in range(4)] == ["ann.alpha", "none", "none",
                                                                "none"]
    node["matte_layers"].setValue("")
    node["matte_colour_layers"].setValue("")
    assert plugin.reload(node) == "2 actor(s), frames 1001-1002"     # from the files alone
    assert node["matte_colour_layers"].value() == "bob"
