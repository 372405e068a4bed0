"""MaGGIe image/video networks and the official protocol against the reference goldens.

Goldens (../shared/reference/maggie, GOLDEN_README.md): A = video, stateful spectral norm with
unconverged u; A2 = video, pre-converged u, checked with the frozen (product) spectral norm;
C = image, stateful; P = official preprocessing and reverse transform. Tolerances from
GOLDEN_README: atol 1e-4 on continuous outputs, detail_mask equal, and for refined_masks and the
window-loop output at most 1e-4 of the pixels off by more than 1e-3 (the temporal rule's exact
float equality). Intermediates are captured with forward hooks during the same forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from actormatte.matting import load_maggie
from actormatte.matting.model import MaggieNetwork
from actormatte.matting.reference import (
    forward_official,
    normalize_official,
    official_video_loop,
    preprocess_official,
    resize_pad_official,
    reverse_official,
    snap_official,
)
from actormatte.matting.temporal import bidirectional_gru, official_temporal_rule
from actormatte.matting.uncertainty import (
    OS1_FUSE_ELLIPSE,
    OS4_FUSE_ELLIPSE,
    UNKNOWN_ELLIPSE,
    bbox_keep_mask,
    compute_unknown,
)
from support.reference import MAGGIE_REF

ATOL = 1e-4
WEIGHTS = {
    "A": ("video", 1, "overrides_A.txt", 0),
    "A2": ("video", 1, "overrides_A.txt", 500),
    "C": ("image", 3, "overrides_C.txt", 0),
}


@pytest.fixture(scope="module", autouse=True)
def _two_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _golden(name: str) -> dict[str, np.ndarray]:
    with np.load(MAGGIE_REF / f"golden_{name}.npz") as data:
        return dict(data)


def _load(factory: Callable[..., Path], case: str, mode: str) -> MaggieNetwork:
    return load_maggie(factory(*WEIGHTS[case]), spectral_norm=mode)  # type: ignore[arg-type]


def _inputs(golden: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(golden["in_image"]), torch.from_numpy(golden["in_mask"])


def assert_close(got: torch.Tensor | np.ndarray, want: np.ndarray, name: str,
                 atol: float = ATOL) -> float:
    got_np = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else got
    assert got_np.shape == want.shape, f"{name}: shape {got_np.shape} != {want.shape}"
    err = float(np.abs(got_np.astype(np.float64) - want.astype(np.float64)).max())
    assert err <= atol, f"{name}: max abs error {err:.3g} > {atol}"
    return err


def assert_mostly_close(got: torch.Tensor, want: np.ndarray, name: str) -> None:
    """At most 1e-4 of the pixels off by more than 1e-3 (the temporal rule's exact equality)."""
    got_np = got.detach().cpu().numpy()
    assert got_np.shape == want.shape, f"{name}: shape {got_np.shape} != {want.shape}"
    frac = float((np.abs(got_np - want) > 1e-3).mean())
    assert frac <= 1e-4, f"{name}: {frac:.3g} of pixels off by more than 1e-3"


class Capture:
    """Forward hooks that record the intermediates the debug goldens store."""

    def __init__(self, net: MaggieNetwork) -> None:
        self.values: dict[str, object] = {}
        self.conv_calls: list[torch.Tensor] = []
        dec = net.decoder
        self._handles = [
            net.encoder.conv1.register_forward_pre_hook(self._keep("enc_input6", first=True)),
            net.encoder.register_forward_hook(self._keep("encoder")),
            net.aspp.register_forward_hook(self._keep("aspp")),
            dec.layer2.register_forward_hook(self._keep("layer2")),
            dec.refine_OS8.register_forward_hook(self._keep("refine_OS8")),
            dec.refine_OS8.conv.register_forward_hook(
                lambda m, i, o: self.conv_calls.append(o.clone())),
        ]

    def _keep(self, name: str, first: bool = False) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: tuple, output: object = None) -> None:
            self.values[name] = args[0].clone() if first else output
        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _run_captured(net: MaggieNetwork, golden: dict[str, np.ndarray]
                  ) -> tuple[dict[str, torch.Tensor], Capture]:
    capture = Capture(net)
    image, mask = _inputs(golden)
    with torch.inference_mode():
        out = forward_official(net, image, mask)
    capture.remove()
    return out, capture


# --------------------------------------------------------------------------------------------
# fixtures: each network is loaded fresh, so stateful spectral norm starts from the file


@pytest.fixture(scope="module")
def case_a(maggie_weights_factory: Callable[..., Path]) -> dict[str, object]:
    golden = _golden("A")
    out, _ = _run_captured(_load(maggie_weights_factory, "A", "stateful"), golden)
    return {"golden": golden, "out": out}


