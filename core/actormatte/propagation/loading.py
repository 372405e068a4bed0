"""Load official XMem checkpoints (``XMem.pth`` plain state dicts, or ``.safetensors``).

Called by the pipeline/CLI. Loading never executes pickle code (``weights_only=True``), reads
the channel sizes from tensor shapes as the official code does, applies the one official remap
(4 -> 5 value-encoder input channels) and then loads strictly: every missing, unexpected,
mis-shaped or mis-typed entry is named in one :class:`actormatte.errors.WeightsError`.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from actormatte.errors import WeightsError
from actormatte.propagation.network import XMemDims, XMemNet

_KEY_DIM = "key_proj.key_proj.weight"
_VALUE_DIM = "value_encoder.fuser.block2.conv2.weight"
_HIDDEN_DIM = "decoder.hidden_update.transform.weight"
_VALUE_CONV1 = "value_encoder.conv1.weight"


def dims_from_state_dict(state: Mapping[str, torch.Tensor]) -> XMemDims:
    """Key/value/hidden channels from tensor shapes (hidden 0 if the updater is absent)."""
    missing = [k for k in (_KEY_DIM, _VALUE_DIM) if k not in state]
    if missing:
        raise WeightsError(f"not an XMem checkpoint: missing {', '.join(missing)}. Use the "
                           "official XMem.pth (or a .safetensors export of it).")
    hidden = int(state[_HIDDEN_DIM].shape[0]) // 3 if _HIDDEN_DIM in state else 0
    return XMemDims(key_dim=int(state[_KEY_DIM].shape[0]),
                    value_dim=int(state[_VALUE_DIM].shape[0]), hidden_dim=hidden)


def remap_value_encoder_input(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The official stage-0 remap: a 4-input-channel value-encoder conv gets a zero 5th channel.

    Pure: returns a new dict; other entries are shared, unchanged.

    Shape:
        value_encoder.conv1.weight (64, 4, 7, 7) -> (64, 5, 7, 7)
    """
    out = dict(state)
    weight = out.get(_VALUE_CONV1)
    if weight is not None and weight.ndim == 4 and weight.shape[1] == 4:
        zeros = torch.zeros((weight.shape[0], 1, *weight.shape[2:]), dtype=weight.dtype,
                            device=weight.device)
        out[_VALUE_CONV1] = torch.cat([weight, zeros], 1)
    return out


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a plain state dict from ``.pth``/``.pt`` (weights-only unpickling) or safetensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"XMem weights not found: {path}. Run `actormatte weights` or "
                           "install.py to fetch XMem.pth, or pass the right --xmem-weights path.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise WeightsError(f"cannot read {path} as safetensors ({exc}); re-download it.") \
                from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path} is not a plain tensor state dict (it needs arbitrary code to unpickle, "
            f"which we refuse: {str(exc).splitlines()[0]}). Use the official XMem.pth or "
            "convert the checkpoint to a state dict of tensors.") from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise WeightsError(f"cannot read {path} ({exc}); the file may be truncated or not a "
                           "PyTorch checkpoint: re-download it.") from exc
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a plain state dict (name -> tensor); "
                           "use the official XMem.pth.")
    return dict(obj)


def check_state_dict(net: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise one WeightsError naming every missing, unexpected, mis-shaped or mis-typed key."""
    expected = net.state_dict()
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    for key, ref in expected.items():
        got = state.get(key)
        if got is None:
            continue
        if tuple(got.shape) != tuple(ref.shape):
            problems.append(f"wrong shape {key}: {tuple(got.shape)}, expected {tuple(ref.shape)}")
        elif got.dtype != ref.dtype:
            problems.append(f"wrong dtype {key}: {got.dtype}, expected {ref.dtype}")
    if problems:
        raise WeightsError(
            f"XMem checkpoint does not match the network ({len(problems)} problems): "
            + "; ".join(problems) + ". Use the official XMem.pth (hkchengrex/XMem release) "
            "unmodified.")


def build_xmem(state: Mapping[str, torch.Tensor], device: str | torch.device = "cpu"
               ) -> XMemNet:
    """Build an eval-mode XMemNet from an in-memory state dict (remap, strict load)."""
    state = remap_value_encoder_input(state)
    with torch.device("meta"):
        net = XMemNet(dims_from_state_dict(state))
    check_state_dict(net, state)
    net.load_state_dict(state, strict=True, assign=True)
    net.eval().requires_grad_(False)
    return net.to(device)


def load_xmem(path: str | Path, *, device: str | torch.device = "cpu") -> XMemNet:
    """Load an official XMem checkpoint into an eval-mode :class:`XMemNet` on ``device``.

    Args:
        path: ``XMem.pth`` (plain state dict) or a ``.safetensors`` file with the same keys.
        device: where the network lives.

    Raises:
        WeightsError: file missing/unreadable/unsafe, or keys/shapes/dtypes do not match.
    """
    return build_xmem(read_state_dict(path), device)
