"""Architecture constants of the MaGGIe image and video networks, read from a checkpoint config.

The released checkpoints (Hugging Face ``chuonghm/maggie-image-him50k-cvpr24`` and
``chuonghm/maggie-video-vim2k5-cvpr24``) ship a ``config.json`` of the form ``{"cfg": {...}}``
written by ``PyTorchModelHubMixin``. Only a handful of its values shape the network; this module
checks exactly those and turns them into a frozen :class:`MaggieArchConfig`. Everything else in the
file (loss weights, warm-up counts, ``shm``, ``head_channel``) has no effect at inference and is
ignored. Called by :mod:`actormatte.matting.loading`; the modules take the constants from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from actormatte.errors import WeightsError

Variant = Literal["video", "image"]

ARCH_BY_VARIANT: dict[str, str] = {"video": "MaGGIe_Temp", "image": "MaGGIe"}
DECODER_BY_VARIANT: dict[str, str] = {
    "video": "res_shortcut_inst_matt_spconv_temp_22",
    "image": "res_shortcut_inst_matt_spconv_22",
}
ENCODER_NAME = "res_shortcut_embed_29"
HF_REPO_BY_VARIANT: dict[str, str] = {
    "video": "chuonghm/maggie-video-vim2k5-cvpr24",
    "image": "chuonghm/maggie-image-him50k-cvpr24",
}


@dataclass(frozen=True)
class MaggieArchConfig:
    """Constants fixed by a MaGGIe checkpoint (the only supported values are the released ones).

    Attributes:
        variant: ``"video"`` (MaGGIe_Temp, ConvGRU + temporal diff) or ``"image"`` (MaGGIe).
        num_mask: instance slots Q of the encoder embedding and of the instance tokens.
        num_embed: channels of the mask-identity embedding appended to RGB.
        atten_dim: width of the OS8 instance attention.
        atten_head: attention heads.
        atten_block: attention blocks.
        final_channel: width of the instance kernels and of the OS8 detail feature.
        aspp_channels: ASPP input and output channels.
    """

    variant: Variant = "video"
    num_mask: int = 10
    num_embed: int = 3
    atten_dim: int = 128
    atten_head: int = 1
    atten_block: int = 2
    final_channel: int = 64
    aspp_channels: int = 512

    @property
    def is_video(self) -> bool:
        """Whether the network has the temporal modules (ConvGRU, diff module)."""
        return self.variant == "video"

    @property
    def max_instances(self) -> int:
        """Most instances one forward can matte (the pipeline mattes actors in groups of this)."""
        return self.num_mask


def variant_from_config(config_json: Mapping[str, Any]) -> Variant | None:
    """Return the variant named by ``cfg.arch`` of a checkpoint ``config.json``, or None."""
    cfg = config_json.get("cfg", config_json)
    arch = cfg.get("arch") if isinstance(cfg, Mapping) else None
    for variant, name in ARCH_BY_VARIANT.items():
        if arch == name:
            return variant  # type: ignore[return-value]
    return None


def _expected_values(variant: Variant) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "arch": ARCH_BY_VARIANT[variant],
        "encoder": ENCODER_NAME,
        "decoder": DECODER_BY_VARIANT[variant],
        "encoder_args.num_mask": 10,
        "encoder_args.num_embed": 3,
        "decoder_args.atten_dim": 128,
        "decoder_args.atten_head": 1,
        "decoder_args.atten_block": 2,
        "decoder_args.atten_stride": 1,
        "decoder_args.final_channel": 64,
        "decoder_args.max_inst": 10,
        "decoder_args.use_id_pe": True,
        "aspp.in_channels": 512,
        "aspp.out_channels": 512,
    }
    if variant == "video":
        expected["decoder_args.temp_method"] = "bi_fusion"
    return expected


def _lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


def arch_config_from_json(config_json: Mapping[str, Any], variant: Variant,
                          source: str = "config.json") -> MaggieArchConfig:
    """Validate the architecture values of a checkpoint ``config.json`` and build the config.

    Args:
        config_json: the parsed file, ``{"cfg": {...}}`` (a bare ``{...}`` is accepted too).
        variant: the variant the weights are being loaded as.
        source: the file name used in error messages.

    Returns:
        The architecture constants.

    Raises:
        WeightsError: a value that shapes the network differs from the released MaGGIe
            checkpoints (every offending value is named), or a required value is missing.
    """
    cfg = config_json.get("cfg", config_json)
    if not isinstance(cfg, Mapping):
        raise WeightsError(f"{source}: expected an object under 'cfg'; this is not a MaGGIe "
                           "checkpoint config. Use the config.json of the Hugging Face repo.")
    problems = []
    for key, want in _expected_values(variant).items():
        got = _lookup(cfg, key)
        if got is _MISSING:
            problems.append(f"cfg.{key} is missing (expected {want!r})")
        elif got != want or type(got) is not type(want):
            problems.append(f"cfg.{key} = {got!r}, expected {want!r}")
    if problems:
        raise WeightsError(
            f"{source} does not describe the MaGGIe {variant} architecture ActorMatte "
            "implements:\n  " + "\n  ".join(problems)
            + f"\nUse the config.json that ships with {HF_REPO_BY_VARIANT[variant]}, "
              "or pass the right variant.")
    return MaggieArchConfig(variant=variant)