@pytest.fixture(scope="module")
def case_a_loop(maggie_weights_factory: Callable[..., Path]) -> torch.Tensor:
    golden = _golden("A")
    net = _load(maggie_weights_factory, "A", "stateful")
    with torch.inference_mode():
        return official_video_loop(net, *_inputs(golden))


@pytest.fixture(scope="module")
def case_a2(maggie_weights_factory: Callable[..., Path]) -> dict[str, object]:
    """Frozen SN: forward, then the window loop, then the forward again (order independence)."""
    golden = _golden("A2")
    with np.load(MAGGIE_REF / "golden_A2_debug.npz") as data:
        debug = {k: data[k] for k in data.files if not k.startswith("sn_after")}
    net = _load(maggie_weights_factory, "A2", "frozen")
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    out, capture = _run_captured(net, golden)
    with torch.inference_mode():
        loop = official_video_loop(net, *_inputs(golden))
        again = forward_official(net, *_inputs(golden))
        gru_out = bidirectional_gru(net.decoder.os8_temp_module,  # type: ignore[arg-type]
                                    capture.values["refine_OS8"][0])  # type: ignore[index]
    return {"golden": golden, "debug": debug, "out": out, "loop": loop, "again": again,
            "capture": capture, "gru_out": gru_out, "net": net, "state_before": state_before}


@pytest.fixture(scope="module")
def case_c(maggie_weights_factory: Callable[..., Path]) -> dict[str, object]:
    golden = _golden("C")
    with np.load(MAGGIE_REF / "golden_C_debug.npz") as data:
        debug = {k: data[k] for k in data.files if not k.startswith("sn_after")}
    out, capture = _run_captured(_load(maggie_weights_factory, "C", "stateful"), golden)
    return {"golden": golden, "debug": debug, "out": out, "capture": capture}


# --------------------------------------------------------------------------------------------
# outputs

CONTINUOUS = ("alpha_os8", "alpha_os4", "alpha_os1")


def _check_outputs(out: dict[str, torch.Tensor], golden: dict[str, np.ndarray],
                   video: bool) -> None:
    for key in CONTINUOUS:
        assert_close(out[key], golden[f"out_{key}"], key)
    assert out["detail_mask"].dtype == torch.uint8
    np.testing.assert_array_equal(out["detail_mask"].numpy(), golden["out_detail_mask"])
    assert_mostly_close(out["refined_masks"], golden["out_refined_masks"], "refined_masks")
    if video:
        assert_close(out["diff_pred_forward"], golden["out_diff_pred_forward_c0"], "diff_fwd")
        assert_close(out["diff_pred_backward"], golden["out_diff_pred_backward_c0"], "diff_bwd")
    else:
        assert "diff_pred_forward" not in out


def test_golden_a_stateful_outputs(case_a: dict) -> None:
    _check_outputs(case_a["out"], case_a["golden"], video=True)


def test_golden_a_stateful_window_loop(case_a_loop: torch.Tensor) -> None:
    golden = _golden("A")
    assert_mostly_close(case_a_loop, golden["win_final_alpha"], "win_final_alpha")


def test_golden_a2_frozen_outputs(case_a2: dict) -> None:
    _check_outputs(case_a2["out"], case_a2["golden"], video=True)


def test_golden_a2_frozen_window_loop(case_a2: dict) -> None:
    assert_mostly_close(case_a2["loop"], case_a2["golden"]["win_final_alpha"], "win_final_alpha")


def test_frozen_is_call_order_independent(case_a2: dict) -> None:
    for key, value in case_a2["out"].items():
        assert torch.equal(value, case_a2["again"][key]), key
    for key, value in case_a2["net"].state_dict().items():
        assert torch.equal(value, case_a2["state_before"][key]), f"{key} changed"


def test_golden_c_image_outputs(case_c: dict) -> None:
    _check_outputs(case_c["out"], case_c["golden"], video=False)


# --------------------------------------------------------------------------------------------
# intermediates (debug goldens)


