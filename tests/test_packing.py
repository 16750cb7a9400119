"""Packing: exact positions of a small case, and bijectivity of pack/unpack."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refcodec.packing import Layout, min_tile_grid, near_square_grid, pack, unpack


def test_tiled_positions_and_padding():
    # N=1, C=3, 2x2 maps padded to 3x3 (illustrative), grid 1x2 -> 2 pictures of 3x6
    q = np.arange(12, dtype=np.uint16).reshape(1, 3, 2, 2)
    lay = Layout(1, 3, 2, 2, tile_rows=1, tile_cols=2, pad_bottom=1, pad_right=1,
                 permutation=(2, 0, 1))
    pics = pack(q, lay)
    assert pics.shape == (2, 3, 6)
    # slot 0 = channel 2, slot 1 = channel 0, slot 2 = channel 1, slot 3 = zero fill
    assert pics[0, :, :3].tolist() == [[8, 9, 9], [10, 11, 11], [10, 11, 11]]
    assert pics[0, :, 3:].tolist() == [[0, 1, 1], [2, 3, 3], [2, 3, 3]]
    assert pics[1, :, :3].tolist() == [[4, 5, 5], [6, 7, 7], [6, 7, 7]]
    assert not pics[1, :, 3:].any()
    assert np.array_equal(unpack(pics, lay), q)


def test_zero_padding():
    q = np.full((1, 1, 1, 1), 7, dtype=np.uint16)
    pics = pack(q, Layout(1, 1, 1, 1, pad_bottom=7, pad_right=7, replicate=False))
    assert pics.sum() == 7 and pics[0, 0, 0] == 7


def test_grids():
    assert min_tile_grid(8, 8) == (2, 2)
    assert min_tile_grid(16, 8) == (1, 2)
    assert min_tile_grid(24, 32) == (1, 1)
    rows, cols = near_square_grid(512, 8, 8)
    assert rows * cols >= 512 and abs(rows - cols) <= 1 + cols // 4


@given(st.data())
@settings(max_examples=300)
def test_pack_unpack_bijective(data):
    n, c = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 7))
    h, w = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    rows, cols = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    perm = tuple(data.draw(st.permutations(range(c)))) if data.draw(st.booleans()) else None
    lay = Layout(n, c, h, w, rows, cols, -h % 8 + 8 * data.draw(st.integers(0, 1)), -w % 8,
                 data.draw(st.booleans()), perm)
    q = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
        0, 4096, (n, c, h, w)).astype(np.uint16)
    pics = pack(q, lay)
    assert pics.shape == (lay.num_pictures, *lay.picture_shape)
    assert np.array_equal(unpack(pics, lay), q)
    # every sample of q appears in the pictures exactly where the slot rule says
    for s in range(n * c):
        b, k = divmod(s, c)
        ch = perm[k] if perm else k
        p, t = divmod(s, rows * cols)
        r, col = divmod(t, cols)
        tile = pics[p, r * lay.tile_height:(r + 1) * lay.tile_height,
                    col * lay.tile_width:(col + 1) * lay.tile_width]
        assert np.array_equal(tile[:h, :w], q[b, ch])
