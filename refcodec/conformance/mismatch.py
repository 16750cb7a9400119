"""Where and how a decoder's output differs from the reference (``refcodec conformance
run``): the first differing value, the counts of differing values per picture and per
channel, and the pattern the differences follow, named as a decoder author would look for
it.

A tensor is analysed in its source layout and located in the pictures through the layer's
packing (refcodec.packing: slot n * C + k holds channel perm[k] of batch item n; picture
p holds slots p*T .. p*T+T-1 in raster order of the tile grid).  Pictures (tier 1) are
compared with the reference decoder's own pictures.

Patterns, tried in this order (the first that explains every differing value wins):

``layout_transposed``  the output is the tensor in the other layout (NHWC for NCHW or the
                       reverse), transposed or only reshaped
``swapped_channels``   some channels (pictures) hold exactly the reference values of others
``off_by_one_level``   every differing value is the reconstruction value of the level next
                       to the reference's (or, for pictures, the sample value +-1): an
                       off-by-one in the dequantization table or its index
``constant_offset``    decoded = reference + d, the same d wherever they differ
``constant_scale``     decoded = reference * k, the same k wherever they differ
``one_tile``           the differences lie in one tile of one picture (tiled packing)
``whole_picture``      the differences lie in one picture
``unrecognised``       none of the above
"""

from __future__ import annotations

import numpy as np

from .. import quant
from ..enums import SourceLayout
from ..layer import NUMPY_DTYPES
from ..records import LayerHeader

PATTERNS = ("layout_transposed", "swapped_channels", "off_by_one_level", "constant_offset",
            "constant_scale", "one_tile", "whole_picture", "unrecognised")
#: Entries kept in the per-channel and per-picture counts of the results.
MAX_COUNTS = 64
#: Swapped channels are looked for among at most this many differing channels (the search
#: compares every pair).
MAX_SWAP_CHANNELS = 256


def _nchw(array: np.ndarray, layout: SourceLayout) -> np.ndarray:
    return array.transpose(0, 3, 1, 2) if layout == SourceLayout.NHWC else array


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit where it matters: as values, NaN equal to NaN."""
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _counts(values: np.ndarray) -> dict[str, int]:
    out = {}
    for i in np.flatnonzero(values)[:MAX_COUNTS]:
        out[str(int(i))] = int(values[i])
    return out


def _number(v) -> float | int | str:
    v = v.item() if hasattr(v, "item") else v
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


class _Places:
    """Where slot (n, c) of a layer sits in its pictures."""

    def __init__(self, header: LayerHeader):
        lay = header.layout
        self.lay = lay
        perm = lay.permutation
        self.position = (np.argsort(np.asarray(perm)) if perm is not None
                         else np.arange(header.num_channels))   # channel -> k

    def slot(self, n: int, c: int) -> int:
        return n * self.lay.num_channels + int(self.position[c])

    def picture_of(self, n: int, c: int) -> tuple[int, int, int]:
        """(picture, tile_row, tile_col) of channel c of batch item n."""
        s = self.slot(n, c)
        t = s % self.lay.tiles
        return s // self.lay.tiles, t // self.lay.tile_cols, t % self.lay.tile_cols

    def sample_of(self, n, c, y, x) -> tuple[int, int]:
        _, tr, tc = self.picture_of(n, c)
        h = self.lay.height if self.lay.dense else self.lay.tile_height
        w = self.lay.width if self.lay.dense else self.lay.tile_width
        return tr * h + y, tc * w + x


def _transposed(got: np.ndarray, ref: np.ndarray, layout: SourceLayout) -> str | None:
    """The output in the other layout: transposed, or the right shape holding the other
    layout's order (reshaped instead of transposed)."""
    if got.ndim != 4 or got.size != ref.size:
        return None
    to_other = (0, 2, 3, 1) if layout == SourceLayout.NCHW else (0, 3, 1, 2)
    other = ref.transpose(to_other)
    this, that = layout.name, ("NHWC" if layout == SourceLayout.NCHW else "NCHW")
    if got.shape == other.shape and _same(got, other):
        return f"the tensor is in {that} layout, the stream's source_layout is {this}"
    if got.shape == ref.shape and _same(got.reshape(-1), np.ascontiguousarray(other)
                                        .reshape(-1)):
        return (f"the values are in {that} order, reshaped (not transposed) to the "
                f"{this} shape")
    return None


def _swapped(got: np.ndarray, ref: np.ndarray, channels: list[int]) -> dict | None:
    """Each differing channel holds the reference values of another differing channel
    (a permutation among them); ``got``/``ref`` are N x C x H x W."""
    if not 2 <= len(channels) <= MAX_SWAP_CHANNELS:
        return None
    mapping = {}
    for c in channels:
        match = [d for d in channels if d != c and _same(got[:, c], ref[:, d])]
        if len(match) != 1:
            return None
        mapping[c] = match[0]
    if sorted(mapping.values()) != sorted(channels):
        return None
    return mapping


