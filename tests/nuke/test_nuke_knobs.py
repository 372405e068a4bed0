"""Knob -> CLI mapping, CLI discovery and protocol parsing of the Nuke plugin (no CLI run)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


@pytest.fixture
def plugin(nuke_t: ModuleType) -> ModuleType:
    import actormatte_nuke

    return actormatte_nuke


def test_frame_notation_becomes_hashes(plugin: ModuleType) -> None:
    to_cli = plugin.knobs.nuke_to_cli_path
    assert to_cli("/p/shot.%04d.exr") == "/p/shot.####.exr"
    assert to_cli("/p/shot.####.exr") == "/p/shot.####.exr"
    assert to_cli("/p/shot.%d.dpx") == "/p/shot.#.dpx"
    assert to_cli("/p/shot_v%02d.%06d.exr") == "/p/shot_v##.######.exr"
    for unsupported in ("/p/[value root.name].%04d.exr", "/p/shot.%V.%04d.exr"):
        with pytest.raises(plugin.knobs.SettingsError):
            to_cli(unsupported)


@pytest.mark.parametrize(("nuke_name", "cli_name"), [
    ("default (sRGB)", "srgb_tx"), ("default (linear)", "lin_rec709"), ("default", ""),
    ("linear", "lin_rec709"), ("sRGB", "srgb_tx"), ("rec709", "g22_rec709"),
    ("ACES - ACEScg", "ACES - ACEScg"), ("scene_linear", "scene_linear"),
    ("default (Cineon)", "Cineon"), ("Cineon", "Cineon"),
])
def test_colorspace_mapping(plugin: ModuleType, nuke_name: str, cli_name: str) -> None:
    assert plugin.knobs.cli_colorspace(nuke_name) == cli_name


def test_every_mapped_colorspace_resolves_in_the_core(plugin: ModuleType) -> None:
    """The core's own resolver accepts each mapped name (built-in CG config, else studio config)."""
    from actormatte.io.colour import ColourConverter

    for cli_name in plugin.knobs.COLORSPACES.values():
        try:
            ColourConverter(cli_name, config="ocio://default")
        except Exception:  # noqa: BLE001 - camera log spaces live in the studio config only
            ColourConverter(cli_name, config="ocio://studio-config-latest")


def _settings(plugin: ModuleType, **kwargs: object) -> object:
    base = {"plate": "/p/shot.####.exr", "out_dir": "/o", "first": 1001, "last": 1006}
    return plugin.knobs.Settings(**{**base, **kwargs})


def test_run_args_cover_every_knob(plugin: ModuleType) -> None:
    s = _settings(plugin, id_map="/m/ids.png", id_map_frame=1003,
                  more_id_maps="/m/ids_b.png@1005\n", actor_names="bob, alice",
                  actor_masks="carol=/m/carol.png@1004", detect=True, detect_threshold=0.5,
                  detect_max=3, size=64, xmem_size=-1, device="cpu", float32=True,
                  overwrite=True, models="/models", input_colorspace="srgb_tx")
    args = plugin.knobs.build_run_args(s)
    assert args[:4] == ["run", "/p/shot.####.exr", "--out", "/o"]
    joined = " ".join(args)
    for expected in ("--masks /m/ids.png@1003", "--masks /m/ids_b.png@1005",
                     "--names bob,alice", "--actor-mask carol=/m/carol.png@1004",
                     "--detect --detect-threshold 0.5 --detect-max 3", "--frames 1001-1006",
                     "--size 64", "--xmem-size -1", "--device cpu", "--no-progress-bar",
                     "--input-colorspace srgb_tx", "--models /models", "--float32",
                     "--overwrite"):
        assert expected in joined


def test_run_args_refuse_bad_knobs(plugin: ModuleType) -> None:
    err = plugin.knobs.SettingsError
    with pytest.raises(err, match="no keyframe masks"):
        plugin.knobs.build_run_args(_settings(plugin))
    with pytest.raises(err, match="NAME=PATH"):
        plugin.knobs.build_run_args(_settings(plugin, actor_masks="/m/no_name.png"))
    with pytest.raises(err, match="PATH@FRAME"):
        plugin.knobs.build_run_args(_settings(plugin, id_map="/m/a.png", more_id_maps="/m/b.png"))
    with pytest.raises(err, match="empty"):
        plugin.knobs.build_run_args(_settings(plugin, id_map="/m/a.png", first=10, last=5))


