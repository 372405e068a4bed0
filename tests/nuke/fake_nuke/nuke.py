"""A small, faithful stand-in for Foundry's ``nuke`` Python module, for ActorMatte's tests.

It implements only the calls the ActorMatte plugin makes, with the semantics of Foundry's Nuke
Python API reference (``learn.foundry.com/nuke/developers/<version>/pythondevguide/``, pages
``_autosummary/nuke.<name>.html``), and records what the plugin does so tests can assert it:
- ``pluginAddPath(args, addToSysPath=True)``: "Adds all the paths to the beginning of the Nuke
  plugin path. If the path already exists ... it is moved to the start ... It also adds the paths
  to the sys.path, if addToSysPath is True." (``nuke.pluginAddPath``, 13.0 guide).
- ``createNode(cls)`` finds ``<cls>.gizmo`` on the plugin path and builds it from the file (parsed
  by ``nkscript``) and runs its ``onCreate``; ``nodes.<Class>(**knobs)`` creates a bare node in
  the current group (``with group:`` / ``group.begin()``); ``toNode``, ``allNodes``, ``delete``.
- ``executeInMainThread(call, args=(), kwargs={})``: "Execute the callable 'call' ... in Nuke's
  main thread and return immediately." (``nuke.executeInMain`` source). Here calls are queued
  and run by :func:`run_main_loop`, which a test calls on the main thread like Nuke's event loop.
- ``ProgressTask(name)``: ``setMessage(s)``, ``setProgress(i)`` ("an integer representing the
  current progress"), ``isCancelled()`` ("True if the user has requested the task to be
  cancelled"); tests press Cancel with :meth:`ProgressTask.press_cancel` or ``cancel_after``.
- ``execute(nameOrNode, start, end, incr)`` renders a Write: here the Write's upstream Read frames
  are converted with OpenImageIO (sRGB integer files linearised unless ``raw``), which is what a
  Write of an unmodified Read writes. Raises RuntimeError("Cancelled") as Nuke does on cancel.
- ``env['gui']`` (False in ``nuke -t``), ``root()``, ``thisNode()`` (main thread only: "nuke.
  thisNode() ... is undefined outside the main thread", Threading guide), ``message(s)``,
  ``Layer(name, channels)`` / ``layers()``, ``menu(name)`` with ``addMenu``/``addCommand``.
Call :func:`reset` between tests.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from fake_nuke import exr_channels, nkscript
from fake_nuke.graph import Group, InputNode, Knob, Node, is_main_thread

NUKE_VERSION_MAJOR = 15
DO_NOT_WRITE = 0x200   # knob flag: not saved with the script (Knob.h FlagMask, NDK guide)
BUILTIN_LAYERS = {"rgba": ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"],
                  "rgb": ["rgba.red", "rgba.green", "rgba.blue"], "alpha": ["rgba.alpha"],
                  "depth": ["depth.Z"], "mask": ["mask.a"]}

env: dict[str, Any] = {}
calls: list[tuple[Any, ...]] = []
messages: list[str] = []
violations: list[str] = []
plugin_paths: list[str] = []
progress_tasks: list[ProgressTask] = []
menus: dict[str, Menu] = {}
context: list[Group] = []
_layers: dict[str, list[str]] = {}
_main_queue: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
_this: list[Node] = []
_root: Group


def reset(gui: bool = False) -> None:
    """Start a fresh, unsaved script."""
    global _root
    env.clear()
    env.update(gui=gui, NukeVersionMajor=NUKE_VERSION_MAJOR, ExecutablePath="/opt/Nuke/Nuke")
    for record in (calls, messages, violations, progress_tasks, _this):
        record.clear()
    menus.clear()
    ProgressTask.cancel_after = None
    _layers.clear()
    _layers.update({k: list(v) for k, v in BUILTIN_LAYERS.items()})
    _main_queue.clear()
    _frame[0] = 1
    _root = Group(sys.modules[__name__], "Root", None)
    _root["name"].set_from_script("", None)
    context[:] = [_root]


def _require_main(what: str) -> None:
    if not is_main_thread():
        violations.append(what)
        raise RuntimeError(f"{what} called from a worker thread; use nuke.executeInMainThread")


# --- plugin path -----------------------------------------------------------------------------
def pluginAddPath(args: str | list[str], addToSysPath: bool = True) -> None:  # noqa: N802 N803
    for path in [args] if isinstance(args, str) else list(args):
        if path in plugin_paths:
            plugin_paths.remove(path)
        plugin_paths.insert(0, path)
        if addToSysPath and path not in sys.path:
            sys.path.insert(0, path)


def pluginPath() -> list[str]:  # noqa: N802
    return list(plugin_paths)


# --- nodes -----------------------------------------------------------------------------------
def root() -> Group:
    return _root


def _new_node(cls: str, group: Group, is_group: bool = False) -> Node:
    kind = InputNode if cls == "Input" else Group if is_group or cls == "Group" else Node
    node = kind(sys.modules[__name__], cls, group)
    taken = {c.name() for c in group.children}
    index = 1
    while f"{cls}{index}" in taken:
        index += 1
    node["name"].set_from_script(f"{cls}{index}", None)
    group.children.append(node)
    return node


class _NodeFactory:
    """``nuke.nodes.Read(file=..., inputs=[...])``: a bare node in the current group."""

    def __getattr__(self, cls: str) -> Callable[..., Node]:
        def create(**knobs: Any) -> Node:
            _require_main(f"nodes.{cls}")
            node = _new_node(cls, context[-1])
            for i, upstream in enumerate(knobs.pop("inputs", [])):
                node.connect(i, upstream)
            for name, value in knobs.items():
                node[name].setValue(value)
            calls.append(("create", node.fullName(), cls))
            return node
        return create


nodes = _NodeFactory()


def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:  # noqa: N802
    _require_main("createNode")
    path = _find_gizmo(node)
    return _load_gizmo(node, path, {}) if path else getattr(nodes, node)()


def _find_gizmo(cls: str) -> str | None:
    for folder in plugin_paths:
        path = os.path.join(folder, cls + ".gizmo")
        if os.path.isfile(path):
            return path
    return None


def saved_knobs(node: Node) -> dict[str, str]:
    """What a saved script keeps of a gizmo: its user knobs' values (never its insides)."""
    keep = {"name", *node.user_knob_names}
    return {k: str(node[k].value()) for k in keep if node[k].written() and node[k].Class()
            not in ("PyScript_Knob", "Tab_Knob", "Text_Knob")}


