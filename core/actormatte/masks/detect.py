"""Automatic person masks for ``--detect``: ONNX Model Zoo Mask R-CNN through onnxruntime.

The pipeline calls :func:`load_detector` once and :func:`find_first_people` to get the first
frame of the range that shows people; its masks become actors ``actor_01``... left to right
(:func:`actormatte.masks.load_keyframes` with ``detected=``). The MaGGIe authors' demo uses the
same model for its instance masks.

Facts this module relies on (ONNX Model Zoo ``mask-rcnn/README.md`` and
``ONNX_HUB_MANIFEST.json`` of ``onnx/models``; MaGGIe ``demo/maskrcnn.py``):

* ``MaskRCNN-10.onnx`` (R-50-FPN, opset 10, converted from maskrcnn-benchmark): one input
  ``image``, float32 of shape (3, height, width), no batch axis.
* Preprocessing: pixels 0..255, resized so the short side is 800 (``ratio = 800 / min(h, w)``,
  new size ``int(ratio * w) x int(ratio * h)``, bilinear), channels in BGR order, minus the mean
  [102.9801, 115.9465, 122.7717] (B, G, R), then zero-padded at the bottom/right so height and
  width are multiples of 32. No division by a standard deviation.
* Outputs, in this order (names ``6568 6570 6572 6887`` in the zoo file): boxes (N, 4) float32
  ``(x0, y0, x1, y1)`` in resized-image pixels; labels (N,) int64 COCO category indices where
  1 = person (index 0 is the background class in ``coco_classes.txt``); scores (N,) float32;
  masks (N, 1, 28, 28) float32 probabilities inside each box.
* Postprocessing: boxes are scaled back to the plate, each 28x28 mask is resized to its integer
  box (``x1 - x0 + 1`` by ``y1 - y0 + 1``), thresholded at 0.5 and pasted, clipped to the image;
  detections with ``score <= threshold`` are dropped (0.7 in the README and the MaGGIe demo).

Our departures: OpenCV resizes (INTER_AREA when shrinking, which plays the role of PIL's
antialiasing, INTER_LINEAR when enlarging) instead of PIL; boxes are scaled back per axis by the
exact resize factors; pixels claimed by two people go to the higher score.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from actormatte.errors import DependencyError, InputError, ShapeError, WeightsError
from actormatte.weights.registry import model_path

logger = logging.getLogger(__name__)

SHORT_SIDE = 800
PAD_MULTIPLE = 32
MEAN_BGR = np.array([102.9801, 115.9465, 122.7717], dtype=np.float32)
PERSON_LABEL = 1
MASK_THRESHOLD = 0.5


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise DependencyError("--detect needs onnxruntime: pip install 'onnxruntime>=1.17' "
                              "(or onnxruntime-gpu), or give --masks / --actor-mask") from error
    return onnxruntime


def create_session(onnx_file: str | Path, device: str = "cpu") -> Any:
    """An onnxruntime session for a Mask R-CNN file; CUDA when asked for and available.

    Raises:
        DependencyError: onnxruntime is not installed.
        WeightsError: The file cannot be loaded or has not the zoo model's input/outputs.
    """
    ort = _onnxruntime()
    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the zoo model triggers shape-merge warnings
    try:
        session = ort.InferenceSession(str(onnx_file), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise WeightsError(f"cannot load {onnx_file} ({error}); reinstall it with "
                           "`actormatte weights install`") from error
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 3 or len(outputs) != 4:
        raise WeightsError(f"{onnx_file} is not the ONNX Model Zoo MaskRCNN-10 (expected one "
                           "(3,H,W) input and 4 outputs); reinstall it")
    return session


def load_detector(models_dir: str | Path, device: str = "cpu") -> Any:
    """The Mask R-CNN session from ``<models>/maskrcnn/MaskRCNN-10.onnx``.

    Raises:
        WeightsError: The file is missing (the message says how to install it).
        DependencyError: onnxruntime is not installed.
    """
    return create_session(model_path(models_dir, "maskrcnn"), device)


def preprocess(rgb: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize, BGR, mean-subtract and pad a frame for the zoo Mask R-CNN.

    Shape:
        rgb: (H, W, 3) uint8. Returns (3, Hp, Wp) float32 with Hp, Wp multiples of 32, and the
        (x, y) factors from plate to network pixels.
    """
    height, width = rgb.shape[:2]
    ratio = SHORT_SIDE / min(height, width)
    new_w, new_h = max(1, int(ratio * width)), max(1, int(ratio * height))
    interpolation = cv2.INTER_AREA if ratio < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    bgr = resized[:, :, ::-1].astype(np.float32) - MEAN_BGR  # (h, w, 3) BGR
    padded_h = math.ceil(new_h / PAD_MULTIPLE) * PAD_MULTIPLE
    padded_w = math.ceil(new_w / PAD_MULTIPLE) * PAD_MULTIPLE
    image = np.zeros((3, padded_h, padded_w), dtype=np.float32)
    image[:, :new_h, :new_w] = bgr.transpose(2, 0, 1)  # (h, w, 3) -> (3, h, w)
    return image, (new_w / width, new_h / height)


