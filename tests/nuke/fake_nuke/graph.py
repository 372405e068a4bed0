"""Knobs and nodes of the stand-in ``nuke`` module (see ``nuke.py`` for the module functions).

Semantics follow Foundry's Nuke Python API reference
(learn.foundry.com/nuke/developers/latest/pythondevguide/_autosummary/):
- ``nuke.Knob``: ``value()``, ``setValue()``, ``getValue()``; ``Enumeration_Knob.setValues()``
  replaces its items; ``Int_Knob.value()`` is an int,
  ``Enumeration_Knob.value()`` the item text and ``getValue()`` its index; ``File_Knob.value()``
  is the raw text and ``evaluate()`` runs its TCL (here only ``[value NODE.KNOB]``) and the frame
  number; ``PyScript_Knob.execute()`` runs its code with ``nuke.thisNode()`` set to the owner.
- ``nuke.Node``: ``Class()``, ``name()``, ``fullName()``, ``knob()``, ``node['knob']`` (NameError
  when missing), ``input(i)``, ``setInput(i, node)``, ``inputs()``, ``firstFrame()``,
  ``lastFrame()``, ``channels()``, ``format()``, ``bbox()``, ``sample(channel, x, y)`` (image
  geometry in ``images.py``); ``nuke.Group`` adds ``begin()``/``end()``/``with group:``,
  ``nodes()`` and ``node(name)``; group inputs feed its ``Input`` nodes by their ``number`` knob.
Stricter than Nuke on purpose: every knob and node edit must come from the main thread
(Nuke's Threading guide: only the main thread may touch the DAG), and a Channel knob accepts only
channels of declared layers.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from . import exr_channels, images

COMMON_KNOBS = {"name": "String_Knob", "label": "Multiline_Eval_String_Knob", "xpos": "Int_Knob",
                "ypos": "Int_Knob", "selected": "Boolean_Knob", "disable": "Boolean_Knob",
                "tile_color": "Int_Knob", "hide_input": "Boolean_Knob", "help": "String_Knob",
                "onCreate": "String_Knob", "knobChanged": "String_Knob"}
CLASS_KNOBS: dict[str, dict[str, str]] = {
    "Read": {"file": "File_Knob", "first": "Int_Knob", "last": "Int_Knob",
             "origfirst": "Int_Knob", "origlast": "Int_Knob", "before": "String_Knob",
             "after": "String_Knob", "on_error": "String_Knob", "raw": "Boolean_Knob",
             "colorspace": "String_Knob", "frame_mode": "String_Knob", "frame": "String_Knob",
             "reload": "PyScript_Knob"},
    "Write": {"file": "File_Knob", "file_type": "String_Knob", "channels": "String_Knob",
              "datatype": "String_Knob", "compression": "String_Knob",
              "colorspace": "String_Knob", "raw": "Boolean_Knob",
              "create_directories": "Boolean_Knob", "autocrop": "Boolean_Knob"},
    "Copy": {**{f"from{i}": "Channel_Knob" for i in range(4)},
             **{f"to{i}": "Channel_Knob" for i in range(4)}, "bbox": "Enumeration_Knob"},
    "Input": {"number": "Int_Knob"},
    "Root": {"first_frame": "Int_Knob", "last_frame": "Int_Knob",
             "colorManagement": "String_Knob", "workingSpaceLUT": "String_Knob",
             "OCIO_config": "String_Knob"},
}
DEFAULTS = {"Read": {"before": "hold", "after": "hold", "on_error": "error",
                     "colorspace": "default", "frame_mode": "expression"},
            "Copy": {"from0": "rgba.alpha", "to0": "rgba.alpha",
                     **{f"{d}{i}": "none" for d in ("from", "to") for i in (1, 2, 3)}},
            "Write": {"channels": "rgb", "file_type": "", "colorspace": "default"},
            "Root": {"first_frame": 1, "last_frame": 100, "colorManagement": "Nuke",
                     "workingSpaceLUT": "linear"}}
# Enumeration knobs' items, the first is the default ("set bbox to", Copy's reference page).
ENUM_ITEMS = {("Copy", "bbox"): ["union", "B", "A", "intersection"]}
_VALUE_REF = re.compile(r"\[value\s+([A-Za-z0-9_.]+)\]")


class Knob:
    """One knob; ``expression`` holds a ``{{...}}`` link, evaluated on ``value()``."""

    def __init__(self, node: Node, name: str, cls: str, items: list[str] | None = None,
                 label: str | None = None, flags: tuple[str, ...] = ()) -> None:
        self._node, self._name, self._class = node, name, cls
        self._items = list(items or [])
        self._label = label if label is not None else name
        self._flags = set(flags)
        self._value: Any = self._items[0] if self._items else _zero(cls)
        self.expression: str | None = None

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def Class(self) -> str:  # noqa: N802 - Nuke's spelling
        return self._class

    def node(self) -> Node:
        return self._node

    def values(self) -> list[str]:
        return list(self._items)

    def enabled(self) -> bool:
        return "+DISABLED" not in self._flags

    def setValues(self, items: list[str]) -> None:  # noqa: N802
        """``Enumeration_Knob.setValues(items)``: replace the items (the value stays if listed)."""
        assert self._class == "Enumeration_Knob", self._class
        self._node.module._require_main(f"{self._name}.setValues")
        self._items = [str(i) for i in items]
        if self._value not in self._items:
            self._value = self._items[0] if self._items else ""

    def setFlag(self, flag: int) -> None:  # noqa: N802
        """``Knob.setFlag(nuke.DO_NOT_WRITE)`` etc.; only DO_NOT_WRITE has an effect here."""
        self._flags.add(f"flag{flag}")

    def written(self) -> bool:
        """Whether a script save writes this knob (not DO_NOT_WRITE)."""
        return f"flag{self._node.module.DO_NOT_WRITE}" not in self._flags

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802
        self._node.module._require_main(f"{self._name}.setEnabled")
        (self._flags.discard if enabled else self._flags.add)("+DISABLED")

    def value(self) -> Any:
        raw = self._evaluate_expression() if self.expression else self._value
        if self._class == "Int_Knob":
            return int(raw)
        if self._class == "Double_Knob":
            return float(raw)
        if self._class == "Boolean_Knob":
            return bool(raw)
        return raw

    def getValue(self) -> Any:  # noqa: N802
        if self._class == "Enumeration_Knob":
            return float(self._items.index(self._value))
        if self._class in ("Int_Knob", "Double_Knob", "Boolean_Knob"):
            return float(self.value())
        return self.value()

    def setValue(self, value: Any) -> bool:  # noqa: N802
        self._node.module._require_main(f"{self._node.name()}.{self._name}.setValue")
        self.expression = None
        self._value = self._coerce(value)
        self._node.module.calls.append(("setValue", self._node.fullName(), self._name, value))
        return True

    def set_from_script(self, text: str, expression: str | None) -> None:
        """Set the value as a script file does (no thread check, no recording)."""
        self.expression = expression
        if expression is None:
            self._value = self._coerce(text)

    def evaluate(self, frame: int | None = None) -> str:
        """The string with ``[value X]`` replaced and, for file knobs, the frame number put in."""
        text = _VALUE_REF.sub(lambda m: str(self._node.resolve_knob(m.group(1)).value()),
                              str(self.value()))
        if frame is not None:
            text = re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", text)
            text = re.sub(r"%0?(\d*)d", lambda m: f"{frame:0{m.group(1) or 1}d}", text)
        return text

    def execute(self) -> None:
        """Run a PyScript_Knob's code with ``nuke.thisNode()`` set to the owner."""
        assert self._class == "PyScript_Knob", self._class
        self._node.module.run_python(self._value, self._node)

    def _evaluate_expression(self) -> Any:
        assert self.expression is not None
        return self._node.resolve_knob(self.expression).value()

    def _coerce(self, value: Any) -> Any:
        cls = self._class
        if cls == "Enumeration_Knob":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return self._items[int(value)]
            if value not in self._items:
                raise ValueError(f"{self._name}: {value!r} is not one of {self._items}")
            return value
        if cls == "Int_Knob":
            if isinstance(value, str) and value.lower().startswith("0x"):
                return int(value, 16)
            return int(float(value))
        if cls == "Double_Knob":
            return float(value)
        if cls == "Boolean_Knob":
            if isinstance(value, str):
                return value in ("true", "1", "True")
            return bool(value)
        if cls == "Channel_Knob" and value != "none":
            layer = str(value).split(".")[0]
            if str(value) not in self._node.module.layer_channels(layer):
                raise ValueError(f"{self._name}: channel {value!r} is not in a declared layer")
        return "" if value is None else str(value)


