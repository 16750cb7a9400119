"""Tensor <-> picture planes (clause 9.3): channel order, padding and tiling.

Numpy only.  ``pack`` is the encoder side (the padding rule is informative for a decoder,
which only crops); ``unpack`` is the normative inverse.  For every layout,
``unpack(pack(q)) == q`` (tested as a property).

Slot order: slot s = n * C + k holds channel ``perm[k]`` of batch item n (perm = identity
when no permutation is signalled).  Picture p holds slots p*T .. p*T+T-1 (T = tile_rows *
tile_cols) in raster order of the tile grid: slot s sits in tile row (s mod T) // tile_cols
and tile column (s mod T) mod tile_cols.  Unused tiles of the last picture are filled with
zero samples by this encoder (any value is conforming).

Dense packing (packing_type 2, format 1.2): the tiles are the maps themselves (height x
width, unpadded) and the padding extends the whole picture instead of each map.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Layout:
    batch_size: int
    num_channels: int
    height: int
    width: int
    tile_rows: int = 1
    tile_cols: int = 1
    pad_bottom: int = 0
    pad_right: int = 0
    replicate: bool = True
    permutation: tuple[int, ...] | None = None
    dense: bool = False    # packing_type 2: pad the picture, not each tile

    @classmethod
    def of(cls, header) -> "Layout":
        """The layout a LayerHeader describes (its ``layout`` attribute)."""
        return header.layout

    @property
    def tiles(self) -> int:
        return self.tile_rows * self.tile_cols

    @property
    def num_pictures(self) -> int:
        return -(-(self.batch_size * self.num_channels) // self.tiles)

    @property
    def tile_height(self) -> int:
        """CodedTileHeight (clause 8.3.14)."""
        return self.height if self.dense else self.height + self.pad_bottom

    @property
    def tile_width(self) -> int:
        """CodedTileWidth (clause 8.3.14)."""
        return self.width if self.dense else self.width + self.pad_right

    @property
    def picture_shape(self) -> tuple[int, int]:
        """(PictureHeight, PictureWidth) (clause 8.3.14)."""
        if self.dense:
            return (self.tile_rows * self.height + self.pad_bottom,
                    self.tile_cols * self.width + self.pad_right)
        return self.tile_rows * self.tile_height, self.tile_cols * self.tile_width


def pack(q: np.ndarray, layout: Layout) -> np.ndarray:
    """N x C x H x W samples -> (num_pictures, picture_height, picture_width) planes."""
    n, c, h, w = q.shape
    lay = layout
    if (n, c, h, w) != (lay.batch_size, lay.num_channels, lay.height, lay.width):
        raise ValueError(f"tensor shape {q.shape} does not match the layout")
    if lay.permutation is not None:
        q = q[:, np.asarray(lay.permutation, dtype=np.intp)]
    slots = q.reshape(n * c, h, w)
    mode = "edge" if lay.replicate else "constant"
    if (lay.pad_bottom or lay.pad_right) and not lay.dense:
        slots = np.pad(slots, ((0, 0), (0, lay.pad_bottom), (0, lay.pad_right)), mode=mode)
    total = lay.num_pictures * lay.tiles
    if lay.tiles == 1 and not lay.dense:
        return np.ascontiguousarray(slots)
    if total != n * c:
        fill = np.zeros((total - n * c, lay.tile_height, lay.tile_width), dtype=slots.dtype)
        slots = np.concatenate([slots, fill])
    grid = slots.reshape(lay.num_pictures, lay.tile_rows, lay.tile_cols, lay.tile_height,
                         lay.tile_width)
    pictures = np.ascontiguousarray(grid.transpose(0, 1, 3, 2, 4)).reshape(
        lay.num_pictures, lay.tile_rows * lay.tile_height, lay.tile_cols * lay.tile_width)
    if lay.dense and (lay.pad_bottom or lay.pad_right):
        pictures = np.pad(pictures, ((0, 0), (0, lay.pad_bottom), (0, lay.pad_right)),
                          mode=mode)
    return pictures


def unpack(pictures: np.ndarray, layout: Layout) -> np.ndarray:
    """(num_pictures, picture_height, picture_width) planes -> N x C x H x W samples."""
    lay = layout
    ph, pw = lay.picture_shape
    if pictures.shape != (lay.num_pictures, ph, pw):
        raise ValueError(f"pictures of shape {pictures.shape} do not match the layout")
    if lay.dense:   # the picture's padding belongs to no tile (clause 8.3.14)
        pictures = pictures[:, :lay.tile_rows * lay.height, :lay.tile_cols * lay.width]
    grid = pictures.reshape(lay.num_pictures, lay.tile_rows, lay.tile_height, lay.tile_cols,
                            lay.tile_width).transpose(0, 1, 3, 2, 4)
    slots = grid.reshape(lay.num_pictures * lay.tiles, lay.tile_height, lay.tile_width)
    n, c = lay.batch_size, lay.num_channels
    q = slots[:n * c, :lay.height, :lay.width].reshape(n, c, lay.height, lay.width)
    if lay.permutation is not None:
        inverse = np.argsort(np.asarray(lay.permutation, dtype=np.intp))
        q = q[:, inverse]
    return np.ascontiguousarray(q)


def min_tile_grid(tile_h: int, tile_w: int, min_side: int = 16) -> tuple[int, int]:
    """Informative: the smallest grid whose picture is at least min_side on each side
    (libx265 codes no picture smaller than 16 x 16)."""
    return -(-min_side // tile_h), -(-min_side // tile_w)


def near_square_grid(channels: int, tile_h: int, tile_w: int,
                     min_side: int = 16) -> tuple[int, int]:
    """Informative: a near-square grid holding ``channels`` maps (one batch item per
    picture, as the MPEG FCM anchor does), grown to at least ``min_side`` per side."""
    cols = max(1, int(np.ceil(np.sqrt(channels * tile_h / tile_w))))
    rows = -(-channels // cols)
    min_rows, min_cols = min_tile_grid(tile_h, tile_w, min_side)
    return max(rows, min_rows), max(cols, min_cols)


def order_of_groups(groups) -> tuple[int, ...]:
    """ChannelOrder of a grouped_permutation() (clause 8.3.8): the channel indices sorted by
    their channel_group, channels of equal group in increasing index order."""
    return tuple(np.argsort(np.asarray(groups, dtype=np.int64), kind="stable").tolist())


def groups_of_order(order) -> tuple[tuple[int, ...], int]:
    """Informative: the channel_group values and group_bits with which a grouped
    permutation codes ``order``: group g holds the g-th increasing run of the order (the
    fewest groups that can give it), group_bits the fewest bits that number the runs.
    Raises ValueError when the order has more runs than 2^8 groups can carry."""
    order = np.asarray(order, dtype=np.int64)
    run = np.concatenate(([0], np.cumsum(order[1:] < order[:-1])))
    runs = int(run[-1]) + 1
    if runs > 1 << 8:
        raise ValueError(f"the order has {runs} increasing runs; the grouped code carries "
                         f"at most 256 groups")
    groups = np.empty_like(run)
    groups[order] = run
    return tuple(int(g) for g in groups), max(1, (runs - 1).bit_length())
