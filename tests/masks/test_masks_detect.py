"""Person detection through onnxruntime with a tiny stand-in for the zoo's MaskRCNN-10.onnx.

The stand-in has the zoo model's input (``image``, float32 (3,H,W)) and its four outputs with the
same dtypes and ranks. Boxes are fractions of the input's own height and width (so they follow
the resize), and each score is ``base + weight * mean(channel 0) / 152``: channel 0 must be blue
minus 102.98 for a blue frame to score 1.0, which checks the BGR order and the mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from actormatte.errors import InputError, ShapeError, WeightsError  # noqa: E402
from actormatte.masks.detect import (  # noqa: E402
    MEAN_BGR,
    create_session,
    detect_people,
    find_first_people,
    load_detector,
    paste_mask,
    preprocess,
)

# Plate 128x64: short side 64 -> ratio 12.5 -> 1600x800, already multiples of 32 (no padding).
W, H = 128, 64


def _const(name: str, array: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(array))


def _build_model(path: Path, boxes: list[list[float]], labels: list[int], base: list[float],
                 blue_weight: list[float], masks: np.ndarray) -> Path:
    count = len(labels)
    nodes = [
        _const("frac", np.array(boxes, np.float32)),
        _const("labels_c", np.array(labels, np.int64)),
        _const("base", np.array(base, np.float32)),
        _const("blue_w", np.array(blue_weight, np.float32) / 152.0),
        _const("masks_c", masks.astype(np.float32)),
        _const("start", np.array([1], np.int64)),
        _const("stop", np.array([3], np.int64)),
        _const("order", np.array([1, 0, 1, 0], np.int64)),
        _const("c0", np.array([0], np.int64)),
        _const("c1", np.array([1], np.int64)),
        helper.make_node("Shape", ["image"], ["shape"]),
        helper.make_node("Slice", ["shape", "start", "stop"], ["hw"]),
        helper.make_node("Cast", ["hw"], ["hw_f"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["hw_f", "order"], ["whwh"]),
        helper.make_node("Mul", ["frac", "whwh"], ["boxes"]),
        helper.make_node("Slice", ["image", "c0", "c1"], ["blue"]),
        helper.make_node("ReduceMean", ["blue"], ["blue_mean"], keepdims=0),
        helper.make_node("Mul", ["blue_w", "blue_mean"], ["blue_term"]),
        helper.make_node("Add", ["base", "blue_term"], ["scores"]),
        helper.make_node("Identity", ["labels_c"], ["labels"]),
        helper.make_node("Identity", ["masks_c"], ["masks"]),
    ]
    graph = helper.make_graph(
        nodes, "maskrcnn_stand_in",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "height", "width"])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [count, 4]),
         helper.make_tensor_value_info("labels", TensorProto.INT64, [count]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [count]),
         helper.make_tensor_value_info("masks", TensorProto.FLOAT, [count, 1, 28, 28])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _full_masks(count: int) -> np.ndarray:
    return np.ones((count, 1, 28, 28), np.float32)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("det") / "stand_in.onnx"
    _build_model(
        path,
        boxes=[[0.6, 0.1, 0.9, 0.9],     # person, right
               [0.1, 0.1, 0.4, 0.9],     # person, left
               [0.1, 0.1, 0.9, 0.9],     # car: not a person
               [0.0, 0.0, 1.0, 1.0],     # person below the threshold
               [0.45, 0.2, 0.55, 0.8]],  # person, middle, only on blue frames
        labels=[1, 1, 3, 1, 1],
        base=[0.95, 0.9, 0.99, 0.5, 0.0],
        blue_weight=[0, 0, 0, 0, 1],
        masks=_full_masks(5))
    return create_session(path)


def _frame(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (H, W, 3)).copy()


def test_preprocess_bgr_mean_and_padding() -> None:
    image, (sx, sy) = preprocess(_frame((10, 20, 30))[:50, :70])
    new_w, new_h = int(800 / 50 * 70), 800  # 1120 x 800
    assert image.shape == (3, 800, 1120)
    image, _ = preprocess(_frame((10, 20, 30))[:50, :75])  # 1200 x 800 -> padded to 1216
    assert image.shape == (3, 800, 1216) and not image[:, :, 1200:].any()
    image, (sx, sy) = preprocess(_frame((10, 20, 30))[:50, :70])
    assert (sx, sy) == (new_w / 70, new_h / 50)
    np.testing.assert_allclose(image[:, 0, 0], [30 - MEAN_BGR[0], 20 - MEAN_BGR[1],
                                                10 - MEAN_BGR[2]], atol=1e-4)


def test_paste_mask_places_and_clips() -> None:
    pattern = np.zeros((28, 28), np.float32)
    pattern[:, :14] = 1.0
    canvas = paste_mask(pattern, np.array([10, 5, 37, 32], np.float32), 40, 50)
    expected = np.zeros((40, 50), bool)
    expected[5:33, 10:24] = True
    np.testing.assert_array_equal(canvas, expected)
    clipped = paste_mask(np.ones((28, 28)), np.array([-10, -10, 17, 17], np.float32), 40, 50)
    assert clipped[:18, :18].all() and clipped.sum() == 18 * 18


def test_people_left_to_right_and_filtered(session) -> None:
    people = detect_people(_frame((0, 0, 255)), session)
    assert len(people) == 3  # the car and the low score are dropped
    centres = [np.nonzero(m)[1].mean() for m in people]
    assert centres == sorted(centres)
    assert people[0][:, : int(0.4 * W)].any() and not people[0][:, int(0.45 * W) + 1:].any()
    red = detect_people(_frame((255, 0, 0)), session)
    assert len(red) == 2  # the blue-only person scores below zero on red


def test_threshold_max_count_and_overlap(session) -> None:
    blue = _frame((0, 0, 255))
    best_two = detect_people(blue, session, max_count=2)
    # scores: middle ~1.0, right 0.95, left 0.9 -> the middle and the right survive, in x order
    assert [int(np.nonzero(m)[1].mean() > W / 2) for m in best_two] == [0, 1]
    assert best_two[0][:, W // 2].any()
    everyone = detect_people(blue, session, score_threshold=0.4)
    assert len(everyone) == 4  # the full-frame person joins, owning only what is left over
    union = np.sum([m.astype(int) for m in everyone], axis=0)
    assert union.max() == 1


def test_find_first_people_and_window(session) -> None:
    frames = list(range(1001, 1011))

    def read(frame: int) -> np.ndarray:
        return _frame((255, 0, 0)) if frame < 1004 else _frame((0, 0, 255))

    only_blue = detect_people(_frame((0, 0, 255)), session)
    frame, people = find_first_people(read, frames, session=session, score_threshold=0.92)
    # right (0.95) is there on every frame: the first frame wins
    assert frame == 1001 and len(people) == 1
    frame, people = find_first_people(read, frames, session=session, score_threshold=0.96)
    assert frame == 1004 and len(people) == 1
    np.testing.assert_array_equal(people[0], only_blue[1])
    with pytest.raises(InputError, match="1001-1003"):
        find_first_people(read, frames, session=session, window=3, score_threshold=0.96)


def test_bad_frame_and_missing_model(session, tmp_path: Path) -> None:
    with pytest.raises(ShapeError):
        detect_people(np.zeros((H, W), np.uint8), session)
    with pytest.raises(WeightsError, match="actormatte weights install"):
        load_detector(tmp_path)
    (tmp_path / "maskrcnn").mkdir()
    (tmp_path / "maskrcnn" / "MaskRCNN-10.onnx").write_bytes(b"<html>rate limited</html>")
    with pytest.raises(WeightsError, match="bytes"):
        load_detector(tmp_path)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot load"):
        create_session(tmp_path / "junk.onnx")
