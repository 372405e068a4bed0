"""Movie plates through OpenCV: numbering, sequential and random access, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from actormatte.errors import InputError
from actormatte.io import MoviePlate, open_plate

H, W, COUNT = 48, 64, 12


def frame_colour(index: int) -> tuple[int, int, int]:
    """RGB of movie frame ``index``: distinct per frame, flat so the codec keeps it."""
    return (20 * index % 256, 240 - 15 * index, 128)


def write_movie(path: Path, fourcc: str) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 24.0, (W, H))
    assert writer.isOpened(), f"cv2 cannot write {fourcc} to {path.suffix}"
    for index in range(COUNT):
        rgb = np.empty((H, W, 3), dtype=np.uint8)
        rgb[:] = frame_colour(index)
        rgb[: H // 2, : W // 2] = 255 - rgb[0, 0]  # some structure
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


@pytest.fixture(scope="module", params=[("MJPG", ".avi"), ("mp4v", ".mp4")])
def movie(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fourcc, ext = request.param
    path = tmp_path_factory.mktemp("movie") / f"shot{ext}"
    write_movie(path, fourcc)
    return path


class CountingCapture:
    """Wraps a cv2.VideoCapture and counts seeks."""

    def __init__(self, capture: Any) -> None:
        self.capture, self.seeks = capture, 0

    def set(self, prop: int, value: float) -> bool:
        self.seeks += prop == cv2.CAP_PROP_POS_FRAMES
        return bool(self.capture.set(prop, value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.capture, name)


def test_movie_frames_values_and_numbering(movie: Path) -> None:
    with open_plate(movie, start_frame=1001) as plate:
        assert isinstance(plate, MoviePlate)
        assert plate.frames == list(range(1001, 1001 + COUNT))
        assert (plate.width, plate.height, plate.channels, plate.is_float) == (W, H, 3, False)
        assert plate.path_for(1005) == str(movie)
        for index in range(COUNT):
            frame = plate.read(1001 + index)
            assert frame.dtype == np.float32 and frame.shape == (H, W, 3)
            corner = frame[H - 8 :, W - 8 :].reshape(-1, 3).mean(axis=0) * 255
            np.testing.assert_allclose(corner, frame_colour(index), atol=6)


@pytest.mark.parametrize("exact_seek", [True, False])
def test_random_access_equals_sequential(movie: Path, exact_seek: bool) -> None:
    with open_plate(movie) as plate:
        sequential = [plate.read(f) for f in plate.frames]
    with MoviePlate(str(movie), exact_seek=exact_seek, cache_frames=3) as plate:
        for frame in (7, 2, 12, 1, 8, 9, 7, 5, 11, 10, 11):
            np.testing.assert_array_equal(plate.read(frame), sequential[frame - 1])


def test_exact_mode_never_seeks_by_frame_number(
    movie: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plate = MoviePlate(str(movie), cache_frames=4)
    counter = CountingCapture(plate._capture)
    plate._capture = counter  # type: ignore[assignment]
    reopened: list[int] = []
    original_open = plate._open

    def counting_open() -> None:
        reopened.append(plate._next_index)
        original_open()

    monkeypatch.setattr(plate, "_open", counting_open)
    for frame in plate.frames[:6]:
        plate.read(frame)
    for frame in (3, 4, 5, 6, 7, 8, 6, 7, 8, 9, 10):  # overlapping windows step back a little
        plate.read(frame)
    assert counter.seeks == 0 and reopened == []  # cached or sequential
    plate.read(2)  # beyond the cache: reopen and decode forward
    assert len(reopened) == 1 and counter.seeks == 0
    plate.close()
    plate.close()


def test_fast_mode_seeks_only_on_jumps(movie: Path) -> None:
    plate = MoviePlate(str(movie), exact_seek=False)
    counter = CountingCapture(plate._capture)
    plate._capture = counter  # type: ignore[assignment]
    for frame in plate.frames:
        plate.read(frame)
    assert counter.seeks == 1  # back to frame 1 after the constructor decoded it
    plate.read(3)
    assert counter.seeks == 2
    plate.read(4)
    assert counter.seeks == 2
    plate.close()


def test_movie_errors(movie: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open movie"):
        open_plate(tmp_path / "missing.mov")
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 1000)
    with pytest.raises(InputError, match="junk.mp4"):
        open_plate(tmp_path / "junk.mp4")
    plate = open_plate(movie, start_frame=10)
    with pytest.raises(InputError, match="outside the plate's range 10-21"):
        plate.check_range(9, 12)
    with pytest.raises(InputError, match="not in the plate"):
        plate.read(22)
    plate.close()
    with pytest.raises(InputError, match="closed"):
        plate.read(10)
