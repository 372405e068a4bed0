"""A small parser for Nuke's script syntax (``.nk`` / ``.gizmo``), for tests.

Nuke scripts are TCL: commands are words separated by blanks and ended by newlines; ``{...}``
groups words without substitution (braces nest), ``"..."`` quotes with backslash escapes, and a
node is a command ``Class {knob lines}``. Wiring is not written as names but with a stack:
every node pops ``inputs`` items (default 1; the top of the stack is input 0, the B input of a
Merge/Copy) and pushes itself; ``push $N`` / ``push 0`` push a saved node or an empty input;
``set N [stack 0]`` names the top; ``Group``/``Gizmo`` open a group that ``end_group`` closes.
These are the rules of Foundry's script files as written by Nuke itself (see any saved ``.nk``;
Nuke Python guide, "Saving and loading scripts").

The parser knows only what the ActorMatte gizmo and tests need: nodes, knob values (plain,
quoted, ``{{expression}}``), ``addUserKnob {type name l label t tip T value M {items} +FLAG}``,
``add_layer``, ``push``/``set``/``end_group``. Anything else raises :class:`ScriptError`, so a
typo in the gizmo fails a test instead of being skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

USER_KNOB_TYPES = {
    1: "String_Knob", 2: "File_Knob", 3: "Int_Knob", 4: "Enumeration_Knob", 6: "Boolean_Knob",
    7: "Double_Knob", 20: "Tab_Knob", 22: "PyScript_Knob", 26: "Text_Knob",
    43: "Multiline_Eval_String_Knob",
}
GROUP_CLASSES = ("Group", "Gizmo", "LiveGroup")


class ScriptError(ValueError):
    """The text is not a script this parser understands."""


@dataclass
class Word:
    """One TCL word; ``braced`` keeps ``{...}`` apart from quoted or bare words."""

    text: str
    braced: bool = False


@dataclass
class UserKnob:
    """One ``addUserKnob`` line."""

    type_id: int
    name: str
    label: str | None = None
    tooltip: str | None = None
    value: str | None = None          # the T argument: a PyScript's code or a Text_Knob's text
    items: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def knob_class(self) -> str:
        """Nuke's class name for the type id."""
        return USER_KNOB_TYPES.get(self.type_id, f"type{self.type_id}")


@dataclass
class KnobValue:
    """A knob line: the value words; ``expression`` for ``{{...}}``."""

    words: list[Word]

    @property
    def expression(self) -> str | None:
        """The expression of a ``{{expr}}`` value, else None."""
        if len(self.words) == 1 and self.words[0].braced:
            inner = self.words[0].text.strip()
            if inner.startswith("{") and inner.endswith("}"):
                return inner[1:-1].strip()
        return None

    @property
    def text(self) -> str:
        """The value as one string (words joined by a blank)."""
        return " ".join(w.text for w in self.words)


