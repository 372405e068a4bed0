"""The one-pass ``run``: same bits as propagate + matte, each frame decoded once, cheap checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte import jobs, pipeline, propagate, propagate_passes
from actormatte.config import MaskConfig, MatteConfig, PropagateConfig, ReadConfig
from actormatte.errors import InputError
from actormatte.progress import CancelToken
from actormatte.shot import Shot, check_frames, frame_problem, open_shot
from actormatte.stream import FrameStore, WriteBehind, io_workers

SMALL = MatteConfig(size=64)
PLATE_XMEM = PropagateConfig(size=-1, checkpoint_every=2)


def _pixels(path: Path) -> np.ndarray:
    return oiio.ImageBuf(str(path)).get_pixels(oiio.FLOAT)


class _Decodes:
    """Counts Shot.decode_uint8 calls per frame."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: int | None = None) -> None:
        self.frames: list[int] = []
        original = Shot.decode_uint8

        def decode(shot: Shot, frame: int) -> np.ndarray:
            self.frames.append(frame)
            if frame == fail:
                raise InputError(f"plate frame {frame} is unreadable (test)")
            return original(shot, frame)

        monkeypatch.setattr(Shot, "decode_uint8", decode)


def _run(shot, out: Path, models: Path, keyframe: int, **kwargs) -> pipeline.RunResult:
    return pipeline.run(pipeline.RunOptions(
        plate=shot.pattern, out=str(out), masks=MaskConfig(masks=(f"{shot.ids}@{keyframe}",)),
        models=str(models), device="cpu", propagate=PLATE_XMEM, matte=SMALL, **kwargs))


def test_run_equals_propagate_then_matte(tmp_path, make_shot, models_dir, monkeypatch):
    shot = make_shot(8)
    decodes = _Decodes(monkeypatch)
    _run(shot, tmp_path / "run", models_dir, keyframe=1003)
    # Backward pass 1003..1001, forward 1003..1008: only the frames the store could not hold
    # between the passes and the windows are decoded again (none at this length).
    assert sorted(decodes.frames) == sorted({*range(1001, 1009), 1003})
    work = str(tmp_path / "work")
    pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=work, masks=MaskConfig(masks=(f"{shot.ids}@1003",)),
        models=str(models_dir), device="cpu", propagate=PLATE_XMEM))
    pipeline.matte(pipeline.MatteOptions(work=work, out=str(tmp_path / "matte"),
                                         models=str(models_dir), device="cpu", matte=SMALL))
    for frame in range(1001, 1009):
        a = _pixels(tmp_path / "run" / f"plate_mattes.{frame}.exr")
        b = _pixels(tmp_path / "matte" / f"plate_mattes.{frame}.exr")
        assert np.array_equal(a, b), f"frame {frame}: run differs from propagate + matte"


def test_run_decodes_each_frame_once_and_a_rerun_decodes_nothing(tmp_path, make_shot,
                                                                 models_dir, monkeypatch):
    shot = make_shot(9)
    decodes = _Decodes(monkeypatch)
    encodes: list[int] = []
    encode = jobs.encode_id_map

    def counted(labels: np.ndarray, frame: int) -> bytes:
        encodes.append(frame)
        return encode(labels, frame)

    for module in (jobs, propagate, propagate_passes):
        monkeypatch.setattr(module, "encode_id_map", counted)
    result = _run(shot, tmp_path / "out", models_dir, keyframe=1001)
    assert result.frames_written == 9
    assert sorted(decodes.frames) == list(range(1001, 1010))
    # Each XMem step's ID map is encoded once, for its pass map and the final map alike.
    assert sorted(encodes) == list(range(1001, 1010))
    decodes.frames.clear()
    encodes.clear()
    again = _run(shot, tmp_path / "out", models_dir, keyframe=1001)
    assert (again.frames_written, again.frames_skipped) == (0, 9)
    assert decodes.frames == [] and encodes == []


def test_decode_failure_mid_run_exits_2_keeps_complete_frames_and_resumes(
        tmp_path, make_shot, models_dir, monkeypatch):
    shot = make_shot(9)
    _run(shot, tmp_path / "whole", models_dir, keyframe=1001)
    with monkeypatch.context() as patch:
        _Decodes(patch, fail=1008)
        with pytest.raises(InputError) as raised:
            _run(shot, tmp_path / "out", models_dir, keyframe=1001)
    message = str(raised.value)
    assert raised.value.exit_code == 2
    assert "1008" in message and "run the same `actormatte run` command again" in message
    written = sorted((tmp_path / "out").glob("plate_mattes.*.exr"))
    assert 1 <= len(written) < 9
    for path in written:
        assert _pixels(path) is not None
    assert not list((tmp_path / "out").glob(".*.tmp*"))
    resumed = _run(shot, tmp_path / "out", models_dir, keyframe=1001)
    assert resumed.frames_skipped == len(written)
    for frame in range(1001, 1010):
        name = f"plate_mattes.{frame}.exr"
        assert np.array_equal(_pixels(tmp_path / "whole" / name), _pixels(tmp_path / "out" / name))


@pytest.mark.parametrize("ext", ["png", "tif", "jpg"])
def test_cheap_checks_find_truncated_frames(tmp_path, make_shot, ext):
    shot = make_shot(3, ext=ext)
    plate = open_shot(shot.pattern, None, ReadConfig())
    assert all(frame_problem(plate.plate, f) is None for f in range(1001, 1004))  # type: ignore[arg-type]
    check_frames(plate, 1001, 1003, lambda event: None, CancelToken())
    victim = shot.folder / f"plate.1002.{ext}"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size * 2 // 3])
    with pytest.raises(InputError, match="plate frame 1002 is (truncated|unreadable)"):
        check_frames(plate, 1001, 1003, lambda event: None, CancelToken())


def test_frame_store_holds_what_is_needed_and_stays_bounded():
    decoded: list[int] = []

    def decode(frame: int) -> np.ndarray:
        decoded.append(frame)
        return np.full((2, 2, 3), frame % 256, np.uint8)

    needed = {3, 4}
    store = FrameStore(decode, list(range(1, 40)), keep=lambda f: f in needed, capacity=5,
                       depth=2)
    try:
        for frame in range(1, 40):
            assert int(store.get(frame)[0, 0, 0]) == frame % 256
            assert len(store.held()) <= 5
            assert not set(store.held()) - needed - {frame + 1, frame + 2}
        assert sorted(decoded) == list(range(1, 40))  # read-ahead decoded each frame once
        assert int(store.get(3)[0, 0, 0]) == 3 and decoded.count(3) == 1  # kept
    finally:
        store.close()


def test_write_behind_returns_results_in_order_and_close_waits():
    pool: WriteBehind[int] = WriteBehind(workers=2, depth=2)
    done = [key for frame in range(6) for key, _ in pool.submit(frame, lambda f=frame: f * 2)]
    done += [key for key, _ in pool.drain()]
    assert done == list(range(6))
    list(pool.submit(7, lambda: 1))
    assert pool.close() in ([(7, 1)], [])


@pytest.mark.parametrize("cpus, read, write", [(1, 1, 1), (2, 1, 1), (16, 2, 1), (64, 10, 5)])
def test_io_workers_leave_torch_half_the_cores(cpus, read, write):
    workers = io_workers(cpus)
    assert (workers.read, workers.write) == (read, write)
    assert (workers.read + workers.write) * workers.oiio <= max(2, cpus // 2)