def _check_intermediates(capture: Capture, debug: dict[str, np.ndarray],
                         golden: dict[str, np.ndarray]) -> None:
    feats = capture.values["encoder"]
    assert_close(capture.values["enc_input6"], debug["cap_enc_input6"], "enc_input6")
    assert_close(feats.out, debug["cap_enc_os32"], "enc_os32")  # type: ignore[attr-defined]
    for name, attr in (("os4", "fea3"), ("os8", "fea4"), ("os16", "fea5")):
        assert_close(getattr(feats, attr), debug[f"cap_shortcut_{name}"], f"shortcut {name}")
    for name, attr in (("os1", "fea1"), ("os2", "fea2")):
        fea = getattr(feats, attr)
        assert_close(fea.mean(dim=(2, 3)), debug[f"cap_shortcut_{name}_chmean"], f"{name} mean")
        assert_close(fea.abs().mean(dim=(2, 3)), debug[f"cap_shortcut_{name}_chabsmean"],
                     f"{name} absmean")
    assert_close(capture.values["aspp"], debug["cap_aspp_out"], "aspp_out")
    assert_close(capture.values["layer2"], debug["cap_dec_os8_feat"], "dec_os8_feat")
    _, kernels = capture.values["refine_OS8"]  # type: ignore[misc]
    assert_close(kernels, debug["cap_inst_tokens"], "inst_tokens")
    assert_close(capture.conv_calls[0], debug["cap_os8_out_feat"], "os8_out_feat")
    logit_feat = capture.conv_calls[-1]  # (BT, C, h8, w8)
    logits = torch.einsum("qc,tchw->tqhw", kernels[0], logit_feat)
    assert_close(logits, golden["cap_os8_logits"], "os8_logits", atol=5e-4)


def test_golden_c_intermediates(case_c: dict) -> None:
    _check_intermediates(case_c["capture"], case_c["debug"], case_c["golden"])


def test_golden_a2_intermediates(case_a2: dict) -> None:
    _check_intermediates(case_a2["capture"], case_a2["debug"], case_a2["golden"])
    feat, _ = case_a2["capture"].values["refine_OS8"]
    assert_close(feat, case_a2["debug"]["cap_gru_in_feat"], "gru_in_feat")
    assert_close(case_a2["gru_out"], case_a2["debug"]["cap_gru_out_feat"], "gru_out_feat")


@pytest.mark.parametrize("case", ["A", "A2"])
def test_uncertainty_bbox_and_fusion_weights_on_golden_arrays(case: str) -> None:
    golden = _golden(case)
    alpha8 = torch.from_numpy(golden["cap_unknown_os8_input"])
    prebbox = compute_unknown(alpha8, UNKNOWN_ELLIPSE)
    np.testing.assert_array_equal(prebbox.numpy(), golden["cap_unknown_os8_prebbox"])
    keep = bbox_keep_mask(alpha8)
    np.testing.assert_array_equal(keep.numpy().astype(np.uint8), golden["cap_bbox_mask"])
    detail = torch.from_numpy(golden["out_detail_mask"][0])
    a8 = torch.from_numpy(golden["out_alpha_os8"][0])
    w4 = ((compute_unknown(a8, OS4_FUSE_ELLIPSE) * detail) > 0).float()
    np.testing.assert_array_equal(w4.numpy(), golden["cap_weight_os4"])
    fused = torch.from_numpy(golden["out_alpha_os4"][0]) * w4 + a8 * (1 - w4)
    w1 = ((compute_unknown(fused, OS1_FUSE_ELLIPSE) * detail) > 0).float()
    np.testing.assert_array_equal(w1.numpy(), golden["cap_weight_os1"])


@pytest.mark.parametrize("case", ["A", "A2"])
def test_temporal_rule_on_golden_arrays(case: str) -> None:
    golden = _golden(case)
    pre = torch.from_numpy(golden["cap_bifusion_in_alpha"])
    diff_f = torch.from_numpy(golden["out_diff_pred_forward_c0"])
    diff_b = torch.from_numpy(golden["out_diff_pred_backward_c0"])
    out = official_temporal_rule(pre, diff_f, diff_b)
    np.testing.assert_array_equal(out.numpy(), golden["out_refined_masks"])
    assert torch.equal(pre, torch.from_numpy(golden["cap_bifusion_in_alpha"])), "input modified"


# --------------------------------------------------------------------------------------------
# golden P: preprocessing and reverse transform


@pytest.mark.parametrize("tag", ["P1", "P2"])
def test_golden_p_preprocessing_and_reverse(tag: str) -> None:
    golden = _golden("P")
    frames, masks = golden[f"{tag}_in_frames_u8"], golden[f"{tag}_in_masks_u8"]
    net_frames, _, _ = resize_pad_official(frames, masks)
    np.testing.assert_array_equal(net_frames, golden[f"{tag}_net_frames_u8"])
    image, mask, info = preprocess_official(frames, masks)
    assert_close(image, golden[f"{tag}_net_image"], "net_image", atol=1e-6)
    np.testing.assert_array_equal(mask.numpy(), golden[f"{tag}_net_mask"])
    assert torch.equal(normalize_official(net_frames).unsqueeze(0), image)
    back = reverse_official(torch.from_numpy(golden[f"{tag}_alpha_net"]), info)
    assert_close(back, golden[f"{tag}_alpha_back"], "alpha_back")
    np.testing.assert_array_equal(snap_official(back).numpy(),
                                  golden[f"{tag}_alpha_back_thresholded"])