def load_node(cls: str, knob_values: dict[str, str]) -> Node:
    """Create a gizmo as loading a script does: knob values first, then ``onCreate``."""
    path = _find_gizmo(cls)
    if path is None:
        raise RuntimeError(f"{cls}: unknown command (no {cls}.gizmo on the plugin path)")
    return _load_gizmo(cls, path, knob_values)


def pending_main_calls() -> int:
    """How many executeInMainThread calls wait for the main loop."""
    return len(_main_queue)


def _load_gizmo(cls: str, path: str, knob_values: dict[str, str]) -> Node:
    with open(path, encoding="utf-8") as f:
        script = nkscript.parse_script(f.read())
    (spec,) = [n for n in script.children if n.cls == "Gizmo"]
    gizmo = _new_node(cls, context[-1], is_group=True)
    assert isinstance(gizmo, Group)
    for uk in spec.user_knobs:
        gizmo.add_knob(Knob(gizmo, uk.name, uk.knob_class, uk.items, uk.label, tuple(uk.flags)))
        gizmo.user_knob_names.append(uk.name)
        if uk.value is not None:
            gizmo[uk.name].set_from_script(uk.value, None)
    _apply_knobs(gizmo, spec)
    for key, text in knob_values.items():
        gizmo[key].set_from_script(text, None)
    built: dict[int, Node] = {}
    for child in spec.children:
        node = _new_node(child.cls, gizmo)
        _apply_knobs(node, child)
        built[id(child)] = node
    for child in spec.children:
        for i, upstream in enumerate(child.inputs):
            built[id(child)].connect(i, built[id(upstream)] if upstream is not None else None)
    for name, chans in spec.layers.items():
        _layers[name] = chans
    calls.append(("create", gizmo.fullName(), cls))
    on_create = gizmo["onCreate"].value()
    if on_create:
        run_python(on_create, gizmo)
    return gizmo


