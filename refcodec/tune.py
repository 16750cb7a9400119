"""The choosing encoder (informative, Annex A.7) and rate control (Annex A.8).

``choose(name, tensor, tune, qp)`` measures a tensor and picks, for one layer, the coding
options the seed configuration leaves to the user: packing and mosaic shape, quantizer, bit
depth, a clipping range, the maps flattened to their mean, the channel order and the libx265
settings.  Every rule is a function of measurements of the tensor (and of the QP it will be
coded at); Annex A.7 gives each with the measurement that justifies it.  The tunes:

* ``seed``: the seed paper's configuration (log quantizer, 8-bit, one channel per picture
  where libx265 allows it, preset medium), kept by name as the reference point; it is
  ``EncoderConfig()`` with the caller's QP, layout and verify flag, byte for byte.
* ``efficient``: every rule (Annex A.7.1 to A.7.6): one mosaic picture per batch item
  (dense for maps that need padding), the uniform quantizer for signed layers, the
  square-root quantizer (format 1.2) at 10 bits for non-negative layers of large maps
  without a heavy tail and the log quantizer for those of small maps, 10-bit and clipping
  on small signed maps, flattening of near-constant small maps, the maps ordered by their
  mean where the compact permutation is cheap and by 32 groups of their mean where only
  the grouped permutation (format 1.2) is, libx265 preset medium without SAO and without
  deblocking, with RDOQ on tiles of at most 32x32, 32x32 CTUs on larger tiles and
  transform skip with the square-root quantizer.
* ``fast``: the same rules, libx265 preset medium without SAO and deblocking (transform
  skip with the square-root quantizer), with 16x16 CTUs and no RDOQ: an encode time within
  1.1x of the seed's (tools/bench_rd.py measures it).

Clipping and flattening change the tensor before it is quantized (inside today's format;
the decoder is unchanged): ``Choice.apply(tensor)`` is the tensor the encoder codes.

``encode_layers`` codes layers with a tune and, optionally, a rate target met by choosing
the slice QP (bisection over 0..51, one encode per trial).

Numpy only; above refcodec.layer and below refcodec.codec.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from . import bitstream, packing
from .enums import LEVELS, UnitType
from .errors import EncoderInputError
from .layer import MIN_PICTURE_SIDE, EncoderConfig, _as_numpy, encode_layer
from .syntax import perm_bits

TUNES = ("seed", "fast", "efficient")

#: libx265 settings of the tunes (Annex A.7.6): preset and x265_params (no SAO, no
#: deblocking); "efficient" adds RDOQ_PARAMS where the tiles are at most RDOQ_MAX_TILE
#: samples on a side and LARGE_TILE_PARAMS where they are more than LARGE_TILE_MIN.
X265 = {"efficient": ("medium", "sao=0:no-deblock=1"),
        "fast": ("medium", "sao=0:no-deblock=1:ctu=16")}
RDOQ_PARAMS = "rdoq-level=2"
RDOQ_MAX_TILE = 32
LARGE_TILE_PARAMS = "ctu=32"
LARGE_TILE_MIN = 32
#: A.7.6: both tunes add TSKIP_PARAMS (transform skip of 4x4 blocks) where the layer has
#: the square-root quantizer ("": never).
TSKIP_PARAMS = "tskip=1"
#: A.7.1: dense packing (format 1.2, packing_type 2) for maps whose sides are not
#: multiples of 8, except maps smaller than 8x8 that fill at least DENSE_MAX_FILL of their
#: 8x8 tile (1.0: none; the first versions of this tune tiled 6x6 and 7x7 maps at 0.5,
#: before the grouped order of A.7.5); False writes only the syntax of format 1.1.
DENSE = True
DENSE_MAX_FILL = 1.0
#: A layer is signed when more than this fraction of its elements is negative (A.7.2).
SIGNED_FRACTION = 0.01
#: A.7.2, A.7.3: maps of at most this many elements (16x16) are coded at 10 bits and
#: clipped (signed layers); larger maps at 8 bits, unclipped.
SMALL_MAP_ELEMENTS = 256
#: A.7.2: a non-negative layer keeps the log quantizer for maps of at most this many
#: elements; larger maps get LARGE_NONNEGATIVE_QUANTIZER, 8-bit.
LOG_MAX_ELEMENTS = SMALL_MAP_ELEMENTS
#: A.7.2: the quantizer of non-negative layers with maps larger than LOG_MAX_ELEMENTS: the
#: square-root quantizer (format 1.2, quantizer_type 3), whose levels are finest at the
#: top of the range ("uniform": the previous rule, the benchmark's uniform-large ablation),
#: when less than SQRT_MAX_BELOW_FIRST of the values lie below its first level above the
#: minimum, (max - min) / sqrt(D) (else: a heavy tail, most values in that first step), and
#: when libx265's step at the QP is at least that first step (sqrt_pays_at: below, the
#: square root's coarse first step would be the fidelity's floor); otherwise uniform.
LARGE_NONNEGATIVE_QUANTIZER = "sqrt"
SQRT_MAX_BELOW_FIRST = 0.5
#: A.7.2: the bit depth of those layers (square root or uniform); the choice between the
#: two is made with the first step of the 8-bit square root (SQRT_CHOICE_BIT_DEPTH), the
#: rule as it was measured, whatever the depth they are coded at.
LARGE_NONNEGATIVE_BIT_DEPTH = 10
SQRT_CHOICE_BIT_DEPTH = 8
#: A.7.4: only maps of at most this many elements (8x8) are flattened.
FLAT_MAX_ELEMENTS = 64
#: Flattening (A.7.4): a map whose standard deviation is below this fraction of the
#: layer's is replaced by its mean (with FLAT_NOISE_CAP, only when it is also below the
#: coding noise at the QP).
FLAT_FRACTION = 0.25
FLAT_NOISE_CAP = False
#: A.7.5: the maps of a mosaic are ordered by their mean when the compact permutation
#: (Ceil(Log2 C) bits per channel) costs at most this many bits per element.
ORDER_MAX_BITS_PER_ELEMENT = 1 / 16
#: A.7.5: where the compact permutation costs more, the maps are ordered by groups of
#: their mean, 2^ORDER_GROUP_BITS groups of equal count coded with the grouped permutation
#: (ORDER_GROUP_BITS bits per channel), when that costs at most
#: ORDER_GROUP_MAX_BITS_PER_ELEMENT bits per element (ORDER_GROUP_BITS 0: never).
ORDER_GROUP_BITS = 5
ORDER_GROUP_MAX_BITS_PER_ELEMENT = 1 / 8
#: Clipping candidates (A.7.3): lower and upper percentiles of the layer's values; a
#: clipping is taken when its estimated error is below CLIP_GAIN times the unclipped one.
CLIP_PERCENTILES = ((0.01, 99.99), (0.1, 99.9))
CLIP_GAIN = 0.95
#: A.7.1: the largest mosaic picture the tunes make (within level 10: 4096 per side and
#: 2**22 samples), so that every tuned layer stays codable at the lowest level.
MAX_MOSAIC_SAMPLES = LEVELS[min(LEVELS)].max_picture_samples
MAX_MOSAIC_SIDE = LEVELS[min(LEVELS)].max_picture_size


@dataclasses.dataclass(frozen=True)
class Stats:
    """Measurements of one layer (N x C x H x W, float64 statistics)."""
    minimum: float
    maximum: float
    std: float
    negative_fraction: float
    map_std: np.ndarray = dataclasses.field(repr=False)   # N x C: std of each map

    @property
    def signed(self) -> bool:
        return self.negative_fraction > SIGNED_FRACTION


def measure(x: np.ndarray) -> Stats:
    """The measurements the rules use, of an N x C x H x W float tensor."""
    return Stats(float(x.min()), float(x.max()), float(x.std(dtype=np.float64)),
                 float(np.count_nonzero(x < 0)) / x.size,
                 x.std(axis=(2, 3), dtype=np.float64))


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the choosing encoder picked for one layer."""
    tune: str
    config: EncoderConfig
    clip: tuple[float, float] | None = None       # values clipped to [lo, hi]
    flat_maps: tuple[int, ...] = ()               # maps n * C + c replaced by their mean
    reasons: tuple[str, ...] = ()

    @property
    def flattened(self) -> int:
        return len(self.flat_maps)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The tensor (NCHW, as given to ``choose``) the encoder codes: clipped, flattened;
        the input itself when neither applies.  The source dtype is kept."""
        if self.clip is None and not self.flat_maps:
            return x
        y = np.array(x, copy=True)
        if self.clip is not None:
            np.clip(y, np.asarray(self.clip[0], y.dtype), np.asarray(self.clip[1], y.dtype),
                    out=y)
        if self.flat_maps:
            maps = y.reshape(-1, y.shape[2], y.shape[3])
            idx = np.asarray(self.flat_maps, dtype=np.intp)
            means = maps[idx].mean(axis=(1, 2), dtype=np.float64)
            maps[idx] = means[:, None, None].astype(y.dtype)
        return y


def coding_noise(value_range: float, qp: int, bit_depth: int) -> float:
    """Standard deviation, in value units, of the error of a uniform quantizer over
    ``value_range`` at ``bit_depth`` followed by libx265 all-intra coding at slice QP ``qp``
    (A.7.3): HEVC's quantizer step is 2^((qp - 4) / 6) samples of an 8-bit picture and
    libx265 keeps that step relative to the sample range at 10 and 12 bits (measured:
    root-mean-square error x sqrt(12) = 7.9 samples at QP 22, 24 at QP 32, 58 at QP 42 on
    MobileNetV2 conv2 features, the same at 8 and 10 bits), plus the quantizer's own
    rounding step of one sample."""
    hevc_step = 2.0 ** ((qp - 4) / 6) / 255
    sample_step = 1 / ((1 << bit_depth) - 1)
    return value_range * math.sqrt((hevc_step ** 2 + sample_step ** 2) / 12)


def sqrt_pays_at(qp: int, bit_depth: int) -> bool:
    """Whether libx265's quantizer step at ``qp``, 2^((qp - 4) / 6) / 255 of the sample
    range (coding_noise), is at least the square-root quantizer's first step above the
    minimum, 1 / sqrt(D) of the range (A.7.2): at 8 bits from QP 28 on."""
    return 2.0 ** ((qp - 4) / 6) / 255 >= 1 / math.sqrt((1 << bit_depth) - 1)


def below_sqrt_first_level(v: np.ndarray, minimum: float, maximum: float,
                           bit_depth: int) -> float:
    """The fraction of the values ``v`` below the square-root quantizer's first level above
    the minimum, minimum + (maximum - minimum) / sqrt(D) (A.7.2: the rule's measure of a
    heavy tail)."""
    first = minimum + (maximum - minimum) / math.sqrt((1 << bit_depth) - 1)
    return float(np.count_nonzero(v < first)) / v.size


def _clip_range(v: np.ndarray, stats: Stats, qp: int, bit_depth: int, reasons: list):
    """The clipping of A.7.3: of no clipping and the CLIP_PERCENTILES ranges, the one with
    the smallest estimated squared error (coding noise over the range, plus the error of
    the clipped values), when it is below CLIP_GAIN times the error without clipping."""
    full = stats.maximum - stats.minimum
    best = (CLIP_GAIN * coding_noise(full, qp, bit_depth) ** 2, None)
    points = [p for pair in CLIP_PERCENTILES for p in pair]
    values = np.percentile(v, points)
    for k in range(len(CLIP_PERCENTILES)):
        lo, hi = float(values[2 * k]), float(values[2 * k + 1])
        if not hi > lo:
            continue
        below, above = v[v < lo].astype(np.float64), v[v > hi].astype(np.float64)
        clip_error = (float(np.sum((lo - below) ** 2)) + float(np.sum((above - hi) ** 2))) \
            / v.size
        cost = coding_noise(hi - lo, qp, bit_depth) ** 2 + clip_error
        if cost < best[0]:
            best = (cost, (lo, hi))
    if best[1] is not None:
        reasons.append(f"heavy tails: clipped to [{best[1][0]:.6g}, {best[1][1]:.6g}] "
                       f"(estimated error {best[0]:.3g} against "
                       f"{coding_noise(full, qp, bit_depth) ** 2:.3g} unclipped)")
    return best[1]


def mosaic_grid(c: int, tile_h: int, tile_w: int, dense: bool = False) -> tuple[int, int]:
    """The tile grid of A.7.1: one batch item's C maps in one picture (fewer when that
    picture would exceed MAX_MOSAIC_SIDE or MAX_MOSAIC_SAMPLES), rows x cols >= the maps it
    holds: of the grids whose picture is within 2:1, the one with the fewest unused tiles,
    then the squarest picture; at least 16x16 samples (libx265).  ``dense``: the tiles are
    the maps themselves and the picture is padded to multiples of 8 (packing "dense")."""
    slack = 7 if dense else 0             # the padding of a dense picture
    per_picture = max(1, min(c, MAX_MOSAIC_SAMPLES // ((tile_h + slack) * (tile_w + slack))))
    while True:
        best = None
        for rows in range(1, per_picture + 1):
            cols = -(-per_picture // rows)
            if rows * tile_h + slack > MAX_MOSAIC_SIDE or cols * tile_w + slack > MAX_MOSAIC_SIDE:
                continue
            unused = rows * cols - per_picture
            aspect = abs(math.log((rows * tile_h) / (cols * tile_w)))
            # within 2:1, the fewest unused tiles, then the squarest picture
            key = (aspect > math.log(2) + 1e-9, unused, aspect)
            if best is None or key < best[0]:
                best = (key, rows, cols)
        if best is not None:
            rows, cols = best[1], best[2]
            break
        per_picture = max(1, per_picture // 2)
    if dense:      # a dense side of more than 8 samples is padded to at least 16
        min_rows, min_cols = -(-(MIN_PICTURE_SIDE - 7) // tile_h), \
            -(-(MIN_PICTURE_SIDE - 7) // tile_w)
    else:
        min_rows, min_cols = packing.min_tile_grid(tile_h, tile_w, MIN_PICTURE_SIDE)
    return max(rows, min_rows), max(cols, min_cols)


def mean_order(x: np.ndarray, tiles: int,
               elements_per_channel: int) -> tuple[tuple[int, ...] | None, str]:
    """A.7.5: (channel order, permutation_coding) for the maps of ``x`` (N x C x H x W) in a
    mosaic of ``tiles`` tiles.  The order of the maps' means (ties in channel order) with
    the compact code, when Ceil(Log2 C) bits per channel cost at most
    ORDER_MAX_BITS_PER_ELEMENT per element; else the order of 2^ORDER_GROUP_BITS groups of
    equal count by the mean (channels of a group in index order) with the grouped code,
    when ORDER_GROUP_BITS bits per channel are fewer than the compact code's and cost at
    most ORDER_GROUP_MAX_BITS_PER_ELEMENT per element; else, or when the order is the
    identity, (None, "auto")."""
    c = x.shape[1]
    budget = ORDER_MAX_BITS_PER_ELEMENT * elements_per_channel
    group_budget = ORDER_GROUP_MAX_BITS_PER_ELEMENT * elements_per_channel
    if tiles < 2 or c < 2:
        return None, "auto"
    # (flattening keeps a map's mean; clipping may move it: x is the clipped tensor)
    by_mean = np.argsort(x.mean(axis=(0, 2, 3), dtype=np.float64), kind="stable")
    if perm_bits(c) <= budget:
        order, coding = by_mean, "compact"
    elif 0 < ORDER_GROUP_BITS < perm_bits(c) and ORDER_GROUP_BITS <= group_budget:
        rank = np.empty(c, dtype=np.int64)
        rank[by_mean] = np.arange(c)
        order, coding = np.argsort((rank << ORDER_GROUP_BITS) // c, kind="stable"), "grouped"
    else:
        return None, "auto"
    order = tuple(order.tolist())
    return (None, "auto") if order == tuple(range(c)) else (order, coding)


def choose(name: str, tensor, tune: str, base: EncoderConfig | None = None) -> Choice:
    """The coding of one layer under ``tune`` (TUNES), from measurements of ``tensor``.

    ``base`` gives what the tune does not choose: the QP, the source layout and the verify
    flag (default EncoderConfig()).  A lossless base is refused: the tunes trade fidelity
    for rate."""
    base = base or EncoderConfig()
    if tune not in TUNES:
        raise EncoderInputError(f"tune shall be one of {', '.join(TUNES)}, got {tune!r}")
    if base.lossless:
        raise EncoderInputError(f"layer {name!r}: tune {tune!r} with lossless coding; the "
                                f"tunes are for lossy coding")
    keep = dict(qp=base.qp, layout=base.layout, verify=base.verify)
    if tune == "seed":
        return Choice(tune, EncoderConfig(**keep), reasons=("the seed configuration",))
    arr, _ = _as_numpy(tensor, name)
    if arr.ndim != 4 or arr.size == 0:
        raise EncoderInputError(f"layer {name!r}: a tensor shall have 4 dimensions and "
                                f"elements, got shape {tuple(arr.shape)}")
    x = arr if base.layout == "NCHW" else arr.transpose(0, 3, 1, 2)
    if not np.isfinite(x).all():
        raise EncoderInputError(f"layer {name!r}: the tensor holds NaN or infinite values")
    stats = measure(x)
    v = x.astype(np.float32, copy=False).ravel()
    n, c, h, w = x.shape
    reasons = []
    # A.7.2: the quantizer and the bit depth
    small = h * w <= SMALL_MAP_ELEMENTS
    if stats.signed:
        quantizer, bit_depth = "uniform", 10 if small else 8
        reasons.append(f"signed ({stats.negative_fraction:.1%} negative): uniform, "
                       f"{bit_depth}-bit")
    elif h * w > LOG_MAX_ELEMENTS:
        quantizer, bit_depth = LARGE_NONNEGATIVE_QUANTIZER, LARGE_NONNEGATIVE_BIT_DEPTH
        why = ""
        if quantizer == "sqrt":
            if not sqrt_pays_at(base.qp, SQRT_CHOICE_BIT_DEPTH):
                quantizer = "uniform"
                why = f" (QP {base.qp}: libx265's step is below the square root's first step)"
            else:
                below = below_sqrt_first_level(v, stats.minimum, stats.maximum,
                                               SQRT_CHOICE_BIT_DEPTH)
                if below >= SQRT_MAX_BELOW_FIRST:
                    quantizer = "uniform"
                why = f" ({below:.0%} of the values below the first square-root level)"
        reasons.append(f"non-negative, maps of {h}x{w}{why}: {quantizer}, {bit_depth}-bit")
    else:
        quantizer, bit_depth = "log", 8
        reasons.append(f"non-negative, maps of {h}x{w}: log, 8-bit")
    if not stats.maximum > stats.minimum:
        quantizer = "uniform"           # a constant tensor: the log quantizer refuses it
        reasons.append("constant: uniform")
    # A.7.3: clipping of heavy tails (uniform quantizer only)
    clip = None
    if quantizer == "uniform" and small and stats.maximum > stats.minimum:
        clip = _clip_range(v, stats, base.qp, bit_depth, reasons)
    # A.7.4: flattening of near-constant maps
    lo, hi = clip if clip is not None else (stats.minimum, stats.maximum)
    clipped = x if clip is None else np.clip(x, lo, hi)     # the values as they are coded
    threshold = FLAT_FRACTION * stats.std
    if FLAT_NOISE_CAP:
        threshold = min(threshold, coding_noise(hi - lo, base.qp, bit_depth))
    map_std = stats.map_std if clip is None else clipped.std(axis=(2, 3), dtype=np.float64)
    flat_maps = () if h * w > FLAT_MAX_ELEMENTS else tuple(
        int(i) for i in np.flatnonzero((map_std < threshold) & (map_std > 0)))
    if flat_maps:
        reasons.append(f"{len(flat_maps)} of {n * c} maps with a standard deviation below "
                       f"{threshold:.3g} flattened to their mean")
    # A.7.1: packing, one mosaic per batch item; dense (format 1.2) when maps need padding
    th, tw = h + -h % 8, w + -w % 8
    block_fill = h * w / 64 if max(h, w) < 8 else 0.0
    dense = DENSE and (th, tw) != (h, w) and block_fill < DENSE_MAX_FILL \
        and mosaic_grid(c, th, tw) != (1, 1)
    rows, cols = mosaic_grid(c, h, w, dense=True) if dense else mosaic_grid(c, th, tw)
    packing_name = "dense" if dense else "tiled" if rows * cols > 1 else "channel"
    reasons.append(f"{packing_name} mosaic {rows}x{cols} of "
                   f"{(w, h) if dense else (tw, th)} tiles")
    # A.7.5: in a mosaic, the maps ordered by their mean when the compact code is cheap,
    # else by groups of their mean when the grouped code is
    order, coding = mean_order(clipped, rows * cols, n * h * w)
    if order is not None:
        reasons.append(f"maps ordered by their mean (compact permutation, {perm_bits(c)} "
                       f"bits per channel)" if coding == "compact" else
                       f"maps ordered by {1 << ORDER_GROUP_BITS} groups of their mean "
                       f"(grouped permutation, {ORDER_GROUP_BITS} bits per channel)")
    preset, x265 = X265[tune]
    if tune == "efficient":
        side = max(th, tw)
        extra = RDOQ_PARAMS if side <= RDOQ_MAX_TILE else \
            LARGE_TILE_PARAMS if side > LARGE_TILE_MIN else ""
        if extra:
            x265 = ":".join((x265, extra))
            reasons.append(f"tiles of {tw}x{th}: {extra}")
    if quantizer == "sqrt" and TSKIP_PARAMS:
        x265 = ":".join((x265, TSKIP_PARAMS))
        reasons.append(f"square-root quantizer: {TSKIP_PARAMS}")
    cfg = EncoderConfig(quantizer=quantizer, bit_depth=bit_depth, packing=packing_name,
                        tile_grid=(rows, cols) if rows * cols > 1 else None,
                        channel_order=order,
                        permutation_coding=coding,
                        preset=preset, x265_params=x265, **keep)
    return Choice(tune, cfg, clip, flat_maps, tuple(reasons))


# ------------------------------------------------------------------------------------
# Coding with a tune and a rate target
# ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LayerReport:
    """How one layer was coded: its choice, the QP, and the encodes rate control spent."""
    layer_id: str
    choice: Choice
    qp: int
    coded_bytes: int          # its layer_header and layer_data units
    encodes: int = 1


def layer_unit_bytes(header, md5: bytes, payload: bytes) -> int:
    """Bytes of a layer's two units in a stream (clause 8.2)."""
    return (len(bitstream.build_unit(UnitType.LAYER_HEADER,
                                     bitstream.build_layer_header(header)))
            + len(bitstream.build_unit(UnitType.LAYER_DATA,
                                       bitstream.build_layer_data(md5, payload))))


