"""Per-frame error curves of an evaluation, one line per actor (``actormatte eval --plot``).

Called by :mod:`actormatte.cli.eval_cmd`. matplotlib is imported lazily with the Agg backend
(no display needed on a farm node).
"""

from __future__ import annotations

import os
from typing import Any

from actormatte.errors import DependencyError, InputError
from actormatte.evaluation.evaluate import FRAME_METRICS


def plot_frame_errors(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw MAD, MSE, SAD, Grad and Conn per frame, one curve per actor, into a PNG.

    Args:
        report: What :func:`actormatte.evaluation.evaluate` returned.
        path: The image to write (``.png``).

    Raises:
        DependencyError: matplotlib is not installed.
        InputError: The image cannot be written.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise DependencyError("--plot needs matplotlib: pip install matplotlib") from exc
    frames = [row["frame"] for row in report["frames"]]
    names = list(report["per_layer"])
    figure, axes = plt.subplots(len(FRAME_METRICS), 1, sharex=True,
                                figsize=(10, 2.2 * len(FRAME_METRICS)), squeeze=False)
    for axis, metric in zip(axes[:, 0], FRAME_METRICS, strict=True):
        for name in names:
            axis.plot(frames, [row["layers"][name][metric] for row in report["frames"]],
                      label=name, linewidth=1.2)
        axis.set_ylabel(metric)
        axis.grid(True, alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("frame")
    axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].ticklabel_format(axis="x", useOffset=False, style="plain")
    figure.suptitle("per-frame error per actor (MaGGIe scale)")
    figure.tight_layout()
    try:
        figure.savefig(os.fspath(path), dpi=100)
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write the image: {exc}") from exc
    finally:
        plt.close(figure)
