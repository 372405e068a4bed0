"""The pipeline end to end with the real networks (generated weights) on tiny synthetic shots."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from actormatte import pipeline
from actormatte.config import ExportConfig, MaskConfig, MatteConfig, PropagateConfig
from actormatte.errors import CancelledError, InputError
from actormatte.export import read_matte_exr
from actormatte.jobs import WorkFolder
from actormatte.progress import CancelToken, ProgressEvent

SMALL = MatteConfig(size=64)
PLATE_XMEM = PropagateConfig(size=-1, checkpoint_every=2)


def _run(shot, out: Path, *, masks: MaskConfig | None = None, **kwargs) -> pipeline.RunResult:
    options = pipeline.RunOptions(plate=shot.pattern, out=str(out),
                                  masks=masks or MaskConfig(masks=(str(shot.ids),)),
                                  models=kwargs.pop("models"), device="cpu",
                                  propagate=PLATE_XMEM, matte=kwargs.pop("matte", SMALL), **kwargs)
    return pipeline.run(options)


def _pixels(path: Path) -> np.ndarray:
    image = oiio.ImageBuf(str(path))
    return image.get_pixels(oiio.FLOAT)


def test_run_end_to_end(tmp_path, make_shot, models_dir):
    shot = make_shot(7)
    out = tmp_path / "out"
    masks = MaskConfig(masks=(f"{shot.ids}@1003",), names=("bob", "ann"))
    events: list[tuple[str, dict]] = []
    options = pipeline.RunOptions(plate=shot.pattern, out=str(out), masks=masks,
                                  models=str(models_dir), device="cpu", propagate=PLATE_XMEM,
                                  matte=SMALL)
    progress: list[ProgressEvent] = []
    result = pipeline.run(options, progress=progress.append,
                          events=lambda name, fields: events.append((name, fields)))
    assert (result.frames_written, result.frames_skipped) == (7, 0)
    assert result.layers == ["bob", "ann"]
    assert {e.stage for e in progress} == {"read", "propagate", "matte", "write"}
    assert events[0][0] == "start" and events[0][1]["actors"][0]["keyframe"] == 1003

    files = sorted(out.glob("*.exr"))
    assert [f.name for f in files] == [f"plate_mattes.{f}.exr" for f in range(1001, 1008)]
    assert not list(out.glob(".*.tmp*"))
    sha = hashlib.sha256((models_dir / "maggie-video" / "model.safetensors")
                         .read_bytes()).hexdigest()
    for frame, path in zip(range(1001, 1008), files, strict=True):
        spec = oiio.ImageInput.open(str(path)).spec()
        assert sorted(spec.channelnames) == ["ann.A", "bob.A"]
        assert spec.format == oiio.HALF and spec.get_string_attribute("compression") == "zip"
        assert (spec.width, spec.height) == (96, 64)
        meta = {a.name: a.value for a in spec.extra_attribs if a.name.startswith("actormatte/")}
        table = json.loads(meta["actormatte/instances"])
        assert table == {"bob": {"name": "bob", "id": 1, "keyframe": 1003},
                         "ann": {"name": "ann", "id": 2, "keyframe": 1003}}
        assert meta["actormatte/matting_sha256"] == sha
        assert meta["actormatte/matting_model"] == "maggie-video"
        assert meta["actormatte/input_colorspace"] == "sRGB"
        assert meta["actormatte/plate_frame"] == str(frame)
        assert meta["actormatte/plate_file"].endswith(f"plate.{frame}.png")
        assert meta["actormatte/processing_size"] == "96x64"
        assert meta["actormatte/version"] == "0.1.0"
        alphas, _ = read_matte_exr(path)
        for alpha in alphas.values():
            assert alpha.shape == (64, 96)
            assert np.isfinite(alpha).all() and alpha.min() >= 0.0 and alpha.max() <= 1.0
    # Frames before the keyframe were propagated backwards, not left empty.
    work = WorkFolder(result.work)
    for frame in (1001, 1002):
        assert set(np.unique(work.read_mask(frame, (96, 64)))) >= {1, 2}

    again = _run(shot, out, masks=masks, models=str(models_dir))
    assert (again.frames_written, again.frames_skipped) == (0, 7)


def test_chunked_matte_equals_one_run(tmp_path, make_shot, models_dir):
    shot = make_shot(6)  # windows 1001-1005 and 1002-1006
    work = str(tmp_path / "work")
    pipeline.propagate(pipeline.PropagateOptions(
        plate=shot.pattern, work=work, masks=MaskConfig(masks=(str(shot.ids),)),
        models=str(models_dir), device="cpu", propagate=PLATE_XMEM))
    whole = pipeline.matte(pipeline.MatteOptions(work=work, out=str(tmp_path / "a"),
                                                 models=str(models_dir), device="cpu",
                                                 matte=SMALL))
    assert whole.frames_written == 6
    # The second chunk needs the second window, which reads frames before the chunk.
    for chunk in ((1001, 1003), (1004, 1006)):
        part = pipeline.matte(pipeline.MatteOptions(work=work, out=str(tmp_path / "b"),
                                                    frames=chunk, models=str(models_dir),
                                                    device="cpu", matte=SMALL))
        assert part.frames_written == chunk[1] - chunk[0] + 1
    for frame in range(1001, 1007):
        a = _pixels(tmp_path / "a" / f"plate_mattes.{frame}.exr")
        b = _pixels(tmp_path / "b" / f"plate_mattes.{frame}.exr")
        assert np.array_equal(a, b), f"frame {frame} differs between chunked and single runs"


def test_propagate_resumes_from_checkpoint_bit_exact(tmp_path, make_shot, models_dir):
    shot = make_shot(8)
    masks = MaskConfig(masks=(f"{shot.ids}@1004",))

    def options(work: Path) -> pipeline.PropagateOptions:
        return pipeline.PropagateOptions(plate=shot.pattern, work=str(work), masks=masks,
                                         models=str(models_dir), device="cpu",
                                         propagate=PLATE_XMEM)

    pipeline.propagate(options(tmp_path / "a"))
    token = CancelToken()

    def cancel_midway(event: ProgressEvent) -> None:
        if event.stage == "propagate" and event.done == 6:
            token.cancel()

    with pytest.raises(CancelledError):
        pipeline.propagate(options(tmp_path / "b"), progress=cancel_midway, cancel=token)
    assert list((tmp_path / "b" / "checkpoint").glob("*/*.pt"))
    assert not WorkFolder(tmp_path / "b").read_job().complete
    resumed = pipeline.propagate(options(tmp_path / "b"))
    assert resumed.frames_resumed > 0 and resumed.frames_propagated < 8
    assert WorkFolder(tmp_path / "b").read_job().complete
    assert not list((tmp_path / "b").rglob("*.tmp"))
    for frame in range(1001, 1009):
        a = cv2.imread(str(tmp_path / "a" / "masks" / f"{frame:04d}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "b" / "masks" / f"{frame:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert a.dtype == np.uint16 and np.array_equal(a, b), f"mask {frame} differs"

    again = pipeline.propagate(options(tmp_path / "b"))
    assert (again.frames_propagated, again.frames_resumed) == (0, 8)
    # Other XMem options are another propagation: refused (exit 2) unless --overwrite.
    # (Other keyframes are a correction: tests/propagation/test_driver_corrections.py.)
    other = pipeline.PropagateOptions(plate=shot.pattern, work=str(tmp_path / "b"), masks=masks,
                                      models=str(models_dir), device="cpu",
                                      propagate=PropagateConfig(size=-1, mem_every=3))
    with pytest.raises(InputError, match="--overwrite"):
        pipeline.propagate(other)


@pytest.mark.parametrize("frames, model", [(1, "maggie-image"), (2, "maggie-video")])
def test_short_shots(tmp_path, make_shot, models_dir, frames, model):
    shot = make_shot(frames)
    result = _run(shot, tmp_path / "out", models=str(models_dir))
    assert result.frames_written == frames
    for frame in range(1001, 1001 + frames):
        alphas, meta = read_matte_exr(tmp_path / "out" / f"plate_mattes.{frame}.exr")
        assert meta["matting_model"] == model
        assert set(alphas) == {"actor_01", "actor_02"}


def test_more_than_ten_actors_are_matted_in_groups(tmp_path, make_shot, models_dir, caplog):
    shot = make_shot(3, width=128, height=64, actors=11)
    with caplog.at_level(logging.WARNING, logger="actormatte"):
        result = _run(shot, tmp_path / "out", models=str(models_dir),
                      export=ExportConfig())
    assert result.frames_written == 3 and len(result.layers) == 11
    assert any("groups of 10" in r.getMessage() for r in caplog.records)
    alphas, _ = read_matte_exr(tmp_path / "out" / "plate_mattes.1002.exr")
    assert len(alphas) == 11
