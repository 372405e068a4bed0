"""Registration of the plate <-> network transform (issue #12, item 1).

Synthetic sub-pixel linear edges (vertical and horizontal, from near the left/top border to near
the right/bottom one) go through the product's forward resize and reverse transform
(:mod:`actormatte.matting.resample`) as a network returning its input would see them; the worst
shift of their 0.5 crossing is printed in plate pixels, for the ``aligned`` default and the
``official`` (align_corners=True) reverse.

    .venv/bin/python bench/bench_resample.py
"""

from __future__ import annotations

import json
import time

from actormatte.matting.resample import Resample, edge_registration_error

PLATES = [(1080, 1920, 1.0), (2160, 3840, 1.0), (1556, 2048, 1.0), (1080, 960, 2.0)]


def main() -> None:
    """One JSON line per plate size and mode."""
    for height, width, aspect in PLATES:
        for mode in ("aligned", "official"):
            plan = Resample.plan(height, width, 576, mode=mode, pixel_aspect=aspect)
            begin = time.perf_counter()
            error = edge_registration_error(plan)
            print(json.dumps({"plate": f"{width}x{height}", "pixel_aspect": aspect,
                              "network": f"{plan.resized_hw[1]}x{plan.resized_hw[0]}",
                              "mode": mode, "max_edge_shift_px": round(error, 5),
                              "s": round(time.perf_counter() - begin, 2)}))


if __name__ == "__main__":
    main()