@dataclass
class ScriptNode:
    """A node of the script with its knobs, user knobs, inputs and (for groups) children."""

    cls: str
    knobs: dict[str, KnobValue] = field(default_factory=dict)
    user_knobs: list[UserKnob] = field(default_factory=list)
    inputs: list[ScriptNode | None] = field(default_factory=list)
    children: list[ScriptNode] = field(default_factory=list)
    layers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The ``name`` knob, else the class name."""
        return self.knobs["name"].text if "name" in self.knobs else self.cls

    def child(self, name: str) -> ScriptNode:
        """The child node with this name; KeyError when there is none."""
        for node in self.children:
            if node.name == name:
                return node
        raise KeyError(name)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "[": "[", "]": "]", "{": "{", "}": "}",
            "$": "$"}


def _read_braced(text: str, i: int) -> tuple[str, int]:
    depth, start = 1, i + 1
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i], i + 1
        i += 1
    raise ScriptError("unbalanced '{'")


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ScriptError("unterminated '\"'")


def split_commands(text: str) -> list[list[Word]]:
    """Split script text into commands, each a list of words."""
    commands: list[list[Word]] = []
    words: list[Word] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\n" or ch == ";":
            if words:
                commands.append(words)
            words = []
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "\\" and text[i + 1:i + 2] == "\n":
            i += 2
        elif ch == "#" and not words:
            while i < len(text) and text[i] != "\n":
                i += 1
        elif ch == "{":
            body, i = _read_braced(text, i)
            words.append(Word(body, braced=True))
        elif ch == '"':
            body, i = _read_quoted(text, i)
            words.append(Word(body))
        else:
            start = i
            while i < len(text) and text[i] not in " \t\r\n;":
                i += 2 if text[i] == "\\" else 1
            words.append(Word(text[start:i]))
    if words:
        commands.append(words)
    return commands


def parse_user_knob(spec: str) -> UserKnob:
    """Parse the body of ``addUserKnob {...}``."""
    words = split_commands(spec.replace("\n", " "))
    flat = [w for cmd in words for w in cmd]
    if len(flat) < 2:
        raise ScriptError(f"addUserKnob needs a type and a name: {spec!r}")
    knob = UserKnob(int(flat[0].text), flat[1].text)
    i = 2
    while i < len(flat):
        word = flat[i].text
        if word[:1] in "+-" and len(word) > 1:
            knob.flags.append(word)
            i += 1
            continue
        if i + 1 >= len(flat):
            raise ScriptError(f"addUserKnob option {word!r} has no value: {spec!r}")
        arg = flat[i + 1]
        if word == "l":
            knob.label = arg.text
        elif word == "t":
            knob.tooltip = arg.text
        elif word == "T":
            knob.value = arg.text
        elif word == "M":
            knob.items = [w.text for cmd in split_commands(arg.text) for w in cmd]
        elif word in ("R", "n"):   # slider range takes two values; group open/close one
            i += 2 if word == "n" else 3
            continue
        else:
            raise ScriptError(f"unknown addUserKnob option {word!r} in {spec!r}")
        i += 2
    return knob


def parse_node_body(cls: str, body: str) -> ScriptNode:
    """Parse the knob lines of one node."""
    node = ScriptNode(cls)
    for words in split_commands(body):
        key = words[0].text
        if key == "addUserKnob":
            if len(words) != 2 or not words[1].braced:
                raise ScriptError(f"{cls}: malformed addUserKnob")
            node.user_knobs.append(parse_user_knob(words[1].text))
        elif len(words) < 2:
            raise ScriptError(f"{cls}: knob {key!r} has no value")
        else:
            node.knobs[key] = KnobValue(words[1:])
    return node


def _inputs_of(node: ScriptNode) -> int:
    if node.cls == "Gizmo":   # a .gizmo's header: inputs counts the gizmo's own input arrows
        return 0
    if "inputs" in node.knobs:
        return int(node.knobs["inputs"].text)
    return 0 if node.cls in ("Input", "Read") else 1


class _Builder:
    """Applies commands to the node stack of the group being read."""

    def __init__(self) -> None:
        self.root = ScriptNode("Root")
        self.groups = [self.root]
        self.stacks: list[list[ScriptNode | None]] = [[]]
        self.saved: dict[str, ScriptNode | None] = {}

    def stack_command(self, head: str, words: list[Word]) -> None:
        stack = self.stacks[-1]
        if head == "push":
            ref = words[1].text
            stack.append(None if ref == "0" else self.saved[ref.lstrip("$")])
        elif head == "set":
            if len(words) != 4 or " ".join(w.text for w in words[2:]) != "[stack 0]":
                raise ScriptError(f"unsupported set: {' '.join(w.text for w in words)}")
            self.saved[words[1].text] = stack[-1]
        elif head == "end_group":
            if len(self.groups) == 1:
                raise ScriptError("end_group without an open group")
            group = self.groups.pop()
            self.stacks.pop()
            self.stacks[-1].append(group)
        elif head == "add_layer":
            names = [w.text for cmd in split_commands(words[1].text) for w in cmd]
            self.groups[-1].layers[names[0]] = names[1:]

    def node(self, head: str, body: str) -> None:
        stack = self.stacks[-1]
        node = parse_node_body(head, body)
        count = _inputs_of(node)
        if count > len(stack):
            raise ScriptError(f"{node.name}: needs {count} inputs, stack has {len(stack)}")
        node.inputs = [stack.pop() for _ in range(count)]   # the top of the stack is input 0
        self.groups[-1].children.append(node)
        if head in GROUP_CLASSES:
            self.groups.append(node)
            self.stacks.append([])
        else:
            stack.append(node)


def parse_script(text: str) -> ScriptNode:
    """Parse a whole script; returns a root node whose children are the top-level nodes.

    A ``.gizmo`` file gives a root with one ``Gizmo`` child holding the gizmo's nodes.
    """
    builder = _Builder()
    for words in split_commands(text):
        head = words[0].text
        if head == "version":
            continue
        if head in ("push", "set", "end_group", "add_layer"):
            builder.stack_command(head, words)
        elif len(words) == 2 and words[1].braced:
            builder.node(head, words[1].text)
        else:
            raise ScriptError(f"unknown command: {' '.join(w.text for w in words)!r}")
    if len(builder.groups) != 1:
        raise ScriptError(f"group {builder.groups[-1].name} is not closed with end_group")
    return builder.root