def _level_steps(got, ref, header: LayerHeader, channels) -> bool:
    """Every differing value is the reconstruction value of the level next to the
    reference's, in its channel's table (clause 9.4)."""
    dtype = NUMPY_DTYPES[header.source_dtype]
    params = header.quant_params
    for c in channels:
        p = params[c] if header.per_channel_quant_flag else params[0]
        table = quant.output_table(int(header.quantizer_type), p, header.sample_bit_depth,
                                   dtype).astype(np.float64)
        if np.any(np.diff(table) < 0):
            return False
        g = got[:, c].astype(np.float64)
        r = ref[:, c].astype(np.float64)
        where = ~((g == r) | (np.isnan(g) & np.isnan(r)))
        g, r = g[where], r[where]
        if not np.all(np.isfinite(g)):
            return False
        lr = _nearest(table, r)
        lg = _nearest(table, g)
        close = np.abs(table[lg] - g) <= np.maximum(1e-6 * np.abs(g), 1e-30)
        if not (np.all(np.abs(lg - lr) == 1) and np.all(close)):
            return False
    return True


def _nearest(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(table, values), 1, len(table) - 1)
    left = table[i - 1]
    return np.where(np.abs(values - left) <= np.abs(table[i] - values), i - 1, i)


def _constant(d: np.ndarray, what: str) -> str | None:
    """The common value of d (at least two values), as text, or None."""
    if d.size > 1 and np.all(np.isfinite(d)):
        lo, hi = float(d.min()), float(d.max())
        if hi - lo <= 1e-6 * max(abs(lo), abs(hi)) and (lo != 0 or what == "scale"):
            return f"{lo:.9g}"
    return None


def analyse_tensor(got: np.ndarray, ref: np.ndarray, header: LayerHeader) -> dict | None:
    """How a decoded tensor differs from the reference tensor (both in the source layout);
    None when they are equal.  The record of conformance/README.md ("mismatch")."""
    layout = header.source_layout
    result: dict = {"kind": "tensor"}
    detail = _transposed(got, ref, layout)
    if detail is not None:
        result.update(pattern="layout_transposed", detail=detail,
                      differing=int(got.size if got.shape != ref.shape
                                    else np.count_nonzero(got != ref)), total=int(ref.size))
        return result
    if got.shape != ref.shape:
        result.update(pattern="unrecognised", detail=f"shape {list(got.shape)} instead of "
                      f"{list(ref.shape)}", differing=int(ref.size), total=int(ref.size))
        return result
    g, r = _nchw(got, layout), _nchw(ref, layout)
    g64, r64 = g.astype(np.float64), r.astype(np.float64)
    diff = ~((g64 == r64) | (np.isnan(g64) & np.isnan(r64)))
    if not diff.any():
        return None
    places = _Places(header)
    n, c, y, x = (int(v) for v in np.argwhere(diff)[0])
    picture, tr, tc = places.picture_of(n, c)
    row, col = places.sample_of(n, c, y, x)
    result["first"] = {"batch": n, "channel": c, "row": y, "column": x,
                       "picture": picture, "tile_row": tr, "tile_col": tc,
                       "picture_row": row, "picture_column": col,
                       "expected": _number(r[n, c, y, x]), "decoded": _number(g[n, c, y, x])}
    per_channel = diff.sum(axis=(0, 2, 3))
    result["differing"] = int(diff.sum())
    result["total"] = int(diff.size)
    result["per_channel"] = _counts(per_channel)
    slots = diff.any(axis=(2, 3))                        # (N, C)
    pictures = np.zeros(places.lay.num_pictures, np.int64)
    tiles = set()
    for nn, cc in np.argwhere(slots):
        p, a, b = places.picture_of(int(nn), int(cc))
        pictures[p] += int(diff[nn, cc].sum())
        tiles.add((p, a, b))
    result["per_picture"] = _counts(pictures)
    channels = [int(v) for v in np.flatnonzero(per_channel)]
    pattern, text = _classify(g64, r64, diff, header, channels, pictures, tiles)
    result.update(pattern=pattern, detail=text)
    return result


