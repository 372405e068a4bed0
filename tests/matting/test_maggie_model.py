"""MaGGIe network structure, spectral-norm semantics, input checks and determinism (tiny inputs)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from actormatte.errors import InputError, ShapeError
from actormatte.matting import MaGGIeImage, MaGGIeVideo, MattingOutput, load_maggie
from actormatte.matting.model import MaggieNetwork
from actormatte.matting.spectral_norm import SpectralNormConv2d
from actormatte.matting.temporal import official_temporal_rule
from support.reference import MAGGIE_REF


@pytest.fixture(scope="module", autouse=True)
def _two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _tsv(variant: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in (MAGGIE_REF / f"maggie_{variant}_state.tsv").read_text().splitlines():
        if line:
            key, shape, dtype = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.split(",")) if shape else (), dtype))
    return rows


@pytest.mark.parametrize("cls,variant", [(MaGGIeVideo, "video"), (MaGGIeImage, "image")])
def test_state_dict_matches_official_keys_order_shapes_dtypes(cls: type, variant: str) -> None:
    state = cls().state_dict()
    got = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert got == _tsv(variant)


def _tiny_clip(frames: int = 3, num: int = 2, height: int = 64, width: int = 96,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(1, frames, 3, height, width, generator=gen)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    masks = torch.zeros(1, frames, num, height, width)
    for t in range(frames):
        for j in range(num):
            cy, cx = 20 + 6 * j + 2 * t, 25 + 30 * j + 3 * t
            masks[0, t, j] = (((yy - cy) / 14.0) ** 2 + ((xx - cx) / 11.0) ** 2 <= 1).float()
    return image, masks


@pytest.fixture(scope="module")
def video_weights(maggie_weights_factory: Callable[..., Path]) -> Path:
    return maggie_weights_factory("video", 1, "overrides_A.txt")


@pytest.fixture(scope="module")
def frozen_video(video_weights: Path) -> MaggieNetwork:
    return load_maggie(video_weights, spectral_norm="frozen")


def test_forward_returns_typed_output(frozen_video: MaggieNetwork) -> None:
    image, masks = _tiny_clip()
    with torch.inference_mode():
        out = frozen_video(image, masks)
    assert isinstance(out, MattingOutput)
    for field in ("alpha_os8", "alpha_os4", "alpha_os1", "refined"):
        value = getattr(out, field)
        assert value.shape == (1, 3, 2, 64, 96) and value.dtype == torch.float32, field
        assert bool(((value >= 0) & (value <= 1)).all()), field
    assert out.detail_mask.dtype == torch.uint8 and out.detail_mask.shape == (1, 3, 2, 64, 96)
    assert out.diff_forward is not None and out.diff_forward.shape == (1, 3, 1, 64, 96)
    assert out.diff_backward is not None
    # frame 0 has no forward partner, frame T-1 no backward partner: logit 0 -> 0.5
    assert bool((out.diff_forward[:, 0] == 0.5).all())
    assert bool((out.diff_backward[:, -1] == 0.5).all())


def test_frozen_forward_is_deterministic_and_thread_count_independent(
        frozen_video: MaggieNetwork) -> None:
    """Run to run bit-identical; 1 vs 2 threads equal up to library summation order.

    The dense code has no thread-dependent logic (unlike spconv's CPU race, which moves OS1
    logits by 0.19). MKL/oneDNN pick thread-split reductions for tiny problems (a 2x3 OS32 map,
    a few hundred sites), which moves results by a few 1e-6 here; at 256x256 they are
    bit-identical on the development machine.
    """
    image, masks = _tiny_clip(seed=3)
    results = []
    for threads in (1, 2, 2):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            results.append(frozen_video(image, masks))
    torch.set_num_threads(2)
    single, double, again = results
    for field in ("alpha_os8", "alpha_os4", "alpha_os1", "refined", "detail_mask",
                  "diff_forward", "diff_backward"):
        assert torch.equal(getattr(double, field), getattr(again, field)), field
        diff = (getattr(single, field).float() - getattr(double, field).float()).abs().max()
        assert float(diff) <= 2e-5, f"{field}: 1 vs 2 threads differ by {float(diff):.3g}"
    assert torch.equal(single.detail_mask, double.detail_mask)


def _sn_vectors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()
            if k.endswith(("weight_u", "weight_v"))}


def test_stateful_spectral_norm_updates_u_v_and_carries_state(video_weights: Path) -> None:
    net = load_maggie(video_weights, spectral_norm="stateful")
    calls = []
    net.decoder.diff_module[0].register_forward_hook(  # type: ignore[index]
        lambda m, i, o: calls.append(1))
    before = _sn_vectors(net)
    image, masks = _tiny_clip(frames=4)
    with torch.inference_mode():
        first = net(image, masks)
        second = net(image, masks)
    assert len(calls) == 2 * 2 * (4 - 1)  # 2(T-1) diff calls per forward
    after = _sn_vectors(net)
    assert set(after) == set(before)
    assert all(not torch.equal(after[k], before[k]) for k in after if ".weight_u" in k)
    # unconverged u: the second forward sees different sigmas
    assert not torch.equal(first.alpha_os8, second.alpha_os8)
    assert set(net.state_dict()) == set(load_maggie(video_weights).state_dict())


def test_frozen_spectral_norm_leaves_state_untouched(frozen_video: MaggieNetwork,
                                                     video_weights: Path) -> None:
    before = _sn_vectors(frozen_video)
    image, masks = _tiny_clip()
    with torch.inference_mode():
        first = frozen_video(image, masks)
        second = frozen_video(image, masks)
    assert torch.equal(first.refined, second.refined)
    after = _sn_vectors(frozen_video)
    assert all(torch.equal(after[k], before[k]) for k in after)


def test_frozen_weight_is_refreshed_after_load_state_dict(frozen_video: MaggieNetwork,
                                                          video_weights: Path) -> None:
    fresh = MaGGIeVideo().eval()
    fresh.set_spectral_norm("frozen")  # zero weights
    fresh.load_state_dict(frozen_video.state_dict())
    image, masks = _tiny_clip()
    with torch.inference_mode():
        assert torch.equal(fresh(image, masks).refined, frozen_video(image, masks).refined)


def test_frozen_sigma_is_the_official_first_call_sigma(video_weights: Path) -> None:
    net = load_maggie(video_weights, spectral_norm="stateful")
    conv = net.encoder.conv1
    assert isinstance(conv, SpectralNormConv2d)
    w_bar = conv.module.weight_bar.detach().clone()
    u0 = conv.module.weight_u.detach().clone()
    stateful = conv.weight().detach()
    conv.module.weight_u.data.copy_(u0)
    conv.freeze()
    assert torch.allclose(conv.weight(), stateful, rtol=1e-5, atol=0)
    assert not torch.equal(conv.weight(), w_bar)


def test_more_than_ten_instances_is_an_input_error(frozen_video: MaggieNetwork) -> None:
    image, _ = _tiny_clip()
    masks = torch.zeros(1, 3, 11, 64, 96)
    with pytest.raises(InputError, match="groups of 10"):
        frozen_video(image, masks)


@pytest.mark.parametrize("image_shape,mask_shape", [
    ((3, 3, 64, 96), (1, 3, 2, 64, 96)),       # image rank
    ((1, 3, 3, 60, 96), (1, 3, 2, 60, 96)),    # not a multiple of 32
    ((1, 3, 4, 64, 96), (1, 3, 2, 64, 96)),    # channels
    ((1, 3, 3, 64, 96), (1, 2, 2, 64, 96)),    # T mismatch
    ((1, 3, 3, 64, 96), (1, 3, 0, 64, 96)),    # no instance
])
def test_bad_shapes_raise_shape_error(frozen_video: MaggieNetwork, image_shape: tuple,
                                      mask_shape: tuple) -> None:
    with pytest.raises(ShapeError):
        frozen_video(torch.zeros(image_shape), torch.zeros(mask_shape))


def test_smaller_masks_are_resized_with_nearest(frozen_video: MaggieNetwork) -> None:
    image, masks = _tiny_clip()
    small = masks[..., ::8, ::8]
    blocky = small.repeat_interleave(8, dim=-2).repeat_interleave(8, dim=-1)
    with torch.inference_mode():
        assert torch.equal(frozen_video(image, small).refined, frozen_video(image, blocky).refined)


def test_image_network_runs_without_temporal_outputs(
        maggie_weights_factory: Callable[..., Path]) -> None:
    net = load_maggie(maggie_weights_factory("image", 3, "overrides_C.txt"))
    image, masks = _tiny_clip(frames=1, num=3)
    with torch.inference_mode():
        out = net(image, masks)
    assert out.diff_forward is None and out.diff_backward is None
    assert out.refined.shape == (1, 1, 3, 64, 96)


def test_temporal_rule_semantics() -> None:
    frames = torch.rand(1, 4, 1, 2, 3)
    changed = torch.zeros(1, 4, 1, 2, 3)
    changed[..., 0, 0] = 1.0  # pixel (0,0) changes everywhere
    out = official_temporal_rule(frames, changed, changed)
    # static pixels: prev (frame 0) and nxt (LAST frame, 3) disagree -> frame 1 keeps its own
    assert torch.equal(out[:, 1], frames[:, 1])
    # frame 2 takes fused frame 1 where static, the last frame where changed
    assert torch.equal(out[:, 2, :, 0, 0], frames[:, 3, :, 0, 0])
    assert torch.equal(out[:, 2, :, 1, 1], frames[:, 1, :, 1, 1])
    assert torch.equal(out[:, [0, 3]], frames[:, [0, 3]])
    # prev equal to the last frame on static pixels -> frame 1 takes that value
    prev = frames[:, 3].clone()
    out = official_temporal_rule(frames, changed, changed, prev=prev)
    assert torch.equal(out[:, 1, :, 1, 1], frames[:, 3, :, 1, 1])
    assert torch.equal(out[:, 1, :, 0, 0], frames[:, 1, :, 0, 0])
    with pytest.raises(ShapeError):
        official_temporal_rule(frames[:, :2], changed[:, :2], changed[:, :2])


def test_embedding_truncates_fractional_masks_like_the_official_code() -> None:
    net = MaGGIeImage()
    with torch.no_grad():
        net.encoder.mask_embed_layer.weight.copy_(torch.arange(33.0).view(11, 3))
    masks = torch.tensor([0.6, 0.6]).view(1, 2, 1, 1)  # slot 0 -> id 0, slot 1 -> int(1.2) = 1
    with torch.no_grad():
        emb = net.encoder.embed_masks(masks)
    np.testing.assert_allclose(emb.view(-1).numpy(), np.array([3.0, 4.0, 5.0]) / (1 + 1e-6),
                               rtol=1e-6)
