"""Sparse 2-D convolution primitives in pure PyTorch for MaGGIe's detail branch.

A sparse map here is a feature matrix ``(S, C)`` whose row ``i`` belongs to the site
``coords[i] = (b, y, x)`` of a :class:`SiteSet`. Convolutions are rulebook based: for every
output site a fixed-size row of input-site indices (one per kernel tap, the sentinel ``S`` where
the tap falls on a missing site) is built once per site set, and every convolution is then
"gather the tap rows -> one GEMM against the stacked weights", chunked over sites to bound
memory. The computation is output-stationary (no scatter-add), so results do not depend on the
thread count, and it runs unchanged on CUDA tensors.

Semantics follow spconv 2.3 (MAGGIE_SPEC.md §10): missing sites count as zero, outputs exist at
the listed sites only. Used by :mod:`actormatte.matting.sparse_layers` and
:mod:`actormatte.matting.sparse`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

#: Feature-matrix bytes one gathered chunk may use (cols of a GEMM), about 32 MB.
GATHER_CHUNK_BYTES = 32 * 1024 * 1024

#: The 3x3 taps in weight order (ky, kx) row-major: offset (dy, dx) = (ky - 1, kx - 1).
SUBM3_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
)


@dataclass(frozen=True)
class SiteSet:
    """The active sites of a batch of 2-D grids.

    Attributes:
        mask: Occupancy grid, True at the sites.
        coords: Site coordinates ``(b, y, x)`` in row-major order (the order of
            ``mask.nonzero()``); row ``i`` of a feature matrix on this set belongs to ``coords[i]``.

    Shape:
        - mask: (B, H, W) bool
        - coords: (S, 3) int64
    """

    mask: Tensor
    coords: Tensor

    @classmethod
    def from_mask(cls, mask: Tensor) -> SiteSet:
        """Build the site set of a (B, H, W) mask (any dtype; non-zero = site)."""
        occupied = mask != 0
        return cls(mask=occupied, coords=occupied.nonzero())

    @property
    def num_sites(self) -> int:
        """Number of sites S."""
        return int(self.coords.shape[0])

    @property
    def grid(self) -> tuple[int, int, int]:
        """(B, H, W) of the grid the sites live on."""
        batch, height, width = self.mask.shape
        return int(batch), int(height), int(width)

    def downsample(self) -> SiteSet:
        """Output sites of a 3x3, stride-2, padding-1 sparse conv (spec §10.1 rule D).

        A coarse cell (y, x) is active iff any site lies in rows 2y-1..2y+1 and columns
        2x-1..2x+1, i.e. a 3x3 stride-2 max-pool with 1 px of zero padding. The coarse grid is
        ceil(H/2) x ceil(W/2).
        """
        occupied = self.mask[:, None].to(torch.float32)  # (B, 1, H, W)
        pooled = F.max_pool2d(occupied, kernel_size=3, stride=2, padding=1)
        return SiteSet.from_mask(pooled[:, 0] > 0)

    def linear_index(self) -> Tensor:
        """Row-major index of every site in the flattened (B, H, W) grid, shape (S,) int64."""
        _, height, width = self.grid
        b, y, x = self.coords.unbind(1)
        return (b * height + y) * width + x

    def padded_index_map(self) -> Tensor:
        """Site index at every cell of the grid padded by one cell, the sentinel S elsewhere.

        Shape:
            (B, H + 2, W + 2) int64; site (b, y, x) sits at [b, y + 1, x + 1].
        """
        batch, height, width = self.grid
        index_map = torch.full((batch, height + 2, width + 2), self.num_sites,
                               dtype=torch.int64, device=self.mask.device)
        b, y, x = self.coords.unbind(1)
        index_map[b, y + 1, x + 1] = torch.arange(self.num_sites, device=self.mask.device)
        return index_map


def subm3_rulebook(sites: SiteSet) -> Tensor:
    """Tap table of a 3x3 submanifold conv: input-site index per output site and tap.

    Shape:
        (S, 9) int64; column k is the tap ``SUBM3_OFFSETS[k]``; missing neighbours hold S.
    """
    _, height, width = sites.grid
    flat_map = sites.padded_index_map().view(-1)  # (B*(H+2)*(W+2),)
    b, y, x = sites.coords.unbind(1)
    centre = (b * (height + 2) + y + 1) * (width + 2) + x + 1  # (S,)
    taps = torch.tensor([dy * (width + 2) + dx for dy, dx in SUBM3_OFFSETS],
                        dtype=torch.int64, device=centre.device)  # (9,)
    return flat_map[centre[:, None] + taps[None, :]]  # (S, 9)


#: Interior size of the tiles of :class:`TileRules` (each gets a 1-cell halo: 18 x 18).
TILE = 16


@dataclass(frozen=True)
class TileRules:
    """3x3 SubM as dense convs on the active TILE x TILE tiles of a site set (CPU fast path).

    Every tile holding a site is cut out with a 1-cell halo into a zero buffer, convolved
    densely (oneDNN, channels-last) and read back at the sites. Missing cells are zero, so this
    is exactly the SubM of spec §10.2, with ~1.6x the sparse FLOPs at dense-conv speed.

    Attributes:
        src_rows: Site row copied into the tile buffer, per copy.
        dst_cells: Cell of the flattened (tiles, TILE+2, TILE+2) buffer it goes to.
        out_cells: Cell of the flattened (tiles, TILE, TILE) output holding each site.
        num_tiles: Number of active tiles.

    Shape:
        src_rows (R,), dst_cells (R,), out_cells (S,), all int64; R ~ 1.2 S.
    """

    src_rows: Tensor
    dst_cells: Tensor
    out_cells: Tensor
    num_tiles: int


def _halo_cell(tile_shift: int, local: Tensor) -> Tensor | int:
    """Buffer row (or column) of a site in the tile ``tile_shift`` away from its own.

    A site in the top row of its tile sits in the bottom halo row (TILE + 1) of the tile above,
    one in the bottom row in the top halo row (0) of the tile below.
    """
    if tile_shift == 0:
        return local + 1
    return TILE + 1 if tile_shift < 0 else 0


def tile_rulebook(sites: SiteSet) -> TileRules:
    """Tile copy lists of a site set (see :class:`TileRules`)."""
    tiles = F.max_pool2d(sites.mask[:, None].float(), TILE, TILE, ceil_mode=True)[:, 0] > 0
    tile_map = torch.full((tiles.shape[0], tiles.shape[1] + 2, tiles.shape[2] + 2), -1,
                          dtype=torch.int64, device=tiles.device)  # (B, nty+2, ntx+2)
    tile_coords = tiles.nonzero()  # (Nt, 3)
    tile_map[tile_coords[:, 0], tile_coords[:, 1] + 1, tile_coords[:, 2] + 1] = torch.arange(
        tile_coords.shape[0], device=tiles.device)
    b, y, x = sites.coords.unbind(1)
    ty, ly, tx, lx = y // TILE, y % TILE, x // TILE, x % TILE
    side = TILE + 2
    own = tile_map[b, ty + 1, tx + 1]  # (S,) always active
    sources = [torch.arange(sites.num_sites, device=b.device)]
    cells = [(own * side + ly + 1) * side + lx + 1]
    # Halo copies: only sites on a tile border can sit in a neighbour tile's halo.
    edge_y = (ly == 0).long() - (ly == TILE - 1).long()  # +1: top row, -1: bottom row
    edge_x = (lx == 0).long() - (lx == TILE - 1).long()
    border = ((edge_y != 0) | (edge_x != 0)).nonzero()[:, 0]  # (Sb,)
    for dty in (-1, 0, 1):
        for dtx in (-1, 0, 1):
            if dty == dtx == 0:
                continue
            keep = border
            if dty != 0:
                keep = keep[edge_y[keep] == -dty]
            if dtx != 0:
                keep = keep[edge_x[keep] == -dtx]
            tile = tile_map[b[keep], ty[keep] + 1 + dty, tx[keep] + 1 + dtx]
            keep, tile = keep[tile >= 0], tile[tile >= 0]
            cy, cx = _halo_cell(dty, ly[keep]), _halo_cell(dtx, lx[keep])
            sources.append(keep)
            cells.append((tile * side + cy) * side + cx)
    return TileRules(src_rows=torch.cat(sources), dst_cells=torch.cat(cells),
                     out_cells=own * TILE * TILE + ly * TILE + lx,
                     num_tiles=int(tile_coords.shape[0]))


def tile_conv(features: Tensor, rules: TileRules, weight: Tensor,
              bias: Tensor | None = None) -> Tensor:
    """3x3 SubM conv through dense convs on tiles.

    Shape:
        features (S, Cin), weight KRSC (Cout, 3, 3, Cin) -> (S, Cout)
    """
    side = TILE + 2
    in_channels = features.shape[1]
    buffer = features.new_zeros(rules.num_tiles * side * side, in_channels)
    buffer.index_copy_(0, rules.dst_cells, features.index_select(0, rules.src_rows))
    tiles = buffer.view(rules.num_tiles, side, side, in_channels).permute(0, 3, 1, 2)  # NCHW view
    out = F.conv2d(tiles, weight.permute(0, 3, 1, 2), bias)  # (Nt, Cout, TILE, TILE)
    out_rows = out.permute(0, 2, 3, 1).reshape(-1, weight.shape[0])  # (Nt*TILE*TILE, Cout)
    return out_rows.index_select(0, rules.out_cells)


@dataclass(frozen=True)
class InverseGroup:
    """Fine sites of one (y, x) parity class and their coarse taps for an inverse conv.

    Attributes:
        fine_rows: Row of each fine site of the class in the fine feature matrix.
        coarse_rows: Coarse-site row per fine site and tap (the sentinel Sc where missing).
        taps: Kernel position (ky, kx) of every column of ``coarse_rows``.

    Shape:
        - fine_rows: (G,) int64
        - coarse_rows: (G, K) int64, K = len(taps) in {1, 2, 4}
    """

    fine_rows: Tensor
    coarse_rows: Tensor
    taps: tuple[tuple[int, int], ...]


def _parity_taps(parity: int) -> tuple[tuple[int, int], ...]:
    """(kernel position, coarse offset from fine // 2) pairs for one axis (see inverse_rulebook)."""
    return ((1, 0),) if parity == 0 else ((0, 1), (2, 0))


def inverse_rulebook(fine: SiteSet, coarse: SiteSet) -> tuple[InverseGroup, ...]:
    """Rules of a 3x3 inverse conv (transpose of stride 2, padding 1) from ``coarse`` to ``fine``.

    The transpose conv writes ``out[2q - 1 + o] += W[:, o, :] . in[q]``; read from the output
    side, a fine coordinate p gets kernel position o = 1 from q = p / 2 when p is even, and o = 0
    from q = (p + 1) / 2 plus o = 2 from q = (p - 1) / 2 when p is odd. Grouping the fine sites
    by (y, x) parity gives 1, 2, 2 or 4 taps per site (2.25 on average instead of 9).

    Shape:
        fine: grid (B, H, W); coarse: grid (B, ceil(H/2), ceil(W/2)).
    """
    _, coarse_h, coarse_w = coarse.grid
    flat_map = coarse.padded_index_map().view(-1)  # (B*(h+2)*(w+2),)
    b, y, x = fine.coords.unbind(1)
    # One host sync for the four parity classes: a stable sort by class, then the class sizes.
    parity = (y % 2) * 2 + x % 2  # (S,) class 2*py + px
    order = torch.argsort(parity, stable=True)
    sizes = torch.bincount(parity, minlength=4).tolist()
    groups = []
    start = 0
    for parity_y in (0, 1):
        for parity_x in (0, 1):
            rows = order[start:start + sizes[2 * parity_y + parity_x]]  # (G,) ascending
            start += rows.shape[0]
            gb, gy, gx = b[rows], y[rows] // 2, x[rows] // 2
            columns, taps = [], []
            for ky, shift_y in _parity_taps(parity_y):
                for kx, shift_x in _parity_taps(parity_x):
                    cell = (gb * (coarse_h + 2) + gy + shift_y + 1) * (coarse_w + 2)
                    columns.append(flat_map[cell + gx + shift_x + 1])
                    taps.append((ky, kx))
            groups.append(InverseGroup(rows, torch.stack(columns, dim=1), tuple(taps)))
    return tuple(groups)


def pad_rows(features: Tensor) -> Tensor:
    """Append the zero row that the sentinel index S points to: (S, C) -> (S + 1, C)."""
    return torch.cat([features, features.new_zeros(1, features.shape[1])])


def gather_matmul(padded: Tensor, rows: Tensor, weight: Tensor,
                  bias: Tensor | None = None) -> Tensor:
    """``out[s] = bias + concat_k(padded[rows[s, k]]) @ weight``.

    Chunked over output sites so that the gathered matrix stays under GATHER_CHUNK_BYTES.

    Args:
        padded: Input feature matrix plus a last zero row (:func:`pad_rows`).
        rows: Input row per output site and tap; the value S (the zero row) means "missing".
        weight: Tap-stacked weight matrix, rows ordered tap-major then input channel.
        bias: Optional output bias.

    Shape:
        padded (S+1, Cin), rows (S_out, K), weight (K*Cin, Cout), bias (Cout,) -> (S_out, Cout)
    """
    num_out, num_taps = rows.shape
    in_channels = padded.shape[1]
    out = padded.new_empty(num_out, weight.shape[1])
    chunk = max(1, GATHER_CHUNK_BYTES // (4 * num_taps * in_channels))
    for start in range(0, num_out, chunk):
        stop = min(start + chunk, num_out)
        cols = padded.index_select(0, rows[start:stop].reshape(-1))
        cols = cols.view(stop - start, num_taps * in_channels)  # (chunk, K*Cin)
        if bias is None:
            torch.mm(cols, weight, out=out[start:stop])
        else:
            torch.addmm(bias, cols, weight, out=out[start:stop])
    return out


def subm3_weight_matrix(weight: Tensor) -> Tensor:
    """KRSC (Cout, 3, 3, Cin) weight -> (9*Cin, Cout), taps in SUBM3_OFFSETS order."""
    out_channels = weight.shape[0]
    return weight.permute(1, 2, 3, 0).reshape(-1, out_channels)  # (3*3*Cin, Cout)


def inverse_conv(features: Tensor, groups: tuple[InverseGroup, ...], weight: Tensor,
                 num_fine: int) -> Tensor:
    """3x3 inverse (transposed stride-2) sparse conv from coarse to fine sites, no bias.

    Shape:
        features (Sc, Cin), weight KRSC (Cout, 3, 3, Cin) -> (num_fine, Cout)
    """
    out = features.new_empty(num_fine, weight.shape[0])
    padded = pad_rows(features)  # (Sc+1, Cin)
    for group in groups:
        if group.fine_rows.numel() == 0:
            continue
        stacked = torch.cat([weight[:, ky, kx, :].t() for ky, kx in group.taps])  # (K*Cin, Cout)
        out.index_copy_(0, group.fine_rows, gather_matmul(padded, group.coarse_rows, stacked))
    return out


def gather_sites(dense: Tensor, frame_of_batch: Tensor, sites: SiteSet) -> Tensor:
    """Read a dense per-frame feature map at the sites of sparse batch elements.

    Args:
        dense: Dense features, one map per frame.
        frame_of_batch: Frame index of every sparse batch element b.
        sites: Sites on the (B, h, w) grid of ``dense``.

    Shape:
        dense (T, C, h, w), frame_of_batch (B,) int64 -> (S, C)
    """
    frames, channels, height, width = dense.shape
    b, y, x = sites.coords.unbind(1)
    flat = dense.reshape(frames, channels, height * width)  # (T, C, h*w)
    return flat[frame_of_batch[b], :, y * width + x]  # (S, C)


def scatter_logits(values: Tensor, sites: SiteSet, out: Tensor) -> None:
    """Write site logits into a dense map with the official ``(scatter - 99)`` then ``+99``.

    Off-site cells of ``out`` are left untouched (the caller fills them with -99). At a site
    the stored value is ``(v - 99) + 99`` in float32, which quantises v to the 2^-17 grid
    exactly like the official densification (spec §10.3).

    Shape:
        values (S, 1), out (B, 1, h, w) matching the sites' grid.
    """
    out.view(-1)[sites.linear_index()] = (values[:, 0] - 99.0) + 99.0
