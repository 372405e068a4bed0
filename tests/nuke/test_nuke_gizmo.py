"""The gizmo file and the plugin's files: script syntax, wiring, knobs, Python 3.7, bootstrap."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from fake_nuke import nkscript
from nuke_env import PLUGIN

GIZMO = PLUGIN / "gizmos" / "ActorMatte.gizmo"
PLUGIN_PY = sorted(PLUGIN.rglob("*.py"))
# Knobs the plugin reads or sets on the gizmo, with Nuke's knob class.
USED_KNOBS = {
    "status": "Text_Knob", "id_map": "File_Knob", "id_map_frame": "Int_Knob",
    "more_id_maps": "Multiline_Eval_String_Knob", "actor_names": "String_Knob",
    "actor_masks": "Multiline_Eval_String_Knob", "detect": "Boolean_Knob",
    "detect_threshold": "Double_Knob", "detect_max": "Int_Knob", "use_input_range": "Boolean_Knob",
    "first": "Int_Knob", "last": "Int_Knob", "cache_dir": "File_Knob", "size": "Int_Knob",
    "xmem_size": "Int_Knob", "device": "Enumeration_Knob", "float32": "Boolean_Knob",
    "overwrite": "Boolean_Knob", "core_cli": "File_Knob", "models": "File_Knob",
    "input_colorspace": "String_Knob", "matte_file": "File_Knob", "matte_first": "Int_Knob",
    "matte_last": "Int_Knob", "matte_layers": "String_Knob", "run": "PyScript_Knob",
    "cancel": "PyScript_Knob", "reload": "PyScript_Knob", "masks_mode": "Enumeration_Knob",
    "mask_keyframes": "String_Knob", "add_keyframe": "PyScript_Knob",
    "make_preview": "Boolean_Knob", "view_preview": "PyScript_Knob",
    "qc_flags": "Enumeration_Knob", "qc_goto": "PyScript_Knob",
    "qc_flag_list": "Multiline_Eval_String_Knob", "preview_file": "File_Knob",
    "preview_first": "Int_Knob", "preview_last": "Int_Knob", "matte_colour_layers": "String_Knob",
}


def test_parser_follows_nukes_stack_rules() -> None:
    script = nkscript.parse_script(
        'Read {\n inputs 0\n file "/p/a.\\[value x].exr"\n name ReadA\n}\n'
        'set Na [stack 0]\n'
        'Read {\n name ReadB\n}\n'
        'push $Na\n'
        'Copy {\n inputs 2\n from0 rgba.alpha\n to0 rgba.alpha\n name Copy1\n}\n'
        'push 0\n'
        'Merge2 {\n inputs 2\n mix {{parent.mix}}\n name Merge1\n}\n')
    copy, merge = script.child("Copy1"), script.child("Merge1")
    assert [n.name for n in copy.inputs] == ["ReadA", "ReadB"]   # top of stack = input 0 (B)
    assert merge.inputs[0] is None and merge.inputs[1] is copy
    assert script.child("ReadA").knobs["file"].text == "/p/a.[value x].exr"
    assert merge.knobs["mix"].expression == "parent.mix"
    with pytest.raises(nkscript.ScriptError):
        nkscript.parse_script("Group {\n name G\n}\n Dot {\n}\n")        # no end_group
    with pytest.raises(nkscript.ScriptError):
        nkscript.parse_script("Copy {\n inputs 2\n}\n")                  # empty stack


def test_gizmo_nodes_knobs_and_wiring() -> None:
    script = nkscript.parse_script(GIZMO.read_text())
    (gizmo,) = script.children
    assert gizmo.cls == "Gizmo" and gizmo.knobs["inputs"].text == "2"
    assert [n.cls for n in gizmo.children] == ["Input", "Input", "Read", "Output"]
    plate, masks, read, output = (gizmo.child(n) for n in ("plate", "masks", "MatteRead",
                                                            "Output1"))
    assert "number" not in plate.knobs and masks.knobs["number"].text == "1"
    assert output.inputs == [plate]                # unprocessed: the plate passes through
    assert read.inputs == []
    assert read.knobs["file"].text == "[value parent.matte_file]"
    for knob, parent_knob in (("first", "matte_first"), ("last", "matte_last"),
                              ("origfirst", "matte_first"), ("origlast", "matte_last")):
        assert read.knobs[knob].expression == f"parent.{parent_knob}"
    assert read.knobs["raw"].text == "true"       # mattes are data: no colour conversion
    assert read.knobs["on_error"].text == "black"
    user = {k.name: k for k in gizmo.user_knobs}
    for name, knob_class in USED_KNOBS.items():
        assert user[name].knob_class == knob_class, name
    assert user["device"].items == ["auto", "cpu", "cuda"]
    assert user["masks_mode"].items == ["layers", "ID map"]
    for button in ("run", "cancel", "reload", "add_keyframe", "view_preview", "goto_flag"):
        knob = user["qc_goto" if button == "goto_flag" else button]
        code = knob.value
        assert code is not None and f"actormatte_nuke.{button}(nuke.thisNode())" in code
        ast.parse(code)
    assert "actormatte_nuke.on_create(nuke.thisNode())" in gizmo.knobs["onCreate"].text
    assert gizmo.knobs["size"].text == "576" and gizmo.knobs["use_input_range"].text == "true"


def test_gizmo_builds_in_the_stand_in(nuke_t: ModuleType) -> None:
    node = nuke_t.createNode("ActorMatte")
    assert node.Class() == "ActorMatte" and node.name() == "ActorMatte1"
    assert [n.name() for n in node.nodes()] == ["plate", "masks", "MatteRead", "Output1"]
    assert node["device"].value() == "auto" and node["size"].value() == 576
    assert node["matte_file"].enabled() is False   # cache knobs are read-only for artists
    node["matte_file"].setValue("/cache/x.####.exr")
    node["matte_first"].setValue(1001)
    with node:
        read = nuke_t.toNode("MatteRead")
    assert read["file"].evaluate(1002) == "/cache/x.1002.exr"
    assert read.firstFrame() == 1001


def test_plugin_files_parse_as_python_37() -> None:
    assert {p.name for p in PLUGIN_PY} >= {"init.py", "menu.py", "__init__.py", "cli_client.py",
                                             "knobs.py", "node.py", "progress.py", "masks.py",
                                             "qc.py"}
    for path in PLUGIN_PY:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))


def test_plugin_imports_only_stdlib_and_nuke() -> None:
    allowed = set(sys.stdlib_module_names) | {"nuke", "actormatte_nuke"}
    for path in PLUGIN_PY:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_bootstrap_files_are_small() -> None:
    for name in ("init.py", "menu.py"):
        assert len((PLUGIN / name).read_text().splitlines()) < 40


def _python37() -> str | None:
    candidates = [str(p) for p in Path.home().glob(".pyenv/versions/3.7*/bin/python3.7")]
    candidates.append(shutil.which("python3.7") or "")
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.stdout.strip() == "(3, 7)":
            return exe
    return None


PYTHON37 = _python37()


@pytest.mark.skipif(PYTHON37 is None, reason="no Python 3.7 here; the ast check still runs")
def test_plugin_runs_under_python_37(tmp_path: Path) -> None:
    """Nuke 13's Python: import the package with the stand-in nuke, create the node, map a job."""
    code = ("import sys, runpy; sys.path.insert(0, sys.argv[1])\n"
            "import fake_nuke.nuke as n; sys.modules['nuke'] = n\n"
            "runpy.run_path(sys.argv[2])\n"
            "import actormatte_nuke as a\n"
            "node = n.createNode('ActorMatte')\n"
            "s = a.knobs.Settings(plate='/p/a.####.exr', out_dir='/o', first=1, last=2,"
            " id_map='i')\n"
            "print(node.Class(), ' '.join(a.knobs.build_run_args(s)))\n")
    out = subprocess.run([str(PYTHON37), "-c", code, str(Path(__file__).resolve().parent),
                          str(PLUGIN / "init.py")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ActorMatte run /p/a.####.exr --out /o --masks i")


def test_init_adds_plugin_paths_without_ui(nuke_t: ModuleType) -> None:
    folders = {os.path.basename(p) for p in nuke_t.plugin_paths}
    assert folders >= {"gizmos", "python", "icons"}
    assert str(PLUGIN / "python") in sys.path
    assert nuke_t.menus == {} and nuke_t.messages == []        # nothing UI in init.py
    assert nuke_t.createNode("ActorMatte").Class() == "ActorMatte"   # render nodes find it


def test_menu_adds_the_toolbar_entry(nuke_gui: ModuleType) -> None:
    menu = nuke_gui.menus["Nodes"].items["ActorMatte"]
    command, icon = menu.items["ActorMatte"]
    assert command == "nuke.createNode('ActorMatte')" and icon == "ActorMatte.png"
    assert (PLUGIN / "icons" / icon).read_bytes().startswith(b"\x89PNG")
