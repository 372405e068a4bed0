"""MaGGIe video instance matting: network, sparse detail refinement, window runner."""
