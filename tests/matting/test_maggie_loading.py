"""Strict loading of MaGGIe checkpoints: file and Hugging Face folder layouts, config checks,
and one WeightsError naming every offending key."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from actormatte.errors import InputError, WeightsError
from actormatte.matting import MaGGIeImage, MaGGIeVideo, load_maggie
from support.reference import MAGGIE_REF


@pytest.fixture(scope="module")
def image_weights(maggie_weights_factory: Callable[..., Path]) -> Path:
    return maggie_weights_factory("image", 3, "overrides_C.txt")


@pytest.fixture(scope="module")
def video_weights(maggie_weights_factory: Callable[..., Path]) -> Path:
    return maggie_weights_factory("video", 1, "overrides_A.txt")


def _hf_folder(tmp_path: Path, weights: Path, variant: str,
               edit: Callable[[dict], None] | None = None) -> Path:
    folder = tmp_path / f"maggie-{variant}"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(weights)
    config = json.loads((MAGGIE_REF / f"reconstructed_config_{variant}.json").read_text())
    if edit is not None:
        edit(config["cfg"])
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_file_loads_with_inferred_variant_in_eval_mode(image_weights: Path,
                                                       video_weights: Path) -> None:
    image_net = load_maggie(image_weights)
    assert isinstance(image_net, MaGGIeImage) and not image_net.training
    video_net = load_maggie(video_weights, spectral_norm="stateful", device="cpu")
    assert isinstance(video_net, MaGGIeVideo) and not video_net.training
    file_state = load_file(str(video_weights))
    for key, value in video_net.state_dict().items():
        assert torch.equal(value.reshape(file_state[key].shape), file_state[key]), key


def test_hugging_face_folder_layout_loads(tmp_path: Path, video_weights: Path) -> None:
    net = load_maggie(_hf_folder(tmp_path, video_weights, "video"))
    assert isinstance(net, MaGGIeVideo)


def test_config_arch_decides_the_variant_and_conflicts_raise(tmp_path: Path,
                                                             video_weights: Path) -> None:
    folder = _hf_folder(tmp_path, video_weights, "video")
    with pytest.raises(WeightsError, match="variant='video'"):
        load_maggie(folder, variant="image")


@pytest.mark.parametrize("path,value", [
    ("decoder_args.atten_dim", 256),
    ("decoder_args.temp_method", "uni_fusion"),
    ("encoder_args.num_mask", 5),
    ("decoder", "res_shortcut_inst_matt_spconv_temp_23"),
    ("aspp.out_channels", 256),
])
def test_bad_config_value_raises(tmp_path: Path, video_weights: Path, path: str,
                                 value: object) -> None:
    def edit(cfg: dict) -> None:
        node = cfg
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value

    folder = _hf_folder(tmp_path, video_weights, "video", edit)
    with pytest.raises(WeightsError, match=path.replace(".", r"\.")):
        load_maggie(folder)


def test_every_mismatch_is_named(tmp_path: Path, image_weights: Path) -> None:
    state = load_file(str(image_weights))
    del state["aspp.conv2.weight"]
    state["decoder.extra.weight"] = torch.zeros(3)
    state["encoder.bn1.weight"] = torch.zeros(31)
    state["decoder.refine_OS8.query_feat.weight"] = state[
        "decoder.refine_OS8.query_feat.weight"].double()
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    with pytest.raises(WeightsError) as info:
        load_maggie(broken, variant="image")
    message = str(info.value)
    for expected in ("missing key aspp.conv2.weight", "unexpected key decoder.extra.weight",
                     "wrong shape for encoder.bn1.weight",
                     "wrong dtype for decoder.refine_OS8.query_feat.weight"):
        assert expected in message
    assert "4 problems" in message


def test_image_checkpoint_loaded_as_video_names_the_missing_temporal_keys(
        image_weights: Path) -> None:
    with pytest.raises(WeightsError, match="missing key decoder.os8_temp_module.ih.0.weight"):
        load_maggie(image_weights, variant="video")


def test_unreadable_or_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_maggie(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match="model.safetensors"):
        load_maggie(tmp_path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="corrupt"):
        load_maggie(junk)


def test_bad_arguments(image_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        load_maggie(image_weights, spectral_norm="sometimes")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        load_maggie(image_weights, variant="audio")  # type: ignore[arg-type]


def test_folder_without_config_still_loads(tmp_path: Path, image_weights: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(image_weights)
    assert isinstance(load_maggie(folder), MaGGIeImage)
