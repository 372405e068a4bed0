"""run's work folder: ID maps held for the matte windows and written behind the propagation."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import numpy as np
import pytest

from actormatte.errors import InputError
from actormatte.jobs import WorkFolder
from actormatte.mask_memo import MaskMemo


def _labels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, (24, 40)).astype(np.uint16)


def test_every_way_to_a_map_waits_for_its_write(tmp_path: Path, monkeypatch) -> None:
    gate = threading.Event()
    original = WorkFolder.write_mask

    def slow(self: WorkFolder, frame: int, labels: np.ndarray,
             encoded: bytes | None = None) -> None:
        gate.wait(10)
        original(self, frame, labels, encoded)

    monkeypatch.setattr(WorkFolder, "write_mask", slow)
    memo = MaskMemo(tmp_path / "work")
    memo.write_mask(1001, _labels(1))
    memo.write_mask(1002, _labels(2))
    plain = WorkFolder(tmp_path / "work")
    assert not plain.mask_path(1001).exists()  # behind: not on disk yet
    assert np.array_equal(memo.read_mask(1001, (40, 24)), _labels(1))  # from memory
    threading.Timer(0.2, gate.set).start()
    path = memo.mask_path(1001)  # waits
    assert path.is_file()
    memo.flush()
    expected = WorkFolder(tmp_path / "sync")
    original(expected, 1002, _labels(2))
    assert plain.mask_path(1002).read_bytes() == expected.mask_path(1002).read_bytes()
    memo.close()


def test_a_full_disk_in_the_writer_is_raised_as_exit_2(tmp_path: Path, monkeypatch) -> None:
    original = WorkFolder.write_mask

    def full(self: WorkFolder, frame: int, labels: np.ndarray,
             encoded: bytes | None = None) -> None:
        if frame == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, frame, labels, encoded)

    monkeypatch.setattr(WorkFolder, "write_mask", full)
    memo = MaskMemo(tmp_path / "work")
    memo.write_mask(1, _labels(3))
    memo.write_mask(2, _labels(4))
    memo.write_mask(3, _labels(5))
    with pytest.raises(InputError, match="no space left on"):
        memo.flush()
    memo.close()
    assert WorkFolder(memo.root).mask_path(1).is_file()
    assert not WorkFolder(memo.root).mask_path(2).exists()


def test_depth_bounds_the_writes_in_flight(tmp_path: Path) -> None:
    memo = MaskMemo(tmp_path / "work", depth=2)
    for frame in range(10):
        memo.write_mask(frame, _labels(frame))
        assert len(memo._pending) <= 2
    memo.close()
    for frame in range(10):
        assert np.array_equal(WorkFolder(memo.root).read_mask(frame, (40, 24)), _labels(frame))
