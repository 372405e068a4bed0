"""Whether a weights file loads the way ``run`` loads it: keys, shapes and dtypes, not only bytes.

Called by :func:`actormatte.weights.manifest.verify_models` (``actormatte weights verify`` and
``actormatte info --verify``). A hash only says a file is the one that was installed; a file
installed from a wrong or truncated source has a matching hash yet fails ``run`` with exit code 4.
So verify also builds the network on the CPU with the same strict loaders the pipeline uses
(:func:`actormatte.propagation.load_xmem`, :func:`actormatte.matting.loading.load_maggie`) and
reports their message. The network modules are imported only here, lazily.
"""

from __future__ import annotations

from pathlib import Path

from actormatte.errors import ActorMatteError

#: Models whose weights file is checked by loading it, and the loader's variant.
LOADABLE = {"xmem": "", "maggie-video": "video", "maggie-image": "image"}


def load_problem(model: str, path: Path) -> str | None:
    """Load ``path`` (the weights file of ``model``) strictly on the CPU.

    Returns:
        The loader's error message, or ``None`` when it loads (or ``model`` is not checked).
    """
    if model not in LOADABLE or not path.is_file():
        return None
    try:
        if model == "xmem":
            from actormatte.propagation import load_xmem

            load_xmem(path, device="cpu")
        else:
            from actormatte.matting.loading import load_maggie

            load_maggie(path.parent, LOADABLE[model], device="cpu")  # type: ignore[arg-type]
    except ActorMatteError as exc:
        return str(exc)
    return None
