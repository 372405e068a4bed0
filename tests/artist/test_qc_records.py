"""Per-frame QC records: qc.json re-assembled reading only frames that changed (issue 13).

The synthetic shot of ``test_preview_qc`` (8 frames, bob vanishes at 1005, alice grows at 1004).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from test_preview_qc import FIRST, H, W, shot_mattes, write_synthetic_shot

from actormatte.cli.main import main
from actormatte.export import MatteWriter
from actormatte.preview import find_sequence, shot_qc
from actormatte.qc import QCConfig, QCReport

FRAMES = list(range(FIRST, FIRST + 8))


def _direct(out: Path) -> dict[str, Any]:
    """qc.json figures and flags computed the old way: every frame read, in order."""
    sequence = find_sequence(out)
    report = QCReport(list(sequence.names))
    for frame in FRAMES:
        mattes = shot_mattes(frame)
        alphas = np.stack([mattes["bob"], mattes["alice"]])
        report.add(frame, alphas, alphas > 0.5)
    return report.to_json()


def test_records_are_reused_until_a_frame_changes(tmp_path: Path,
                                                  make_shot: Callable[..., Any]) -> None:
    out = write_synthetic_shot(tmp_path, make_shot)
    sequence = find_sequence(out)
    dest, work = out / "preview" / "plate_mattes", out / ".actormatte" / "plate_mattes"
    report, measured = shot_qc(sequence, FRAMES, dest, work, QCConfig())
    assert measured == 8 and report.to_json() == _direct(out)
    assert len(list((dest / "qc_frames").glob("*.json"))) == 8

    again, measured = shot_qc(sequence, FRAMES, dest, work, QCConfig())
    assert measured == 0 and again.to_json() == report.to_json()

    # Frame 1003 re-matted (bob moved): it and 1004 (whose change reads 1003) are measured.
    writer = MatteWriter(out, "plate_mattes", ["bob", "alice"], W, H)
    mattes = shot_mattes(1003)
    mattes["bob"] = np.roll(mattes["bob"], 4, axis=1)
    writer.write(1003, mattes)
    changed, measured = shot_qc(sequence, FRAMES, dest, work, QCConfig())
    assert measured == 2
    assert changed.frames[1003]["bob"]["change"] != report.frames[1003]["bob"]["change"]
    assert changed.frames[1004]["bob"]["change"] != report.frames[1004]["bob"]["change"]
    assert changed.frames[1005] == report.frames[1005]

    # A chunk's records (its first frame measured without its predecessor) are reused by the
    # whole shot except at the chunk's first frame.
    (dest / "qc_frames" / "1006.json").unlink()
    (dest / "qc_frames" / "1007.json").unlink()
    _, measured = shot_qc(sequence, [1006, 1007, 1008], dest, work, QCConfig())
    assert measured == 2  # 1008's record is still valid
    whole, measured = shot_qc(sequence, FRAMES, dest, work, QCConfig())
    assert measured == 1 and whole.to_json() == changed.to_json()


def test_qc_only_preview_writes_just_qc_json(tmp_path: Path, make_shot: Callable[..., Any],
                                            capsys: Any) -> None:
    out = write_synthetic_shot(tmp_path, make_shot)
    assert main(["preview", "--out", str(out), "--qc-only"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["preview"] is None and done["qc_frames_measured"] == 8
    assert done["flagged_frames"] == [1004, 1005]
    folder = out / "preview" / "plate_mattes"
    assert not list(folder.glob("*.png")) and not list(folder.glob("*.mp4"))
    qc = json.loads((folder / "qc.json").read_text())
    assert qc == _direct(out)
    assert main(["preview", "--out", str(out), "--qc-only"]) == 0
    done = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert done["qc_frames_measured"] == 0
