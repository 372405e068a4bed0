"""The work folder: ``job.json``, the propagated ID maps and the propagation checkpoint.

Written by the propagate stage and read by the matte stage (both in :mod:`actormatte.pipeline`),
possibly on different machines that see the same paths (docs/CLI.md, "The work folder"):

- ``<work>/job.json``: plate, frame range, size, actors, colour space and propagation options;
  ``complete`` turns true when every frame's ID map is on disk;
- ``<work>/masks/<frame>.png``: one 16-bit instance-ID map per frame at plate resolution
  (0 background, k = actor id k), written atomically;
- ``<work>/checkpoint/state.pt``: the propagation state (written by :mod:`actormatte.propagate`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from actormatte import __version__
from actormatte.errors import InputError
from actormatte.threads import current_threads

JOB_FILE = "job.json"
JOB_FORMAT = 1


@dataclass(frozen=True)
class JobActor:
    """One actor as the work folder records it.

    Attributes:
        name: Display name.
        id: Actor id (the value in the ID maps).
        keyframe: First frame at which the actor is annotated.
    """

    name: str
    id: int
    keyframe: int


@dataclass(frozen=True)
class Job:
    """What ``propagate`` did, and what ``matte`` needs to know about it.

    Attributes:
        plate: Plate path or pattern, absolute.
        start_frame: First frame number of a movie plate.
        first: First propagated frame.
        last: Last propagated frame.
        width: Plate width.
        height: Plate height.
        input_colorspace: OCIO colour space the plate was read in.
        actors: Actors in id order.
        keyframes: Annotated frames.
        keyframes_sha256: Digest of the keyframe masks (detects a changed annotation on resume).
        xmem_size: XMem's short side (-1: plate size).
        xmem_options: Other XMem knobs that change the result (mem_every, memory sizes, the
            pixel aspect when not 1: XMem sees the squared picture).
        xmem_sha256: sha256 of the XMem weights used.
        complete: Every frame's ID map is written.
        version: ActorMatte version that wrote the job.
        threads: CPU threads of the process that propagated (0: not recorded); CPU results
            depend on it (:mod:`actormatte.threads`).
    """

    plate: str
    start_frame: int
    first: int
    last: int
    width: int
    height: int
    input_colorspace: str
    actors: tuple[JobActor, ...]
    keyframes: tuple[int, ...]
    keyframes_sha256: str
    xmem_size: int
    xmem_options: dict[str, float] = dataclasses.field(default_factory=dict)
    xmem_sha256: str = ""
    complete: bool = False
    version: str = __version__
    threads: int = 0

    @property
    def frames(self) -> range:
        """Every propagated plate frame."""
        return range(self.first, self.last + 1)

    def identity(self) -> dict[str, Any]:
        """The fields that must match for a work folder to be resumed."""
        fields = json.loads(json.dumps(self.to_json()))
        for volatile in ("complete", "version", "format", "threads"):
            fields.pop(volatile, None)
        return dict(fields)

    def to_json(self) -> dict[str, Any]:
        """The ``job.json`` object."""
        data = dataclasses.asdict(self)
        data["actors"] = [dataclasses.asdict(a) for a in self.actors]
        data["keyframes"] = list(self.keyframes)
        data["format"] = JOB_FORMAT
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """Parse a ``job.json`` object (raises KeyError/TypeError on a malformed one)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["actors"] = tuple(JobActor(**a) for a in data["actors"])
        values["keyframes"] = tuple(int(f) for f in data["keyframes"])
        return cls(**values)


