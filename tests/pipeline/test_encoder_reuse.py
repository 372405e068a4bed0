"""window5 with encoder reuse: each frame encoded once, same alphas as whole-window forwards."""

from __future__ import annotations

import torch

from actormatte.matting import load_maggie
from actormatte.matting.model import FrameFeatures
from actormatte.matting.windows import WindowRunner


class _Clip:
    """A tiny ClipSource: random frames, two actors, actor 2 only from frame 6 on."""

    def __init__(self, num_frames: int, height: int = 64, width: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.num_frames = num_frames
        self.actor_ids = [1, 2]
        self._images = torch.randn(num_frames, 3, height, width, generator=generator)
        self._ids = torch.zeros(num_frames, height, width, dtype=torch.int64)
        for index in range(num_frames):
            self._ids[index, 10:40, 5 + index:30 + index] = 1
            if index >= 6:
                self._ids[index, 40:60, 30:50] = 2

    def image(self, index: int) -> torch.Tensor:
        return self._images[index]

    def ids(self, index: int) -> torch.Tensor:
        return self._ids[index]

    def reverse(self, alpha: torch.Tensor) -> torch.Tensor:
        return alpha


def test_encoder_reuse_encodes_each_frame_once_and_matches_forward(models_dir):
    net = load_maggie(models_dir / "maggie-video", "video")
    clip = _Clip(11)  # windows 0-4, 3-7, 6-10
    plain = WindowRunner(net.__call__, None)
    split = WindowRunner(net.__call__, None,
                         split=(net.encode_frames, net.decode_frames, FrameFeatures.cat))
    expected = dict(plain.run(clip, range(11)))
    session = split.session(clip, set(range(11)))
    got = {}
    for window_index in split.windows_needed(11, range(11)):
        got.update(dict(split.run_window(session, window_index)))
    assert set(got) == set(expected)
    for index in expected:
        assert torch.allclose(got[index], expected[index], atol=1e-5, rtol=0), index
    # Frames 3, 4 are shared by windows 0 and 1 with the same actor slots (actor 1 only);
    # window 2 has actor 2 too, so frames 6, 7 are encoded again for its slots.
    assert session.encoded == 11 + 2
    assert not session.features  # nothing is held after the last window


def test_chunked_split_runs_are_bit_identical(models_dir):
    net = load_maggie(models_dir / "maggie-video", "video")
    clip = _Clip(11)
    runner = WindowRunner(net.__call__, None,
                          split=(net.encode_frames, net.decode_frames, FrameFeatures.cat))
    whole = dict(runner.run(clip, range(11)))
    part = dict(runner.run(clip, range(7, 11)))
    for index, alpha in part.items():
        assert torch.equal(alpha, whole[index]), index


def test_xmem_resize_first_matches_normalise_then_resize():
    from actormatte.propagation import normalise_frame, resize_for_xmem
    from actormatte.propagation.preprocess import prepare_xmem_frame

    rgb = torch.randint(0, 256, (90, 160, 3), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(1)).numpy()
    for size in (48, 90, -1):
        expected = resize_for_xmem(normalise_frame(rgb), size)
        got = prepare_xmem_frame(rgb, size)
        assert got.shape == expected.shape
        assert float((got - expected).abs().max()) <= 1e-5
