"""Two ``run`` processes into one output folder (issue 15, finding 1): one writes, one exits 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import cv2
import numpy as np

CLI = [sys.executable, "-m", "actormatte.cli.main"]


def test_two_concurrent_runs_one_exits_2_naming_the_holder(tmp_path, make_shot, models_dir):
    shot = make_shot(4)
    other_ids = tmp_path / "other_ids.png"
    ids = cv2.imread(str(shot.ids), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(other_ids), np.where(ids > 0, 3 - ids, 0).astype(np.uint16))  # swapped
    out = tmp_path / "out"
    procs = [subprocess.Popen(CLI + ["run", shot.pattern, "--out", str(out), "--models",
                                     str(models_dir), "--masks", str(masks), "--size", "64",
                                     "--xmem-size", "-1", "--no-progress-bar",
                                     "--device", "cpu"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for masks in (shot.ids, other_ids)]
    results = [(proc, *proc.communicate(timeout=600)) for proc in procs]
    codes = sorted(proc.returncode for proc, _, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, _, err in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    loser_out = next(out_ for p, out_, _ in results if p.returncode == 2)
    error = json.loads(loser_out.splitlines()[-1])
    assert error["event"] == "error" and error["code"] == 2
    assert f"host {socket.gethostname()}, PID {winner.pid}" in error["message"]
    assert len(list(out.glob("plate_mattes.*.exr"))) == 4
    assert not list(out.rglob("*.lock"))
