"""A layer's tensor reconstructed a batch of pictures at a time (clauses 9.2 to 9.5).

``reconstruct(header, pictures)`` (refcodec.layer) needs every decoded picture of a layer at
once, and with them the output tensor: the pictures and the tensor together, 1.5 to 2 times
the output for 8-bit samples and 2-byte dtypes, more with the HEVC payload beside them.
``Progressive`` takes the pictures as the decoder delivers them (in output order), hashes
each for sample_md5 and writes its tiles, dequantized, into the output tensor: what is held
is the output, one batch of pictures and a block of indices.  The values are those of
``reconstruct`` (the same tables, element by element), and the tensor is handed out only
after sample_md5 has matched (``finish``).

Numpy and hashlib only: it is fed by the HEVC backend's ``iter_pictures``.
"""

from __future__ import annotations

import numpy as np

from . import packing, quant, threads
from .enums import SourceLayout
from .hevc.annexb import hash_layout
from .records import LayerHeader

#: Samples dequantized per np.take call (the index block is intp: 8 bytes a sample).
BLOCK = quant.TAKE_BLOCK


#: The pictures of a batch: enough slots for NHWC writes of MIN_RUN channels at a time ...
MIN_RUN = 64
#: ... within 1/BATCH_SHARE of the output's bytes, or MIN_BATCH_BYTES of samples when
#: that is more (at least one picture): a batch costs a hand-over to the MD5 thread and a
#: dequantization call, about 0.1 ms, which small pictures must share (320 pictures of
#: 16x16 decoded 8 at a time took 1.5 times bare FFmpeg's time).
BATCH_SHARE = 32
MIN_BATCH_BYTES = 1 << 18