def _zero(cls: str) -> Any:
    return {"Int_Knob": 0, "Double_Knob": 0.0, "Boolean_Knob": False}.get(cls, "")


class Node:
    """A node of the graph; ``module`` is the stand-in ``nuke`` module that owns it."""

    def __init__(self, module: Any, cls: str, parent: Group | None) -> None:
        self.module, self._class, self.parent = module, cls, parent
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = []
        for name, kcls in {**COMMON_KNOBS, **CLASS_KNOBS.get(cls, {})}.items():
            self.add_knob(Knob(self, name, kcls, ENUM_ITEMS.get((cls, name))))
        for name, value in DEFAULTS.get(cls, {}).items():
            self._knobs[name].set_from_script(str(value), None)

    def add_knob(self, knob: Knob) -> None:
        self._knobs[knob.name()] = knob

    def Class(self) -> str:  # noqa: N802
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def setName(self, name: str) -> None:  # noqa: N802
        self._knobs["name"].setValue(name)

    def fullName(self) -> str:  # noqa: N802
        if self.parent is None or self.parent.parent is None:
            return self.name()
        return f"{self.parent.fullName()}.{self.name()}"

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def input(self, i: int) -> Node | None:
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Node | None) -> bool:  # noqa: N802
        self.module._require_main(f"{self.name()}.setInput")
        self.connect(i, node)
        return True

    def connect(self, i: int, node: Node | None) -> None:
        """Wire input ``i`` without the thread check (script loading)."""
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        while self._inputs and self._inputs[-1] is None:
            self._inputs.pop()

    def resolve_knob(self, ref: str) -> Knob:
        """``parent.knob``, ``this.knob``, ``knob`` or ``Sibling.knob`` as Nuke's TCL finds it."""
        head, _, rest = ref.partition(".")
        if not rest:
            return self[head]
        if head == "parent":
            assert self.parent is not None
            return self.parent[rest]
        if head == "this":
            return self[rest]
        if head == "root":
            return self.module.root()[rest]
        assert self.parent is not None
        return self.parent.node(head)[rest]

    def firstFrame(self) -> int:  # noqa: N802
        if self._class == "Read":
            return int(self["first"].value())
        upstream = self.input(0)
        return upstream.firstFrame() if upstream else int(self.module.root()["first_frame"].value())

    def lastFrame(self) -> int:  # noqa: N802
        if self._class == "Read":
            return int(self["last"].value())
        upstream = self.input(0)
        return upstream.lastFrame() if upstream else int(self.module.root()["last_frame"].value())

    def channels(self) -> list[str]:
        """Channels this node outputs, in Nuke's ``layer.channel`` names."""
        if self._class == "Read":
            return self._read_channels()
        if self._class == "Copy":
            out = list(self.input(0).channels()) if self.input(0) else []
            if self.input(1) is not None:
                for i in range(4):
                    to = str(self[f"to{i}"].value())
                    if str(self[f"from{i}"].value()) != "none" and to != "none" and to not in out:
                        out.append(to)
            return out
        upstream = self.input(0)
        return upstream.channels() if upstream else []

    def image_source(self) -> Node | None:
        """The node whose image passes through this one (a group's Output, an Input's feed)."""
        return self.input(0)

    def format(self) -> images.Format:
        """The output format: a Read's file's (``images``), else the source's, else the root's."""
        if self._class == "Read":
            path = self._read_file(None)
            return images.file_geometry(path)[0] if path else images.root_format()
        upstream = self.image_source()
        return upstream.format() if upstream else images.root_format()

    def bbox(self) -> images.Box:
        """The output bbox; a Copy's follows its ``bbox`` knob (B = input 0, A = input 1)."""
        path = self._read_file(None) if self._class == "Read" else ""
        if path:
            return images.file_geometry(path)[1]
        upstream = None if self._class == "Read" else self.image_source()
        if self._class == "Copy" and upstream is not None and self.input(1) is not None:
            b, a = upstream.bbox(), self.input(1).bbox()
            mode = str(self["bbox"].value())
            return {"union": b.union(a), "B": b, "A": a, "intersection": b.intersection(a)}[mode]
        if upstream is not None:
            return upstream.bbox()
        fmt = self.format()
        return images.Box(0, 0, fmt.width(), fmt.height())

    def sample(self, channel: str, x: float, y: float, dx: float | None = None,
               dy: float | None = None, frame: int | None = None) -> float:
        """``Node.sample``: the pixel ``(x, y)`` lands in (impulse filter; no dx/dy support)."""
        assert dx is None and dy is None, "the stand-in samples single pixels only"
        if not self.bbox().contains(x, y):
            return 0.0
        if self._class == "Read":
            path = self._read_file(frame)
            return images.sample_file(path, channel, x, y) if path else 0.0
        if self._class == "Copy" and self.input(1) is not None:
            for i in range(4):
                source, to = str(self[f"from{i}"].value()), str(self[f"to{i}"].value())
                if to == channel and source != "none":
                    return self.input(1).sample(source, x, y, frame=frame)
        upstream = self.image_source()
        return upstream.sample(channel, x, y, frame=frame) if upstream else 0.0

    def _read_file(self, frame: int | None) -> str:
        """A Read's file at ``frame`` (default: its first frame), or "" when there is none."""
        path = self["file"].evaluate(self.firstFrame() if frame is None else frame)
        return path if path and os.path.isfile(path) else ""

    def _read_channels(self) -> list[str]:
        path = self["file"].evaluate(self.firstFrame())
        if not path or not os.path.isfile(path):
            return []
        if path.lower().endswith(".exr"):
            return [exr_channels.nuke_channel_name(c) for c in exr_channels.read_exr_channels(path)]
        return ["rgba.red", "rgba.green", "rgba.blue"]


