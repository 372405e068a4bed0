"""ActorMatte toolbar entry (GUI only; Nuke runs menu.py after init.py when the UI starts)."""

import nuke

_toolbar = nuke.menu("Nodes")
_menu = _toolbar.addMenu("ActorMatte", icon="ActorMatte.png")
_menu.addCommand("ActorMatte", "nuke.createNode('ActorMatte')", icon="ActorMatte.png")
