"""Writer locks (issue 15, finding 1): exclusive create, stale take-over, ranges, races."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actormatte import locks
from actormatte.locks import LockedError, acquire, lock_output, lock_work


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_holder(path: Path, host: str, pid: int, token: str = "feedfacefeedface",
                  frames: list[int] | None = None, started: str = "") -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "started": started,
                                "command": "run", "created_ns": 1, "token": token,
                                "frames": frames}))


def test_second_writer_is_refused_naming_host_and_pid(tmp_path):
    with lock_work(tmp_path / "work", "propagate"):
        with pytest.raises(LockedError) as info:
            lock_work(tmp_path / "work", "run")
        assert info.value.exit_code == 2
        assert f"host {locks.HOST}, PID {os.getpid()} (propagate)" in str(info.value)
    with lock_work(tmp_path / "work", "run"):  # released: free again
        pass
    assert not locks.work_lock_path(tmp_path / "work").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    path = locks.work_lock_path(tmp_path)
    _write_holder(path, locks.HOST, _dead_pid())
    with lock_work(tmp_path, "run") as lock:
        assert json.loads(path.read_text())["token"] == lock.holder.token
    assert "taking over the stale lock" in caplog.text


def test_pid_reuse_is_not_a_live_holder(tmp_path):
    path = locks.work_lock_path(tmp_path)
    _write_holder(path, locks.HOST, os.getpid(), started="1")  # our PID, another start time
    with lock_work(tmp_path, "run"):
        pass


def test_other_host_lock_is_live_until_its_heartbeat_is_old(tmp_path, monkeypatch):
    path = locks.work_lock_path(tmp_path)
    _write_holder(path, "render-node-7", 4242)
    with pytest.raises(LockedError, match="host render-node-7, PID 4242"):
        lock_work(tmp_path, "run")
    old = time.time() - locks.STALE_AFTER_S - 10
    os.utime(path, (old, old))
    with lock_work(tmp_path, "run"):
        pass
    monkeypatch.setenv("ACTORMATTE_LOCK_STALE_S", "1e9")
    _write_holder(path, "render-node-7", 4242)
    os.utime(path, (old, old))
    with pytest.raises(LockedError):
        lock_work(tmp_path, "run")


def test_output_ranges_overlap_or_not(tmp_path):
    with lock_output(tmp_path, "shot_mattes", (1001, 1010), "matte"):
        with lock_output(tmp_path, "shot_mattes", (1011, 1020), "matte"):  # another chunk
            pass
        with lock_output(tmp_path, "other_mattes", (1001, 1010), "matte"):  # another pattern
            pass
        with pytest.raises(LockedError, match="frames 1005-1030"):
            lock_output(tmp_path, "shot_mattes", (1005, 1030), "matte")
    assert not list(tmp_path.glob("*.lock"))


def _contend(path: str, barrier, queue: multiprocessing.Queue) -> None:
    barrier.wait(timeout=300)  # every process started: they all try at once
    try:
        lock = acquire(Path(path), "contend", what="x")
    except LockedError:
        queue.put("refused")
        return
    queue.put("won")
    time.sleep(5.0)  # hold it while the others try (even on a loaded machine)
    lock.release()


@pytest.mark.parametrize("stale", [False, True], ids=["fresh", "stale"])
def test_racing_processes_exactly_one_wins(tmp_path, stale):
    path = tmp_path / "x.lock"
    if stale:
        _write_holder(path, locks.HOST, _dead_pid())
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    barrier = ctx.Barrier(6)
    procs = [ctx.Process(target=_contend, args=(str(path), barrier, queue)) for _ in range(6)]
    for proc in procs:
        proc.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert results == ["refused"] * 5 + ["won"]
    assert not path.exists()
