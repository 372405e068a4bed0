#!/usr/bin/env python3
"""Check ``blender_addon/blender_manifest.toml`` and build the extension zip.

    python3 tools/build_blender_extension.py            # -> dist/actormatte-<version>.zip
    python3 tools/build_blender_extension.py --check    # manifest and sources only

Our own checks always run: the manifest fields Blender requires (schema 1.0.0, id, version,
tagline and permission reasons of at most 64 characters ending alphanumerically, SPDX licence,
``blender_version_min`` >= 4.2.0, type add-on) plus what ActorMatte promises (only the ``files``
permission since nothing goes online, no bundled wheels, sources compile and import neither torch
nor numpy). Then the zip is built by the first of: a ``blender`` on PATH
(``blender --command extension build``), Blender's own ``blender_ext.py`` from a bpy test venv
(``.venv-bpy*``), else this script's zip writer (after its checks). Standard library only
(Python >= 3.11 for tomllib).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "blender_addon"
TERSE_MAX = 64
PERMISSIONS = {"files", "network", "clipboard", "camera", "microphone"}
FORBIDDEN_IMPORTS = {"torch", "numpy", "actormatte"}
REQUIRED = ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
            "blender_version_min", "license")
EXCLUDE = ("__pycache__/*", "*.pyc", ".*")


def _terse_error(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if len(value) > TERSE_MAX:
        return f"must be at most {TERSE_MAX} characters, has {len(value)}"
    if not (value[-1].isalnum() or value[-1] in ")]}"):
        return "must not end with punctuation"
    return None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def check_manifest(manifest: dict) -> list[str]:
    """Problems with a parsed manifest (empty when it is fine)."""
    errors = [f"missing field {key!r}" for key in REQUIRED if key not in manifest]
    if errors:
        return errors
    if manifest["schema_version"] != "1.0.0":
        errors.append("schema_version must be \"1.0.0\"")
    if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", str(manifest["id"])):
        errors.append("id must be a lower-case identifier")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(manifest["version"])):
        errors.append("version must be semantic (1.2.3)")
    if manifest["type"] != "add-on":
        errors.append("type must be \"add-on\"")
    if (error := _terse_error(manifest["tagline"])) is not None:
        errors.append(f"tagline {error}")
    minimum = str(manifest["blender_version_min"])
    if not re.fullmatch(r"\d+\.\d+\.\d+", minimum) or _version(minimum) < (4, 2, 0):
        errors.append("blender_version_min must be 4.2.0 or newer (extensions need 4.2)")
    licences = manifest["license"]
    if not isinstance(licences, list) or not licences or \
            not all(isinstance(x, str) and x.startswith("SPDX:") for x in licences):
        errors.append("license must be a list of \"SPDX:...\" identifiers")
    errors += _check_permissions(manifest.get("permissions"))
    if manifest.get("wheels"):
        errors.append("wheels: the add-on is pure Python; torch lives in the core's venv")
    return errors


def _check_permissions(permissions: object) -> list[str]:
    if not isinstance(permissions, dict):
        return ["permissions must be a table of reasons"]
    errors = []
    for key, reason in permissions.items():
        if key not in PERMISSIONS:
            errors.append(f"unknown permission {key!r}")
        elif (error := _terse_error(reason)) is not None:
            errors.append(f"permission {key!r}: reason {error}")
    if set(permissions) != {"files"}:
        errors.append("ActorMatte asks for the files permission only (it never goes online)")
    return errors


def check_sources(source: Path) -> list[str]:
    """Sources that do not parse or import what Blender's Python does not have."""
    errors = []
    if not (source / "__init__.py").is_file():
        errors.append("__init__.py missing")
    for path in sorted(source.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except SyntaxError as error:
            errors.append(f"{path.name}: {error}")
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                if name.split(".")[0] in FORBIDDEN_IMPORTS:
                    errors.append(f"{path.name}: imports {name} (not in Blender's Python)")
    return errors


def package_files(source: Path) -> list[Path]:
    """The files that go into the zip, relative to ``source``."""
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not any(fnmatch.fnmatch(part, pattern) or
                                      fnmatch.fnmatch(str(relative), pattern)
                                      for part in relative.parts for pattern in EXCLUDE):
            files.append(relative)
    return files


def blender_ext_script() -> Path | None:
    """Blender's extension tool from a bpy test venv, if one exists."""
    for venv_dir in sorted(ROOT.glob(".venv-bpy*")):
        found = sorted(venv_dir.glob("lib/python3*/site-packages/bpy/*/scripts/addons_core/"
                                     "bl_pkg/cli/blender_ext.py"))
        if found:
            return found[-1]
    return None


def build(source: Path, output: Path) -> str:
    """Build the zip at ``output``; returns which builder made it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    args = ["build", "--source-dir", str(source), "--output-filepath", str(output)]
    blender = shutil.which("blender")
    if blender:
        subprocess.run([blender, "--factory-startup", "--command", "extension", *args],
                       check=True)
        return f"blender ({blender})"
    script = blender_ext_script()
    if script is not None:
        subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
        subprocess.run([sys.executable, str(script), "validate", str(output)], check=True)
        return f"Blender's blender_ext.py ({script})"
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in package_files(source):
            archive.write(source / relative, relative.as_posix())
    return "this script's zip writer"


def main(argv: list[str] | None = None) -> int:
    """Check, then build unless ``--check``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "dist")
    parser.add_argument("--check", action="store_true", help="check only, build nothing")
    args = parser.parse_args(argv)
    manifest = tomllib.loads((args.source / "blender_manifest.toml").read_text(encoding="utf-8"))
    errors = check_manifest(manifest) + check_sources(args.source)
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"manifest and sources OK: {manifest['id']} {manifest['version']}")
    if args.check:
        return 0
    output = args.out_dir / f"{manifest['id']}-{manifest['version']}.zip"
    print(f"built {output} with {build(args.source, output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