def _classify(g, r, diff, header, channels, pictures, tiles) -> tuple[str, str]:
    swap = _swapped(g, r, channels)
    if swap:
        pairs = ", ".join(f"channel {c} holds channel {d}" for c, d in swap.items())
        return "swapped_channels", pairs
    if _level_steps(g, r, header, channels):
        return "off_by_one_level", (f"every differing value is the reconstruction value one "
                                    f"level from the reference's (channels "
                                    f"{', '.join(map(str, channels[:16]))})")
    d = (g - r)[diff]
    offset = _constant(d, "offset")
    if offset is not None:
        return "constant_offset", f"decoded = reference + {offset} where they differ"
    nonzero = diff & (r != 0)
    if nonzero.any() and not (diff & (r == 0)).any():
        scale = _constant((g / np.where(r == 0, 1, r))[nonzero], "scale")
        if scale is not None:
            return "constant_scale", f"decoded = reference * {scale} where they differ"
    wrong = np.flatnonzero(pictures)
    if len(wrong) == 1:
        p, count = int(wrong[0]), int(pictures[wrong[0]])
        maps = header.layout.tiles
        size = header.height * header.width
        if len(tiles) == 1 and maps > 1:
            _, a, b = next(iter(tiles))
            if 2 * count >= size:
                return "one_tile", f"only tile ({a}, {b}) of picture {p} differs"
            return "unrecognised", (f"{count} values of tile ({a}, {b}) of picture {p} "
                                    f"differ")
        filled = sum(1 for s in range(p * maps, (p + 1) * maps)
                     if s < header.batch_size * header.num_channels)
        if 2 * count >= filled * size:
            return "whole_picture", f"only picture {p} differs"
        return "unrecognised", f"{count} values of picture {p} differ"
    return "unrecognised", (f"{len(wrong)} pictures and {len(channels)} channels differ")


def analyse_planes(got: np.ndarray, ref: np.ndarray, header: LayerHeader) -> dict | None:
    """How decoded pictures (P x H x W) differ from the reference decoder's; None when
    equal."""
    result: dict = {"kind": "planes"}
    if got.shape != ref.shape:
        result.update(pattern="unrecognised", detail=f"shape {list(got.shape)} instead of "
                      f"{list(ref.shape)}", differing=int(ref.size), total=int(ref.size))
        return result
    g, r = got.astype(np.int64), ref.astype(np.int64)
    diff = g != r
    if not diff.any():
        return None
    lay = header.layout
    p, y, x = (int(v) for v in np.argwhere(diff)[0])
    th = lay.height if lay.dense else lay.tile_height
    tw = lay.width if lay.dense else lay.tile_width
    tr, tc = min(y // th, lay.tile_rows - 1), min(x // tw, lay.tile_cols - 1)
    slot = p * lay.tiles + tr * lay.tile_cols + tc
    first = {"picture": p, "row": y, "column": x, "tile_row": tr, "tile_col": tc,
             "expected": int(r[p, y, x]), "decoded": int(g[p, y, x])}
    if slot < lay.batch_size * lay.num_channels:
        k = slot % lay.num_channels
        perm = lay.permutation
        first.update(batch=slot // lay.num_channels,
                     channel=int(perm[k]) if perm is not None else k)
    per_picture = diff.sum(axis=(1, 2))
    result.update(first=first, differing=int(diff.sum()), total=int(diff.size),
                  per_picture=_counts(per_picture))
    wrong = [int(v) for v in np.flatnonzero(per_picture)]
    swap = _swapped(g[None], r[None], wrong)
    if swap:
        result.update(pattern="swapped_channels", detail=", ".join(
            f"picture {a} holds picture {b}" for a, b in swap.items()))
        return result
    d = (g - r)[diff]
    if np.all(np.abs(d) == 1):
        result.update(pattern="off_by_one_level",
                      detail="every differing sample is the reference's +-1")
        return result
    if d.size > 1 and np.all(d == d[0]):
        result.update(pattern="constant_offset", detail=f"decoded = reference + {int(d[0])} "
                                                        f"where they differ")
        return result
    if len(wrong) == 1:
        rows, cols = np.nonzero(diff[wrong[0]])
        tiles = {(min(a // th, lay.tile_rows - 1), min(b // tw, lay.tile_cols - 1))
                 for a, b in zip(rows.tolist(), cols.tolist())}
        count = int(per_picture[wrong[0]])
        if len(tiles) == 1 and lay.tiles > 1:
            a, b = next(iter(tiles))
            pattern = "one_tile" if 2 * count >= th * tw else "unrecognised"
            result.update(pattern=pattern,
                          detail=f"only tile ({a}, {b}) of picture {wrong[0]} differs")
        else:
            pattern = "whole_picture" if 2 * count >= diff[0].size else "unrecognised"
            result.update(pattern=pattern, detail=f"only picture {wrong[0]} differs "
                                                  f"({count} samples)")
        return result
    result.update(pattern="unrecognised", detail=f"{len(wrong)} pictures differ")
    return result


def summary(layer_id: str, m: dict) -> str:
    """One line for the runner's table."""
    where = ""
    f = m.get("first")
    if f:
        if m["kind"] == "tensor":
            where = (f"first at batch {f['batch']} channel {f['channel']} row {f['row']} "
                     f"column {f['column']} (picture {f['picture']}, tile {f['tile_row']},"
                     f"{f['tile_col']}): expected {f['expected']}, decoded {f['decoded']}; ")
        else:
            where = (f"first at picture {f['picture']} row {f['row']} column {f['column']} "
                     f"(tile {f['tile_row']},{f['tile_col']}): expected {f['expected']}, "
                     f"decoded {f['decoded']}; ")
    return (f"layer {layer_id}: {m['pattern']}: {m['detail']}; {where}"
            f"{m['differing']} of {m['total']} differ")