def _apply_knobs(node: Node, spec: nkscript.ScriptNode) -> None:
    for key, value in spec.knobs.items():
        if key == "inputs":
            continue
        node[key].set_from_script(value.text, value.expression)


def toNode(name: str) -> Node | None:  # noqa: N802
    name = name[5:] if name.startswith("root.") else name
    return context[-1].node(name) or _root.node(name)


def allNodes(filter: str | None = None, group: Group | None = None) -> list[Node]:  # noqa: A002 N802
    found = (group or context[-1]).nodes()
    return [n for n in found if filter is None or n.Class() == filter]


def delete(node: Node) -> None:
    _require_main("delete")
    assert node.parent is not None
    node.parent.children.remove(node)
    for other in node.parent.children:
        for i in range(other.inputs()):
            if other.input(i) is node:
                other.connect(i, None)
    calls.append(("delete", node.name()))


def thisNode() -> Node:  # noqa: N802
    if not is_main_thread():
        violations.append("thisNode")
        raise RuntimeError("nuke.thisNode() is undefined outside the main thread")
    if not _this:
        raise RuntimeError("no current node: thisNode() called outside a callback")
    return _this[-1]


def run_python(code: str, node: Node) -> None:
    """Run knob code (onCreate, a PyScript button) as Nuke does, with thisNode() = node."""
    _this.append(node)
    try:
        exec(compile(code, f"<{node.name()} knob>", "exec"), {"nuke": sys.modules[__name__]})
    finally:
        _this.pop()


# --- layers ----------------------------------------------------------------------------------
class Layer:
    """``nuke.Layer(name, channels)``: declares a layer; channels are full ``layer.chan`` names."""

    def __init__(self, name: str, channels: list[str] | None = None) -> None:
        _require_main("Layer")
        self._name = name
        chans = _layers.setdefault(name, [])
        for c in channels or []:
            if c not in chans:
                chans.append(c)
        calls.append(("Layer", name, tuple(channels or ())))

    def name(self) -> str:
        return self._name

    def channels(self) -> list[str]:
        return list(_layers[self._name])


def layers(node: Node | None = None) -> list[str]:
    if node is None:
        return sorted(_layers)
    return sorted({c.split(".")[0] for c in node.channels()})


def layer_channels(layer: str) -> list[str]:
    """Channels of a declared layer (empty when the layer is unknown)."""
    return list(_layers.get(layer, []))


# --- main thread, progress, messages ---------------------------------------------------------
def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: dict[str, Any] | None = None) -> None:  # noqa: N802 E501
    if not isinstance(args, tuple):
        args = (args,)
    _main_queue.append((call, args, dict(kwargs or {})))


