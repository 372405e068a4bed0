"""``actormatte weights {install,verify,list}``: fetch, check and list the model weights.

Registered by :mod:`actormatte.cli.main`. install.py runs ``actormatte weights install --models DIR
[--weights-from DIR]`` from the new venv. Events go to stdout as NDJSON (``docs/CLI.md``); people
read the stderr lines. Missing or wrong weights exit with code 4.

Events: ``start``; ``warning`` (licence notices included: MaGGIe is non-commercial);
``progress`` with ``stage: "weights"``, ``file``, ``done``/``total`` in bytes; ``installed`` and
``skip`` per file (install); ``verify`` per file (verify); ``model`` per registry entry (list);
``done`` at the end.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actormatte.cli.protocol import Reporter
from actormatte.errors import WeightsError
from actormatte.weights import (
    REGISTRY,
    InstallEvent,
    get_model,
    install_weights,
    resolve_models_dir,
    verify_models,
)


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _only(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        get_model(name)  # raises WeightsError naming the known models
    return names


def _install_events(reporter: Reporter) -> Any:
    def on_event(event: InstallEvent) -> None:
        if event.kind in ("notice", "warning"):
            reporter.warning(event.message)
        elif event.kind == "progress":
            reporter.emit("progress", stage="weights", file=event.file, done=event.done,
                          total=event.total)
            if event.total:
                _say(f"weights: {event.file} {100 * event.done // event.total}%")
        else:
            reporter.emit(event.kind, file=event.file, bytes=event.done, message=event.message)
            _say(f"weights: {event.message}")
    return on_event


def _run_install(args: argparse.Namespace) -> int:
    reporter: Reporter = args.reporter
    models_dir = resolve_models_dir(args.models)
    names = _only(args.only)
    reporter.emit("start", command="weights install", models=str(models_dir),
                  weights_from=str(args.weights_from) if args.weights_from else None)
    manifest = install_weights(models_dir, weights_from=args.weights_from,
                               progress=_install_events(reporter), models=names)
    installed = sorted({entry.model for entry in manifest.files.values()})
    reporter.emit("done", command="weights install", models=str(models_dir),
                  manifest=str(models_dir / "manifest.json"), installed=installed)
    _say(f"weights: installed {', '.join(installed)} in {models_dir}")
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    reporter: Reporter = args.reporter
    models_dir = resolve_models_dir(args.models)
    names = _only(args.only)
    report = verify_models(models_dir, names)
    for warning in report.warnings:
        reporter.warning(warning)
    failures = []
    for status in report.files:
        reporter.emit("verify", file=status.relpath, model=status.model, status=status.status,
                      message=status.message)
        _say(f"{status.status:>10}  {status.relpath}")
        needed = names is not None or REGISTRY[status.model].required
        if status.status == "mismatch" or (status.status == "missing" and needed):
            failures.append(status.message)
        elif status.status == "missing":
            reporter.warning(f"{status.message} (optional: {REGISTRY[status.model].description})")
    if failures:
        raise WeightsError("weights check failed: " + "; ".join(failures) +
                           f"; run `actormatte weights install --models {models_dir}`")
    reporter.emit("done", command="weights verify", models=str(models_dir), ok=True,
                  manifest=report.has_manifest)
    return 0


def _run_list(args: argparse.Namespace) -> int:
    reporter: Reporter = args.reporter
    models_dir = resolve_models_dir(args.models)
    _say(f"models folder: {models_dir}")
    for entry in REGISTRY.values():
        files = []
        for weight in entry.files:
            path = models_dir / weight.relpath
            files.append({"file": weight.relpath, "present": path.is_file(),
                          "size": path.stat().st_size if path.is_file() else None,
                          "source": weight.source, "sha256": weight.sha256})
        present = all(f["present"] for f in files)
        reporter.emit("model", name=entry.name, description=entry.description,
                      licence=entry.licence, licence_url=entry.licence_url,
                      required=entry.required, present=present, files=files)
        flag = "present" if present else "missing"
        need = "required" if entry.required else "optional"
        _say(f"{entry.name:<14} {flag:<8} {need:<9} {entry.licence:<13} {entry.description}")
        if entry.notice:
            _say(f"{'':<14} note: {entry.notice}")
    reporter.emit("done", command="weights list", models=str(models_dir))
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``weights`` and its sub-commands to the ``actormatte`` argument tree."""
    parser = subparsers.add_parser(
        "weights", help="install, verify or list the model weights",
        description="Install, verify or list the model weights (MaGGIe weights are CC BY-NC "
                    "4.0: non-commercial use only).")
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    helps = {"install": "download the weights (or copy them with --weights-from) and record "
                        "their sha256 in <models>/manifest.json",
             "verify": "check every file against the manifest (exit 4 when one is missing "
                       "or differs)",
             "list": "list the models, their licences and whether they are installed"}
    handlers = {"install": _run_install, "verify": _run_verify, "list": _run_list}
    for action, text in helps.items():
        sub = actions.add_parser(action, help=text, description=text)
        sub.add_argument("--models", default=None, metavar="DIR",
                         help="models folder (default: $ACTORMATTE_MODELS, else the folder "
                              "install.py recorded, else <repo>/models)")
        if action != "list":
            sub.add_argument("--only", default=None, metavar="NAME[,NAME]",
                             help=f"only these models ({', '.join(REGISTRY)})")
        if action == "install":
            sub.add_argument("--weights-from", default=None, metavar="DIR",
                             help="copy from this folder (a models folder or Hugging Face "
                                  "snapshots) instead of downloading")
        sub.set_defaults(handler=handlers[action])