class Group(Node):
    """A Group (also Root and gizmos): a node holding nodes."""

    def __init__(self, module: Any, cls: str, parent: Group | None) -> None:
        super().__init__(module, cls, parent)
        self.children: list[Node] = []
        self.user_knob_names: list[str] = []

    def begin(self) -> Group:
        self.module.context.append(self)
        return self

    def end(self) -> None:
        assert self.module.context[-1] is self, "end() on a group that is not the current one"
        self.module.context.pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def nodes(self) -> list[Node]:
        return list(self.children)

    def node(self, name: str) -> Node | None:
        head, _, rest = name.partition(".")
        for child in self.children:
            if child.name() == head:
                return child.node(rest) if rest and isinstance(child, Group) else child
        return None

    def output(self) -> Node | None:
        return next((c for c in self.children if c.Class() == "Output"), None)

    def group_input(self, number: int) -> Node | None:
        """The node feeding this group's input ``number``."""
        return self.input(number)

    def channels(self) -> list[str]:
        out = self.output()
        return out.channels() if out else []

    def image_source(self) -> Node | None:
        return self.output()

    def firstFrame(self) -> int:  # noqa: N802
        out = self.output()
        return out.firstFrame() if out else super().firstFrame()

    def lastFrame(self) -> int:  # noqa: N802
        out = self.output()
        return out.lastFrame() if out else super().lastFrame()


class InputNode(Node):
    """An ``Input`` inside a group: its output is what feeds the group's input ``number``."""

    def _feed(self) -> Node | None:
        return self.parent.group_input(int(self["number"].value())) if self.parent else None

    def input(self, i: int) -> Node | None:
        return self._feed() if i == 0 else None

    def channels(self) -> list[str]:
        feed = self._feed()
        return feed.channels() if feed else []

    def image_source(self) -> Node | None:
        return self._feed()

    def firstFrame(self) -> int:  # noqa: N802
        feed = self._feed()
        return feed.firstFrame() if feed else super().firstFrame()

    def lastFrame(self) -> int:  # noqa: N802
        feed = self._feed()
        return feed.lastFrame() if feed else super().lastFrame()


def is_main_thread() -> bool:
    """Whether the caller runs on the main thread."""
    return threading.current_thread() is threading.main_thread()