class WorkFolder:
    """Paths and atomic reads/writes inside one work folder.

    Args:
        root: The ``--work`` folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()

    @property
    def job_path(self) -> Path:
        """``<work>/job.json``."""
        return self.root / JOB_FILE

    @property
    def masks_dir(self) -> Path:
        """``<work>/masks``."""
        return self.root / "masks"

    @property
    def checkpoint_dir(self) -> Path:
        """``<work>/checkpoint``."""
        return self.root / "checkpoint"

    def mask_path(self, frame: int) -> Path:
        """The ID map of one frame."""
        return self.masks_dir / f"{frame:04d}.png"

    def check_writable(self) -> None:
        """Raise :class:`InputError` if the work folder cannot be created or written."""
        check_folder_writable(self.root, "--work")

    def read_job(self) -> Job:
        """Read ``job.json``.

        Raises:
            InputError: Missing or unreadable, with the fix (run ``propagate`` first).
        """
        try:
            data = json.loads(self.job_path.read_text(encoding="utf-8"))
            return Job.from_json(data)
        except FileNotFoundError as exc:
            raise InputError(f"--work {self.root} has no {JOB_FILE}; run `actormatte propagate "
                             f"PLATE --work {self.root} MASKS` first") from exc
        except PermissionError as exc:
            raise permission_error(self.job_path, "read") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.job_path} is unreadable ({exc}); run `actormatte propagate` "
                             "again with --overwrite") from exc

    def write_job(self, job: Job) -> None:
        """Write ``job.json`` atomically, stamped with this process's CPU thread count."""
        if not job.threads:
            job = dataclasses.replace(job, threads=current_threads())
        text = json.dumps(job.to_json(), indent=2, sort_keys=True) + "\n"
        _atomic_write(self.job_path, text.encode("utf-8"))

    def write_mask(self, frame: int, labels: np.ndarray, encoded: bytes | None = None) -> None:
        """Write one frame's ID map atomically.

        Args:
            frame: Plate frame.
            labels: The map.
            encoded: ``encode_id_map(labels)`` when the caller has it (encoded once, written
                to several folders).

        Shape:
            labels: (H, W) integer ids, stored as 16-bit PNG.
        """
        data = encode_id_map(labels, frame) if encoded is None else encoded
        _atomic_write(self.mask_path(frame), data)

    def read_mask(self, frame: int, size: tuple[int, int]) -> np.ndarray:
        """Read one frame's ID map.

        Args:
            frame: Plate frame.
            size: Expected (width, height).

        Shape:
            Returns (H, W) uint16.

        Raises:
            InputError: Missing, unreadable or of another size (the fix: re-run propagate).
        """
        path = self.mask_path(frame)
        if path.is_file() and not os.access(path, os.R_OK):
            raise permission_error(path, "read")
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if labels is None:
            raise InputError(f"propagated mask of frame {frame} is missing or unreadable: {path}; "
                             f"run `actormatte propagate` for --work {self.root} first")
        if labels.ndim != 2 or (labels.shape[1], labels.shape[0]) != size:
            raise InputError(f"{path} is {labels.shape[1]}x{labels.shape[0]}, the plate is "
                             f"{size[0]}x{size[1]}; re-run propagate with --overwrite")
        return labels.astype(np.uint16, copy=False)


def encode_id_map(labels: np.ndarray, frame: int) -> bytes:
    """The 16-bit PNG bytes of an ID map (the one encoding of every ``masks/`` file).

    Shape:
        labels: (H, W) integer ids.

    Raises:
        OSError: The encoder failed.
    """
    ok, data = cv2.imencode(".png", labels.astype(np.uint16, copy=False))
    if not ok:
        raise OSError(f"PNG encoding of the ID map of frame {frame} failed")
    return data.tobytes()


def check_folder_writable(folder: Path, flag: str) -> None:
    """Check, without creating anything, that ``folder`` exists writable or can be created.

    Raises:
        InputError: The nearest existing ancestor is a file or is not writable; the message
            names ``flag`` and the fix.
    """
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{flag} {folder}: {probe} is a file, not a folder; choose another "
                         f"{flag} folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {folder}: {probe} is not writable; choose a {flag} folder "
                         "you can write to, or fix its permissions")


def keyframes_digest(label_maps: list[tuple[int, np.ndarray]]) -> str:
    """sha256 over keyframe (frame, label map) pairs, to detect changed annotations."""
    digest = hashlib.sha256()
    for frame, labels in label_maps:
        digest.update(f"{frame}:{labels.shape}".encode())
        digest.update(np.ascontiguousarray(labels, dtype=np.uint16).tobytes())
    return digest.hexdigest()


def permission_error(path: Path, action: str) -> InputError:
    """The error for a file this user may not ``action`` (``read``/``write``), naming the fix.

    Work folders are shared between farm users: the fix is the file's permissions (or running
    as a user who has them), never re-propagating.
    """
    folder = path.parent if action == "write" else path
    return InputError(f"permission denied: cannot {action} {path}; it belongs to another user "
                      f"or has restrictive permissions. Give this user {action} access "
                      f"(e.g. `chmod -R g+rwX {folder}` with a shared group, or umask 002 on "
                      "the writing nodes), or run as the user who wrote it")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it into place.

    The temporary file is created with mode 0666 so that the umask (and a default ACL) decide
    the final permissions, as for any file a program creates (``mkstemp`` would force 0600).

    Raises:
        InputError: Permission denied (names the file and the fix).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except PermissionError as exc:
        raise permission_error(path, "write") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except PermissionError as exc:
        tmp.unlink(missing_ok=True)
        raise permission_error(path, "write") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
