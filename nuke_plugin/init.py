"""ActorMatte plugin bootstrap: runs in every Nuke mode (GUI, ``nuke -t``, ``nuke -x`` renders).

Adds the gizmo, Python and icon folders to Nuke's plugin path so that scripts containing the
ActorMatte gizmo load and render anywhere this folder is on ``NUKE_PATH``. No UI here: the
toolbar entry lives in menu.py, which Nuke runs only with the GUI.
"""

import os

import nuke

_HERE = os.path.dirname(os.path.abspath(__file__))

for _folder in ("icons", "python", "gizmos"):
    nuke.pluginAddPath(os.path.join(_HERE, _folder).replace("\\", "/"))
