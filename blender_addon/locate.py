"""Find the ActorMatte core CLI and prepare its environment, for the Blender extension.

Pure Python (no bpy): ``preferences.py`` calls :func:`find_cli`, ``cli_client.CliJob`` calls
:func:`child_environment`; the core venv's tests exercise both directly.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

ENV_CLI = "ACTORMATTE_CLI"
RECORD_NAME = "actormatte-install.json"
# Environment variables Blender's own Python sets that would break the core venv's interpreter.
_BLENDER_PYTHON_VARS = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


class CliNotFoundError(RuntimeError):
    """No ActorMatte CLI could be found; the message lists where the add-on looked."""


def _cli_from_record(record: Path) -> Path | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cli = data.get("cli") if isinstance(data, dict) else None
    return Path(cli) if isinstance(cli, str) and Path(cli).is_file() else None


def _cli_from_setting(setting: str) -> Path | None:
    """A preference value: the CLI itself, an install record, or a venv folder holding one."""
    path = Path(os.path.expanduser(setting))
    if path.is_dir():
        path = path / RECORD_NAME
    if path.name == RECORD_NAME:
        return _cli_from_record(path)
    return path if path.is_file() else None


def find_cli(preference: str = "", environ: Mapping[str, str] | None = None,
             addon_dir: Path | None = None) -> tuple[Path, str]:
    """Find the core CLI, in this order, and say where it came from.

    1. the add-on preference (the CLI, its venv folder or its ``actormatte-install.json``);
    2. ``$ACTORMATTE_CLI`` (same forms);
    3. the install record of a repository checkout the add-on sits in
       (``<repo>/.venv/actormatte-install.json`` for ``<repo>/blender_addon``);
    4. ``actormatte`` on ``PATH``.

    Returns:
        The CLI's path and a short description of the source.

    Raises:
        CliNotFoundError: Nothing found; the message names every place tried.
    """
    environ = os.environ if environ is None else environ
    tried = []
    for setting, source in ((preference, "preference"),
                            (environ.get(ENV_CLI, ""), f"${ENV_CLI}")):
        if setting:
            found = _cli_from_setting(setting)
            if found is not None:
                return found, source
            tried.append(f"{source} {setting!r} (not an executable, venv or install record)")
    if addon_dir is not None:
        record = addon_dir.resolve().parent / ".venv" / RECORD_NAME
        found = _cli_from_record(record)
        if found is not None:
            return found, f"install record {record}"
        tried.append(f"install record {record}")
    on_path = shutil.which("actormatte", path=environ.get("PATH"))
    if on_path:
        return Path(on_path), "PATH"
    tried.append("`actormatte` on PATH")
    raise CliNotFoundError(
        "ActorMatte core CLI not found; run `python3 install.py` in the ActorMatte checkout, then "
        "set the CLI path in the add-on preferences. Looked at: " + "; ".join(tried))


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: ours without the variables that pin Blender's bundled Python."""
    env = dict(os.environ if environ is None else environ)
    for name in _BLENDER_PYTHON_VARS:
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