def test_progress_is_monotonic_over_stages(plugin: ModuleType) -> None:
    seq = [("read", 1, 6), ("read", 6, 6), ("propagate", 3, 6), ("propagate", 6, 6),
           ("matte", 1, 6), ("write", 1, 6), ("matte", 2, 6), ("write", 2, 6), ("matte", 6, 6),
           ("write", 6, 6)]   # the CLI interleaves matte and write frame by frame
    values = [plugin.knobs.progress_percent(*s) for s in seq]
    assert values == sorted(values)
    assert values[0] >= 0 and values[-1] == 100
    assert plugin.knobs.progress_percent("propagate", 0, 0) == 5


def test_reported_progress_never_steps_back_when_writes_lag(plugin: ModuleType) -> None:
    """Write-behind: matte events run ahead of write events, then the preview stage follows."""
    updates: list[int] = []

    class Reporter:
        def update(self, percent: int, message: str) -> None:
            updates.append(percent)

    state: dict[str, Any] = {"error": None, "done": None, "warnings": [], "percent": 0}
    events = ([("propagate", k, 4) for k in range(1, 5)] + [("matte", k, 4) for k in (1, 2, 3)]
              + [("write", 1, 4), ("matte", 4, 4)] + [("write", k, 4) for k in (2, 3, 4)]
              + [("preview", k, 4) for k in range(1, 5)])
    for stage, done, total in events:
        plugin.progress.Job._handle({"event": "progress", "stage": stage, "done": done,
                                     "total": total}, state, Reporter())
    assert updates == sorted(updates) and updates[-1] == 100
    assert len(set(updates)) > 5


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_find_cli_order(plugin: ModuleType, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    find, missing = plugin.cli_client.find_cli, plugin.cli_client.CliNotFoundError
    knob_cli = _executable(tmp_path / "knob" / "actormatte")
    env_cli = _executable(tmp_path / "env" / "actormatte")
    venv_cli = _executable(tmp_path / "venv" / "bin" / "actormatte")
    path_cli = _executable(tmp_path / "path" / "actormatte")
    (tmp_path / "venv" / "actormatte-install.json").write_text(json.dumps({"cli": str(venv_cli)}))
    monkeypatch.setenv("PATH", str(path_cli.parent))
    monkeypatch.setattr(plugin.cli_client, "_PLUGIN_ROOT", str(tmp_path / "no-repo"))
    monkeypatch.setenv("ACTORMATTE_CLI", str(env_cli))
    monkeypatch.setenv("ACTORMATTE_VENV", str(tmp_path / "venv"))
    assert find(str(knob_cli)) == str(knob_cli)
    assert find("") == str(env_cli)
    monkeypatch.delenv("ACTORMATTE_CLI")
    assert find("") == str(venv_cli)
    monkeypatch.delenv("ACTORMATTE_VENV")
    assert find("") == str(path_cli)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(missing, match="install.py"):
        find("")
    with pytest.raises(missing, match="does not exist"):
        find(str(tmp_path / "nope"))


def test_child_environment_drops_nukes_python(plugin: ModuleType,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONHOME", "/opt/Nuke15/lib/python3.10")
    monkeypatch.setenv("PYTHONPATH", "/opt/Nuke15/plugins")
    monkeypatch.setenv("OCIO", "/show/config.ocio")
    env = plugin.cli_client.child_environment()
    assert "PYTHONHOME" not in env and "PYTHONPATH" not in env
    assert env["OCIO"] == "/show/config.ocio" and env["PATH"] == os.environ["PATH"]


def test_protocol_lines(plugin: ModuleType) -> None:
    parse = plugin.cli_client.parse_event
    assert parse('{"event": "progress", "stage": "matte", "done": 1, "total": 2}\n')["done"] == 1
    for junk in ("Progress: 19%", "", "{not json", '["event"]', '{"stage": "matte"}'):
        assert parse(junk) is None


def test_layer_names_nuke_keeps(plugin: ModuleType) -> None:
    problem = plugin.node.layer_problem
    assert problem("actor_01") == "" and problem("bob") == ""
    for bad in ("1_bob", "bob.smith", "a" * 31, "rgba", "depth", "other", "left", "bob-2"):
        assert problem(bad), bad


def test_find_cached_sequence(plugin: ModuleType, tmp_path: Path) -> None:
    for frame in (1001, 1002, 1003):
        (tmp_path / f"plate_mattes.{frame}.exr").write_bytes(b"")
    (tmp_path / "other.0001.exr").write_bytes(b"")
    pattern, first, last = plugin.node.find_cached_sequence(str(tmp_path))
    assert pattern.endswith("/plate_mattes.####.exr") and (first, last) == (1001, 1003)
    preferred = plugin.node.find_cached_sequence(str(tmp_path), str(tmp_path / "other.####.exr"))
    assert preferred[0].endswith("/other.####.exr") and preferred[1:] == (1, 1)
    assert plugin.node.find_cached_sequence(str(tmp_path / "missing")) is None
