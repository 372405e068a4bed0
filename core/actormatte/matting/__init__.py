"""MaGGIe video instance matting: network, sparse detail refinement, window runner.

Public API:

* :func:`load_maggie` builds the image or video network and loads a checkpoint strictly
  (:mod:`.loading`); the network's ``forward(image, mask)`` returns a :class:`MattingOutput`
  whose ``refined`` matte is the fused OS8/OS4/OS1 result *before* the official temporal rule.
* :func:`official_temporal_rule` is that rule as a pure function (:mod:`.temporal`).
* :mod:`.reference` reproduces the official protocol (preprocessing, forward outputs, the 3-frame
  window loop, reverse transform); :mod:`.windows` is the product's window runner.

Layout along the data flow: :mod:`.config`, :mod:`.spectral_norm`, :mod:`.encoder`,
:mod:`.aspp`, :mod:`.decoder` (with :mod:`.attention`, :mod:`.temporal`, :mod:`.uncertainty`
and the sparse branch :mod:`.sparse`), :mod:`.model`, :mod:`.loading`.
"""

from actormatte.matting.config import MaggieArchConfig
from actormatte.matting.loading import load_maggie
from actormatte.matting.model import MaGGIeImage, MaggieNetwork, MaGGIeVideo
from actormatte.matting.outputs import MattingOutput
from actormatte.matting.spectral_norm import SpectralNormMode
from actormatte.matting.temporal import official_temporal_rule

__all__ = [
    "MaGGIeImage",
    "MaGGIeVideo",
    "MaggieArchConfig",
    "MaggieNetwork",
    "MattingOutput",
    "SpectralNormMode",
    "load_maggie",
    "official_temporal_rule",
]