def batch_pictures(header: LayerHeader) -> int:
    """How many pictures a batch should hold: as many as fit in the larger of
    1/BATCH_SHARE of the output and MIN_BATCH_BYTES; for NHWC, where a batch item's
    channels are interleaved, no more than make each write cover up to MIN_RUN channels."""
    picture = header.picture_height * header.picture_width * (
        1 if header.sample_bit_depth == 8 else 2)
    limit = max(header.output_bytes // BATCH_SHARE, MIN_BATCH_BYTES) // max(1, picture)
    if header.source_layout == SourceLayout.NHWC and header.num_channels > 1:
        limit = min(limit, -(-min(MIN_RUN, header.num_channels) // header.tiles_per_picture))
    return max(1, min(limit, header.num_pictures))


class Progressive:
    """Fed batches of decoded pictures in output order (``add``), ``finish`` checks the
    count and returns (the picture MD5s, the tensor in its source dtype and layout)."""

    def __init__(self, header: LayerHeader, out_dtype: np.dtype):
        self.header = header
        self.layout = packing.Layout.of(header)
        lay = self.layout
        n, c, h, w = lay.batch_size, lay.num_channels, lay.height, lay.width
        self.nhwc = header.source_layout == SourceLayout.NHWC
        self.out = np.empty((n, h, w, c) if self.nhwc else (n, c, h, w), dtype=out_dtype)
        self.depth = header.sample_bit_depth
        params = list(header.quant_params)
        if len(params) not in (1, c):
            raise ValueError(f"{len(params)} parameter sets for {c} channels")
        qtype = int(header.quantizer_type)
        # one table per parameter set, end to end: channel k reads entries k * 2^depth + q
        self.tables = np.concatenate([quant.output_table(qtype, p, self.depth, out_dtype)
                                      for p in params])
        self.per_channel = len(params) > 1
        perm = lay.permutation
        # slot k of a batch item carries source channel order[k] (clause 9.3.1)
        self.order = None if perm is None else np.asarray(perm, dtype=np.intp)
        self.slots = n * c
        self.next_slot = 0
        self.pictures = 0
        self.md5s: list[bytes] = []
        plane = h * w
        # NCHW: at least one whole map per np.take; NHWC: blocks of rows (at least one row
        # of MIN_RUN maps)
        least = plane if not self.nhwc else min(MIN_RUN, c) * w
        self.index = np.empty(max(least, min(BLOCK, self.slots * plane)), dtype=np.intp)
        self.values = np.empty(len(self.index), dtype=out_dtype)

    # -- input ----------------------------------------------------------------------------
    def add(self, planes: np.ndarray) -> None:
        """Take the next ``len(planes)`` pictures: hash them (on the helper thread when they
        are large, refcodec.threads) while their tiles are dequantized into the tensor."""
        if np.iinfo(planes.dtype).max >> self.depth and planes.size \
                and int(planes.max()) >> self.depth:
            raise ValueError(f"samples shall be below 2**{self.depth}")
        digests, _ = threads.md5_beside(list(hash_layout(planes, self.depth)),
                                        lambda: self._write(planes))
        self.md5s.extend(digests)
        self.pictures += len(planes)

    def _write(self, planes: np.ndarray) -> None:
        lay = self.layout
        th, tw = lay.tile_height, lay.tile_width
        rows, cols = lay.tile_rows, lay.tile_cols
        k = len(planes)
        # the tiles of the batch, in slot order (a view: no copy)
        tiles = planes[:, :rows * th, :cols * tw].reshape(k, rows, th, cols, tw) \
            .transpose(0, 1, 3, 2, 4).reshape(k * rows * cols, th, tw)[:, :lay.height,
                                                                       :lay.width]
        first = self.next_slot
        count = max(0, min(len(tiles), self.slots - first))
        self.next_slot += len(tiles)
        c = lay.num_channels
        done = 0
        while done < count:      # runs of slots of one batch item
            slot = first + done
            item, k0 = divmod(slot, c)
            run = min(count - done, c - k0)
            self._write_run(tiles[done:done + run], item, k0)
            done += run

    def _write_run(self, tiles: np.ndarray, item: int, k0: int) -> None:
        """Dequantize the tiles of slots k0 .. k0 + len(tiles) - 1 of batch item ``item``:
        whole maps for NCHW; for NHWC, blocks of rows of all the run's maps, so that each
        write into the channel-last output covers the run's channels."""
        h, w = self.layout.height, self.layout.width
        size = 1 << self.depth
        block = len(self.index)
        maps = max(1, block // (h * w)) if not self.nhwc else max(1, min(len(tiles), MIN_RUN))
        for start in range(0, len(tiles), maps):
            part = tiles[start:start + maps]
            m = len(part)
            ks = np.arange(k0 + start, k0 + start + m, dtype=np.intp)
            channels = ks if self.order is None else self.order[ks]
            offsets = (channels * size).reshape(m, 1, 1) if self.per_channel else None
            rows = h if not self.nhwc else max(1, min(h, block // (m * w)))
            if not self.nhwc and self.order is None and offsets is None:
                # the maps land on consecutive channels: dequantized straight into them
                np.take(self.tables, part, out=self.out[item, ks[0]:ks[0] + m], mode="wrap")
                continue
            for r in range(0, h, rows):
                src = part[:, r:r + rows]                  # m x rows x W
                count = src.size
                idx = self.index[:count].reshape(src.shape)
                if offsets is None:
                    idx[...] = src
                else:
                    np.add(src, offsets, out=idx)
                vals = self.values[:count].reshape(src.shape)
                np.take(self.tables, idx, out=vals, mode="wrap")
                if self.nhwc:
                    dest = self.out[item, r:r + src.shape[1]]     # rows x W x C
                    if self.order is None:
                        dest[:, :, ks[0]:ks[0] + m] = vals.transpose(1, 2, 0)
                    else:
                        dest[:, :, channels] = vals.transpose(1, 2, 0)
                elif self.order is None:
                    self.out[item, ks[0]:ks[0] + m] = vals
                else:
                    self.out[item, channels] = vals

    # -- output ---------------------------------------------------------------------------
    def finish(self) -> tuple[list[bytes], np.ndarray]:
        if self.pictures != self.layout.num_pictures:
            raise ValueError(f"{self.pictures} pictures for a layout of "
                             f"{self.layout.num_pictures}")
        return self.md5s, self.out