def run_main_loop(until: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run queued main-thread calls until ``until()`` is true (call it on the main thread)."""
    assert is_main_thread()
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not done.is_set():
            while _main_queue:
                call, args, kwargs = _main_queue.popleft()
                call(*args, **kwargs)
            if until():
                return
            done.wait(0.02)
        raise TimeoutError(f"main loop: condition not met within {timeout} s")
    finally:
        deadline.cancel()


class ProgressTask:
    """``nuke.ProgressTask(name)``; records messages and progress; closes when deleted."""

    cancel_after: int | None = None   # tests: press Cancel after this many setProgress calls

    def __init__(self, name: str) -> None:
        self.name, self.messages, self.progress = name, [], []
        self.closed = False
        self._cancelled = threading.Event()
        progress_tasks.append(self)

    def setMessage(self, message: str) -> None:  # noqa: N802
        self.messages.append(message)

    def setProgress(self, value: int) -> None:  # noqa: N802
        if not isinstance(value, int):
            raise TypeError("ProgressTask.setProgress takes an int")
        self.progress.append(value)
        if self.cancel_after is not None and len(self.progress) >= self.cancel_after:
            self._cancelled.set()

    def isCancelled(self) -> bool:  # noqa: N802
        return self._cancelled.is_set()

    def press_cancel(self) -> None:
        """What the user's click on the task's Cancel button does."""
        self._cancelled.set()

    def __del__(self) -> None:
        self.closed = True


def message(text: str) -> None:
    _require_main("message")
    messages.append(text)


class Menu:
    """A menu or toolbar; records ``addCommand``/``addMenu``."""

    def __init__(self, name: str) -> None:
        self.name, self.items = name, {}

    def addMenu(self, name: str, icon: str = "", **kwargs: Any) -> Menu:  # noqa: N802
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "", **kwargs: Any) -> None:  # noqa: N802 E501
        self.items[name] = (command, icon)


def menu(name: str) -> Menu:
    _require_main("menu")
    if not env.get("gui"):
        raise RuntimeError("menus exist only with the GUI (menu.py does not run in nuke -t)")
    return menus.setdefault(name, Menu(name))


# --- rendering -------------------------------------------------------------------------------
def execute(nameOrNode: str | Node, start: int | None = None, end: int | None = None,  # noqa: N803
            incr: int = 1, views: list[str] | None = None, continueOnError: bool = False) -> None:  # noqa: N803
    _require_main("execute")
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None or node.Class() != "Write":
        raise RuntimeError(f"{nameOrNode} cannot be executed")
    first = int(_root["first_frame"].value()) if start is None else start
    last = int(_root["last_frame"].value()) if end is None else end
    calls.append(("execute", node.fullName(), first, last, incr))
    read = node.input(0)
    while read is not None and read.Class() != "Read":
        read = read.input(0)
    if read is None:
        raise RuntimeError("stand-in execute renders only Read-based trees")
    for frame in range(first, last + 1, incr):
        _render_frame(read, read["file"].evaluate(frame), node["file"].evaluate(frame),
                      str(node["channels"].value()), str(node["datatype"].value()))


def _render_frame(read: Node, src: str, dst: str, channels: str = "rgb",
                  datatype: str = "16 bit half") -> None:
    """One frame of Read -> Write: the Write's channel set, Nuke's EXR names, its data type.

    ``channels``: ``rgb``/``rgba`` (the root channels) or ``all`` (every layer, named as Nuke's
    exrWriter names them: see :func:`exr_channels.exr_write_name`). The data window (bbox) is
    kept, as Nuke writes the input's bbox when autocrop is off.
    """
    import OpenImageIO as oiio  # the test venv's; the plugin itself never needs it

    buf = oiio.ImageBuf(src)
    if buf.has_error:
        raise RuntimeError(f"Read error: {buf.geterror()}")
    names = list(buf.spec().channelnames)
    if channels == "all":
        written = [exr_channels.exr_write_name(exr_channels.nuke_channel_name(n)) for n in names]
        buf = oiio.ImageBufAlgo.channels(buf, tuple(range(len(names))), tuple(written))
    elif channels in ("rgb", "rgba"):
        count = 4 if channels == "rgba" and len(names) >= 4 else 3
        buf = oiio.ImageBufAlgo.channels(buf, tuple(range(min(count, len(names)))))
    else:
        raise RuntimeError(f"stand-in Write: channels {channels!r} is not supported")
    integer = buf.spec().format.basetype not in (oiio.HALF, oiio.FLOAT)
    if integer and not read["raw"].value():
        buf = oiio.ImageBufAlgo.colorconvert(buf, "sRGB", "linear")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    buf.set_write_format(oiio.FLOAT if datatype == "32 bit float" else oiio.HALF)
    if not buf.write(dst):
        raise RuntimeError(f"Write error: {buf.geterror()}")


_frame = [1]


def frame(f: int | None = None) -> int:
    """``nuke.frame()``: the current frame; ``nuke.frame(f)`` moves the viewer to ``f``."""
    if f is not None:
        _require_main("frame")
        _frame[0] = int(f)
        calls.append(("frame", int(f)))
    return _frame[0]


reset()