def _bisect_qp(size_at: Callable[[int], int], target: int, what: str):
    """The smallest QP in 0..51 whose size is at most ``target`` (sizes taken as
    non-increasing in the QP; a result always meets the target): (qp, encodes).  QP 51 is
    tried first and EncoderInputError raised when even it exceeds the target; then a
    bisection of 0..50: at most 1 + 6 encodes."""
    smallest = size_at(51)
    if smallest > target:
        raise EncoderInputError(f"{what}: the target of {target} bytes cannot be met: "
                                f"{smallest} bytes at QP 51, the highest")
    lo, hi, encodes = -1, 51, 1          # size(lo) > target (or lo = -1), size(hi) <= target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        encodes += 1
        if size_at(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi, encodes


def _target(value, elements: int, what: str) -> int:
    """The byte budget of a target_bytes (an integer >= 1) or bits_per_element (a positive
    number: floor(B x elements / 8) bytes) value."""
    if what.startswith("target_bytes"):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise EncoderInputError(f"{what} shall be a whole number of bytes >= 1, got "
                                    f"{value!r}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise EncoderInputError(f"{what} shall be a positive number, got {value!r}")
    return int(value * elements // 8)


def encode_layers(items, config, backend, *, tune: str | None = None,
                  target_bytes=None, bits_per_element=None,
                  stream_bytes: Callable[[list], int] | None = None):
    """Code (layer id, tensor) pairs: with ``tune`` (TUNES; None keeps each layer's config)
    and an optional rate target, met by choosing the slice QP of every layer.

    ``target_bytes`` / ``bits_per_element``: a number is a target for the whole stream
    (``stream_bytes(coded)`` gives its size; every layer gets one QP), a mapping from layer
    id to number a target for each named layer's own units (layer_header + layer_data).
    The config's QP is used when there is no target.  Returns (coded, reports)."""
    if target_bytes is not None and bits_per_element is not None:
        raise EncoderInputError("give target_bytes or bits_per_element, not both")
    target = target_bytes if target_bytes is not None else bits_per_element
    what = "target_bytes" if target_bytes is not None else "bits_per_element"

    def cfg_of(name):
        cfg = config.get(name, EncoderConfig()) if isinstance(config, Mapping) \
            else (config or EncoderConfig())
        if target is not None and cfg.lossless:
            raise EncoderInputError(f"layer {name!r}: a rate target with lossless coding")
        return cfg

    prepared = []
    for name, tensor in items:
        cfg = cfg_of(name)
        choice = choose(name, tensor, tune, cfg) if tune is not None else Choice("", cfg)
        arr, _ = _as_numpy(tensor, name)
        if choice.clip is not None or choice.flattened:
            x = arr if cfg.layout == "NCHW" else arr.transpose(0, 3, 1, 2)
            x = choice.apply(x)
            tensor = x if cfg.layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        prepared.append((name, tensor, choice, int(arr.size)))

    def code(entry, qp):
        name, tensor, choice, _ = entry
        if choice.tune and choice.tune != "seed" and qp != choice.config.qp:
            # the clipping and flattening depend on the QP: choose again
            again = choose(name, items_by_name[name], choice.tune,
                           dataclasses.replace(cfg_of(name), qp=qp))
            arr, _ = _as_numpy(items_by_name[name], name)
            layout = again.config.layout
            x = arr if layout == "NCHW" else arr.transpose(0, 3, 1, 2)
            x = again.apply(x)
            tensor = x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            choice = again
        cfg = dataclasses.replace(choice.config, qp=qp)
        return encode_layer(name, tensor, cfg, backend), choice

    items_by_name = dict(items)
    if target is None:
        coded, reports = [], []
        for entry in prepared:
            result, choice = code(entry, entry[2].config.qp)
            coded.append(result)
            reports.append(LayerReport(entry[0], choice, choice.config.qp,
                                       layer_unit_bytes(*result)))
        return coded, reports

    if isinstance(target, Mapping):
        unknown = sorted(set(target) - set(items_by_name))
        if unknown:
            raise EncoderInputError(f"{what}: no layer {unknown[0]!r} to encode")
        coded, reports = [], []
        for entry in prepared:
            name = entry[0]
            if name not in target:
                result, choice = code(entry, entry[2].config.qp)
                coded.append(result)
                reports.append(LayerReport(name, choice, choice.config.qp,
                                           layer_unit_bytes(*result)))
                continue
            budget = _target(target[name], entry[3], f"{what}[{name!r}]")
            trials = {}

            def size_at(qp, entry=entry, trials=trials):
                trials[qp] = code(entry, qp)
                return layer_unit_bytes(*trials[qp][0])

            qp, encodes = _bisect_qp(size_at, budget, f"layer {name!r}")
            result, choice = trials[qp]
            coded.append(result)
            reports.append(LayerReport(name, choice, qp, layer_unit_bytes(*result), encodes))
        return coded, reports

    if stream_bytes is None:
        raise EncoderInputError(f"{what} for the whole stream needs its size function")
    budget = _target(target, sum(e[3] for e in prepared), what)
    trials = {}

    def stream_size_at(qp):
        trials[qp] = [code(entry, qp) for entry in prepared]
        return stream_bytes([result for result, _ in trials[qp]])

    qp, encodes = _bisect_qp(stream_size_at, budget, "the stream")
    coded = [result for result, _ in trials[qp]]
    reports = [LayerReport(entry[0], choice, qp, layer_unit_bytes(*result), encodes)
               for entry, (result, choice) in zip(prepared, trials[qp])]
    return coded, reports