def paste_mask(mask28: np.ndarray, box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Paste a box-relative mask probability map into a full frame and threshold it.

    Shape:
        mask28: (h, w) float probabilities; box: (4,) ``x0, y0, x1, y1`` in frame pixels.
        Returns (height, width) bool.
    """
    x0, y0, x1, y1 = (int(math.floor(v)) for v in box)
    box_w, box_h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    resized = cv2.resize(mask28.astype(np.float32), (box_w, box_h),
                         interpolation=cv2.INTER_LINEAR) > MASK_THRESHOLD
    canvas = np.zeros((height, width), dtype=bool)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + box_w, width), min(y0 + box_h, height)
    if cx1 > cx0 and cy1 > cy0:
        canvas[cy0:cy1, cx0:cx1] = resized[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    return canvas


def _run(session: Any, image: np.ndarray) -> tuple[np.ndarray, ...]:
    name = session.get_inputs()[0].name
    boxes, labels, scores, masks = session.run(None, {name: image})
    count = len(scores)
    if (boxes.shape != (count, 4) or labels.shape != (count,)
            or masks.ndim != 4 or masks.shape[:2] != (count, 1)):
        raise WeightsError("the Mask R-CNN file returned unexpected shapes "
                           f"{boxes.shape} {labels.shape} {scores.shape} {masks.shape}; "
                           "reinstall MaskRCNN-10.onnx")
    return boxes, labels, scores, masks


def detect_people(rgb_uint8: np.ndarray, session: Any, *, score_threshold: float = 0.7,
                  max_count: int = 10) -> list[np.ndarray]:
    """Person masks in one frame, ordered left to right.

    Keeps COCO label 1 with ``score > score_threshold``, the ``max_count`` best scores, gives
    pixels claimed twice to the higher score, drops masks left empty, and orders the rest by
    the x of their centroid.

    Shape:
        rgb_uint8: (H, W, 3) uint8 RGB. Returns K arrays of (H, W) bool, K <= max_count.

    Raises:
        ShapeError: The frame is not (H, W, 3) uint8.
    """
    if rgb_uint8.ndim != 3 or rgb_uint8.shape[2] != 3 or rgb_uint8.dtype != np.uint8:
        raise ShapeError(f"detect_people needs an (H, W, 3) uint8 RGB frame, got "
                         f"{rgb_uint8.shape} {rgb_uint8.dtype}")
    height, width = rgb_uint8.shape[:2]
    image, (scale_x, scale_y) = preprocess(rgb_uint8)
    boxes, labels, scores, masks = _run(session, image)
    keep = np.flatnonzero((labels == PERSON_LABEL) & (scores > score_threshold))
    keep = keep[np.argsort(-scores[keep], kind="stable")][:max_count]
    taken = np.zeros((height, width), dtype=bool)
    people: list[np.ndarray] = []
    for index in keep:  # best score first, so it wins shared pixels
        box = boxes[index] / np.array([scale_x, scale_y, scale_x, scale_y], dtype=np.float32)
        mask = paste_mask(masks[index, 0], box, height, width) & ~taken
        if mask.any():
            taken |= mask
            people.append(mask)
    people.sort(key=_centroid)
    logger.debug("%d detections, %d people kept", len(scores), len(people))
    return people


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return float(cols.mean()), float(rows.mean())


def find_first_people(read_rgb: Callable[[int], np.ndarray], frames: Sequence[int], *,
                      session: Any, window: int = 48, score_threshold: float = 0.7,
                      max_count: int = 10) -> tuple[int, list[np.ndarray]]:
    """The first frame among ``frames[:window]`` with people, and their masks.

    Args:
        read_rgb: Returns the plate frame as (H, W, 3) uint8 sRGB-encoded RGB.
        frames: Frames of the range, in order.
        session: From :func:`load_detector`.
        window: How many frames from the start to search (``--detect-window``).
        score_threshold: ``--detect-threshold``.
        max_count: ``--detect-max``.

    Raises:
        InputError: No frame in the window shows a person above the threshold.
    """
    searched = list(frames)[:max(window, 1)]
    for frame in searched:
        people = detect_people(read_rgb(frame), session, score_threshold=score_threshold,
                               max_count=max_count)
        if people:
            logger.info("--detect: %d people at frame %d", len(people), frame)
            return frame, people
    span = f"{searched[0]}-{searched[-1]}" if searched else "(none)"
    raise InputError(f"--detect found no person with score > {score_threshold} in frames "
                     f"{span}; lower --detect-threshold, raise --detect-window, or give "
                     "--masks / --actor-mask")
