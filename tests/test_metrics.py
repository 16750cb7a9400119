"""refcodec.metrics (spec Annex C): hand-checkable values, properties, error cases.

The tests named ``test_worked_example_*`` compute the numbers printed in the worked
examples of spec/annex-c-metrics.md.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from refcodec import cli, metrics, syntax
from refcodec.bitstream import build_layer_data, build_layer_header, build_stream, build_unit
from refcodec.enums import (PackingType, PadMode, QuantizerType, SourceDtype, SourceLayout,
                            UnitType)
from refcodec.metrics import (bd_rate, box_iou, bubble_index, bubble_swaps,
                              classification_fidelity, count_inversions, detection_fidelity,
                              image_detection_fidelity, match_detections, rank_references,
                              retrieval_fidelity)
from refcodec.records import LayerHeader, QuantParams, StreamHeader

# ----------------------------------------------------------------------------------------
# C.1 Compression rate
# ----------------------------------------------------------------------------------------


def layer_header(layer_id="conv5", dtype=SourceDtype.FLOAT32, shape=(1, 512, 14, 14)):
    n, c, h, w = shape
    return LayerHeader(layer_id=layer_id, source_layout=SourceLayout.NCHW, source_dtype=dtype,
                       batch_size=n, num_channels=c, height=h, width=w, sample_bit_depth=8,
                       quantizer_type=QuantizerType.LOG, per_channel_quant_flag=False,
                       quant_params=(QuantParams(min_value=0.0, max_value=7.5),),
                       channel_permutation=None, packing_type=PackingType.CHANNEL_PER_PICTURE,
                       tile_rows=1, tile_cols=1, pad_mode=PadMode.REPLICATE,
                       pad_bottom=(-h) % 8, pad_right=(-w) % 8)


MD5 = bytes(16)


def fake_stream(*layers):
    """A VFC stream whose HEVC payloads are placeholder bytes (headers only are read)."""
    return build_stream(StreamHeader(1, 0, 1, 10, len(layers)),
                        [(h, MD5, payload) for h, payload in layers])


def unit_sizes(h, payload):
    return (len(build_unit(UnitType.LAYER_HEADER, build_layer_header(h)))
            + len(build_unit(UnitType.LAYER_DATA, build_layer_data(MD5, payload))))


def test_worked_example_compression_rate():
    # VGG16 conv5 of one image: 512 x 14 x 14 float32 elements coded in 12544 bytes
    n = 512 * 14 * 14
    assert n == 100352
    orig = metrics.original_bytes(n, "float32")
    assert orig == 401408
    assert metrics.compression_rate(orig, 12544) == 32.0
    assert metrics.coded_fraction(orig, 12544) == 0.03125
    assert metrics.bits_per_element(12544, n) == 1.0


def test_dtype_sizes():
    assert metrics.dtype_size("float32") == metrics.dtype_size(SourceDtype.FLOAT32) == 4
    assert metrics.dtype_size("float16") == metrics.dtype_size(np.float16) == 2
    assert metrics.dtype_size("bfloat16") == metrics.dtype_size(SourceDtype.BFLOAT16) == 2
    assert metrics.original_bytes(10) == 40                     # PAPER_DTYPE float32
    with pytest.raises(ValueError, match="unknown dtype"):
        metrics.dtype_size("float99")


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.compression_rate(100, 0), "coded_bytes shall be positive"),
    (lambda: metrics.compression_rate(-1, 10), "original_bytes shall be non-negative"),
    (lambda: metrics.compression_rate(100.0, 10), "original_bytes shall be an integer"),
    (lambda: metrics.compression_rate(True, 10), "original_bytes shall be an integer"),
    (lambda: metrics.coded_fraction(0, 10), "original_bytes shall be positive"),
    (lambda: metrics.bits_per_element(10, 0), "num_elements shall be positive"),
    (lambda: metrics.original_bytes(-3), "num_elements shall be non-negative"),
])
def test_rate_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_stream_rates_match_units_and_cli():
    h1, p1 = layer_header(), b"\x00\x00\x00\x01" + bytes(12540)
    h2 = layer_header("pool5", SourceDtype.FLOAT16, (1, 512, 7, 7))
    p2 = b"\x00\x00\x01" + bytes(997)
    data = fake_stream((h1, p1), (h2, p2))
    rates = metrics.stream_rates(data)
    assert [r.layer_id for r in rates.layers] == ["conv5", "pool5"]
    assert rates.layer("conv5").coded_bytes == unit_sizes(h1, p1)
    assert rates.layer("pool5").coded_bytes == unit_sizes(h2, p2)
    assert rates.layer("conv5").original_bytes == 100352 * 4
    assert rates.layer("pool5").original_bytes == 25088 * 2          # float16 source
    # the whole stream: stream header + layers + end_of_stream unit
    eos = len(build_unit(UnitType.END_OF_STREAM, b""))
    assert (syntax.STREAM_HEADER_SIZE, eos) == (20, 10)       # the 30 bytes of Annex C.1
    assert rates.total.coded_bytes == len(data) == (syntax.STREAM_HEADER_SIZE + eos
                                                    + sum(r.coded_bytes for r in rates.layers))
    assert rates.total.original_bytes == 100352 * 4 + 25088 * 2
    assert rates.total.num_elements == 100352 + 25088
    # same definitions as `refcodec info --json`
    info = cli.stream_info(data)
    for entry, report in zip(info["layers"], rates.layers):
        assert entry["layer_bytes"] == report.coded_bytes
        assert entry["original_bytes"] == report.original_bytes
        assert entry["compression_rate"] == report.compression_rate
        assert entry["bits_per_element"] == report.bits_per_element
    assert info["compression_rate"] == rates.total.compression_rate
    # the paper's convention: every element counted as float32
    paper = metrics.stream_rates(data, original_dtype="float32")
    assert paper.layer("pool5").original_bytes == 25088 * 4
    assert paper.layer("pool5").coded_fraction == unit_sizes(h2, p2) / (25088 * 4)
    # a parsed Stream works as well as bytes
    assert metrics.stream_rates(metrics.rate.read_headers(data)) == rates
    with pytest.raises(KeyError):
        rates.layer("conv9")


def test_skippable_unit_between_layer_units_is_not_layer_bytes():
    h, payload = layer_header(), bytes(300)
    data = fake_stream((h, payload))
    stream = metrics.rate.read_headers(data)
    at = stream.layers[0].data_offset
    extra = build_unit(9, b"future", True)
    spliced = data[:at] + extra + data[at:]
    rates = metrics.stream_rates(spliced)
    assert rates.layers[0].coded_bytes == unit_sizes(h, payload)
    assert rates.total.coded_bytes == len(data) + len(extra)


# ----------------------------------------------------------------------------------------
# C.2 Classification fidelity
# ----------------------------------------------------------------------------------------

CLS_PRISTINE = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
CLS_RECON = np.array([[1.5, 1.0, 0.0], [0.0, 1.0, 3.0], [0.5, 1.0, 0.0], [0.0, 0.0, 4.0]])


def literal_eq2(p_labels, r_labels, num_classes):
    """Eq. 2 of [CHEN2019] read literally: Hamming distance of one-hot vectors / length."""
    eye = np.eye(num_classes, dtype=int)
    hamming = (eye[p_labels] != eye[r_labels]).sum(axis=1)
    return 1 - (hamming / num_classes).sum() / (2 * len(p_labels))


def test_worked_example_classification():
    assert metrics.top1_labels(CLS_PRISTINE).tolist() == [0, 1, 0, 2]   # row 3: tie -> 0
    assert metrics.top1_labels(CLS_RECON).tolist() == [0, 2, 1, 2]
    assert classification_fidelity(CLS_PRISTINE, CLS_RECON) == 0.5
    assert metrics.top_k_classes(CLS_PRISTINE, 2).tolist() == [[0, 1], [1, 2], [0, 1], [2, 0]]
    assert metrics.top_k_classes(CLS_RECON, 2).tolist() == [[0, 1], [2, 1], [1, 0], [2, 0]]
    assert classification_fidelity(CLS_PRISTINE, CLS_RECON, k=2) == 1.0
    assert classification_fidelity([0, 1, 0, 2], [0, 2, 1, 2]) == 0.5     # label vectors
    # the literal Eq. 2 gives 1 - (2/3 + 2/3) / 8 = 5/6 for the same outputs
    assert literal_eq2(np.array([0, 1, 0, 2]), np.array([0, 2, 1, 2]), 3) == pytest.approx(5 / 6)


def test_literal_eq2_cannot_reach_table3_values():
    # every one of 1000 samples changes class: the literal Eq. 2 still gives 0.999
    p = np.arange(1000)
    r = (p + 1) % 1000
    assert literal_eq2(p, r, 1000) == pytest.approx(0.999)
    assert classification_fidelity(p, r) == 0.0


def test_classification_identical_and_ties():
    rng = np.random.default_rng(5)
    s = rng.standard_normal((50, 10)).astype(np.float32)
    assert classification_fidelity(s, s.copy()) == 1.0
    assert classification_fidelity(s, s.copy(), k=10) == 1.0
    assert classification_fidelity([[1, 1, 0]], [[0.5, 1, 0]]) == 0.0   # tie -> class 0
    assert classification_fidelity([[1, 1, 0]], [[1, 0.5, 0]]) == 1.0
    masked = np.array([[-np.inf, 0.0, -np.inf]])
    assert classification_fidelity(masked, masked) == 1.0


@settings(max_examples=60)
@given(st.integers(1, 12), st.integers(1, 8), st.integers(0, 2**32 - 1), st.data())
def test_classification_properties(n, k_classes, seed, data):
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 3, (n, k_classes)).astype(np.float64)     # small ints: many ties
    r = rng.integers(0, 3, (n, k_classes)).astype(np.float64)
    k = data.draw(st.integers(1, k_classes))
    f = classification_fidelity(p, r, k=k)
    assert 0.0 <= f <= 1.0
    assert f == classification_fidelity(r, p, k=k)
    assert classification_fidelity(p, r, k=k_classes) == 1.0
    assert classification_fidelity(p, r) == classification_fidelity(
        metrics.top1_labels(p), metrics.top1_labels(r)) == np.mean(p.argmax(1) == r.argmax(1))


@pytest.mark.parametrize("p, r, kw, message", [
    (np.zeros((3, 4)), np.zeros((3, 5)), {}, "same shape"),
    (np.zeros((3, 4)), np.zeros((2, 4)), {}, "same shape"),
    (np.zeros((0, 4)), np.zeros((0, 4)), {}, "at least one sample"),
    (np.zeros((3, 4)), np.zeros((3, 4)), {"k": 5}, "k shall be in 1..4"),
    (np.zeros((3, 4)), np.zeros((3, 4)), {"k": 0}, "k shall be in 1..4"),
    (np.zeros((3, 4)), np.zeros((3, 4)), {"k": 1.5}, "k shall be an integer"),
    (np.array([1, 2]), np.array([1, 2]), {"k": 2}, "needs scores"),
    (np.array([1.0, 2.0]), np.array([1, 2]), {}, "labels shall be integers"),
    (np.full((2, 2), np.nan), np.zeros((2, 2)), {}, "NaN"),
    (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), {}, "N x K scores or N labels"),
])
def test_classification_errors(p, r, kw, message):
    with pytest.raises(ValueError, match=message):
        classification_fidelity(p, r, **kw)


# ----------------------------------------------------------------------------------------
# C.3 Retrieval fidelity (bubble index)
# ----------------------------------------------------------------------------------------

def algorithm1(s_p, s_r):
    """Algorithm 1 of [CHEN2019], naive O(n^2): (cnt_swap, cnt_total)."""
    ordered_list = [list(s_p).index(element) for element in s_r]
    cnt_swap = cnt_total = 0
    for i in range(len(ordered_list) - 1):
        for j in range(len(ordered_list) - i - 1):
            cnt_total += 1
            if ordered_list[j] > ordered_list[j + 1]:
                cnt_swap += 1
                ordered_list[j], ordered_list[j + 1] = ordered_list[j + 1], ordered_list[j]
    return cnt_swap, cnt_total


def naive_swaps(seq):
    """Swaps of a plain bubble sort of any sequence (strict comparison)."""
    a, swaps = list(seq), 0
    for i in range(len(a) - 1):
        for j in range(len(a) - i - 1):
            if a[j] > a[j + 1]:
                a[j], a[j + 1] = a[j + 1], a[j]
                swaps += 1
    return swaps


@settings(max_examples=100)
@given(st.integers(0, 200).flatmap(lambda n: st.permutations(list(range(n)))),
       st.randoms(use_true_random=False))
@example([], random.Random(0))
@example([0], random.Random(0))
@example([0, 1], random.Random(0))
@example([1, 0], random.Random(0))
@example(list(range(200))[::-1], random.Random(0))
def test_fast_bubble_index_equals_algorithm1(recon, rnd):
    pristine = list(range(len(recon)))
    rnd.shuffle(pristine)                  # item names: any permutation of 0..n-1
    items = [10 * x + 3 for x in pristine]
    recon_items = [10 * x + 3 for x in recon]
    swaps, total = algorithm1(items, recon_items)
    n = len(recon)
    assert total == n * (n - 1) // 2
    assert bubble_swaps(items, recon_items) == (swaps, n)
    assert bubble_index(items, recon_items) == (1.0 if n < 2 else 1 - swaps / total)


@settings(max_examples=150)
@given(st.lists(st.integers(-5, 5), max_size=120))
def test_count_inversions_equals_bubble_sort_swaps(seq):
    assert count_inversions(seq) == naive_swaps(seq)


@settings(max_examples=40)
@given(st.integers(2, 60), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_batched_inversions_equal_per_row(n, q, seed):
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(q)])
    assert metrics.inversion_counts(perms).tolist() == [naive_swaps(p) for p in perms]
    other = np.stack([rng.permutation(perms[i]) for i in range(q)])
    expected = [bubble_index(a, b) for a, b in zip(perms, other)]
    assert metrics.bubble_indices(perms, other).tolist() == expected          # items 0..n-1
    assert metrics.bubble_indices(perms * 7 + 2, other * 7 + 2).tolist() == expected


def test_bubble_index_hand_cases():
    assert bubble_index([10, 11, 12, 13, 14], [11, 10, 12, 13, 14]) == 0.9   # 1 - 1/10
    assert bubble_index([10, 11, 12, 13, 14], [10, 11, 12, 13, 14]) == 1.0
    assert bubble_index(list(range(5)), list(range(5))[::-1]) == 0.0
    n = 200
    assert bubble_swaps(list(range(n)), list(range(n))[::-1]) == (n * (n - 1) // 2, n)
    assert bubble_index([], []) == 1.0
    assert bubble_index([4], [4]) == 1.0
    assert bubble_index([4, 5], [5, 4]) == 0.0
    assert bubble_index(["a", "b", "c"], ["b", "a", "c"]) == pytest.approx(2 / 3)


def test_worked_example_retrieval():
    # query 1: one adjacent swap among 5 items
    assert bubble_swaps([10, 11, 12, 13, 14], [11, 10, 12, 13, 14]) == (1, 5)
    # query 2: top-3 lists with different items
    p_full, r_full = metrics.completed_rankings([7, 3, 9], [3, 5, 7])
    assert p_full.tolist() == [7, 3, 9, 5] and r_full.tolist() == [3, 5, 7, 9]
    assert bubble_swaps([7, 3, 9], [3, 5, 7]) == (3, 4)
    assert bubble_index([7, 3, 9], [3, 5, 7]) == 0.5
    assert retrieval_fidelity([[10, 11, 12, 13, 14], [7, 3, 9]],
                              [[11, 10, 12, 13, 14], [3, 5, 7]]) == pytest.approx(0.7)


def test_top_k_rule_hand_cases():
    assert bubble_index([1, 2], [3, 4]) == pytest.approx(1 - 4 / 6)   # disjoint: not 1
    assert bubble_index([1], [2]) == 0.0
    assert bubble_index([1, 2, 3], [1, 2]) == 1.0     # a shorter list in the same order
    assert bubble_index([1, 2, 3], [1, 2, 4]) == pytest.approx(1 - 1 / 6)   # 3 and 4 cross
    # [1, 2, 3, 4] against [4, 2, 3, 1]: 4 before 1, 2, 3 and 1 after 2, 3: 5 swaps
    assert bubble_index([1, 2, 3], [4, 2, 3]) == pytest.approx(1 - 5 / 6)
    assert bubble_index([1], []) == 1.0               # fewer than 2 items: 1 by definition


@settings(max_examples=100)
@given(st.lists(st.integers(0, 15), unique=True, max_size=10),
       st.lists(st.integers(0, 15), unique=True, max_size=10))
def test_top_k_rule_properties(p, r):
    f = bubble_index(p, r)
    assert 0.0 <= f <= 1.0
    assert f == bubble_index(r, p)                    # symmetric
    # the completed rankings hold the same items; on them Algorithm 1 gives the swaps
    p_full, r_full = metrics.completed_rankings(p, r)
    assert sorted(p_full.tolist()) == sorted(r_full.tolist()) == sorted(set(p) | set(r))
    assert bubble_swaps(p, r)[0] == algorithm1(p_full.tolist(), r_full.tolist())[0]


@settings(max_examples=40)
@given(st.integers(2, 80), st.integers(0, 2**32 - 1))
def test_bubble_index_is_kendall_tau_rescaled(n, seed):
    from scipy.stats import kendalltau
    r = np.random.default_rng(seed).permutation(n)
    tau = kendalltau(np.arange(n), r).statistic
    assert bubble_index(np.arange(n), r) == pytest.approx((1 + tau) / 2, abs=1e-12)


def test_rank_references_hand_case():
    refs = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    q = np.array([[1.0, 0.0], [0.0, 0.0]])
    # cosine: 0, 1, 0.707, 1 -> refs 1 and 3 tie, lower index first
    assert rank_references(q, refs).tolist() == [[1, 3, 2, 0], [0, 1, 2, 3]]  # zero query
    # euclidean: sqrt 2, 1, 1, 0
    assert rank_references(q[:1], refs, metric="euclidean").tolist() == [[3, 1, 2, 0]]
    assert rank_references(q, refs, top_k=2).tolist() == [[1, 3], [0, 1]]


def test_retrieval_fidelity_from_embeddings():
    rng = np.random.default_rng(9)
    refs = rng.standard_normal((300, 16))
    queries = rng.standard_normal((20, 16))
    pristine = rank_references(queries, refs)
    assert retrieval_fidelity(pristine, rank_references(queries.copy(), refs)) == 1.0
    mild = retrieval_fidelity(pristine, rank_references(queries + 0.01 * rng.standard_normal(
        queries.shape), refs))
    strong = retrieval_fidelity(pristine, rank_references(queries + 1.0 * rng.standard_normal(
        queries.shape), refs))
    assert 1.0 > mild > strong > 0.4
    top = retrieval_fidelity(pristine[:, :10], rank_references(queries + 0.01 * rng.standard_normal(
        queries.shape), refs, top_k=10))
    assert 0.0 <= top <= 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: bubble_index([1, 1, 2], [1, 2]), "pristine ranking holds an item more than once"),
    (lambda: bubble_index([1, 2], [2, 2]), "reconstructed ranking holds an item more"),
    (lambda: bubble_index([1.5, 2], [2, 1.5]), "integers or strings"),
    (lambda: bubble_index([1, 2], ["1", "2"]), "of one kind"),
    (lambda: retrieval_fidelity([[1, 2]], [[1, 2], [2, 1]]), "1 and 2 queries"),
    (lambda: retrieval_fidelity([], []), "at least one query"),
    (lambda: metrics.inversion_counts([[0, 2]]), "permutation of 0..1"),
    (lambda: rank_references(np.zeros((2, 3)), np.zeros((4, 2))), "3 dimensions"),
    (lambda: rank_references(np.zeros(3), np.zeros((4, 3))), "Q x D"),
    (lambda: rank_references(np.zeros((1, 3)), np.zeros((4, 3)), metric="l1"), "metric"),
    (lambda: rank_references(np.zeros((1, 3)), np.zeros((4, 3)), top_k=0), "top_k"),
    (lambda: rank_references(np.full((1, 3), np.nan), np.zeros((4, 3))), "finite"),
])
def test_retrieval_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------------------
# C.4 Detection fidelity
# ----------------------------------------------------------------------------------------

def det(boxes, scores, labels):
    return (np.array(boxes, dtype=float).reshape(-1, 4), np.array(scores, dtype=float),
            np.array(labels, dtype=int))


DET_PRISTINE = det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.25], [1, 2])
DET_RECON = det([[0, 0, 10, 5], [20, 20, 30, 25], [40, 40, 50, 50]], [0.375, 0.3125, 0.9],
                [1, 2, 3])


def test_worked_example_detection():
    m = match_detections(DET_PRISTINE, DET_RECON)
    assert m.pristine.tolist() == [0, 1] and m.reconstructed.tolist() == [0, 1]
    assert m.iou.tolist() == [0.5, 0.5]
    assert m.confidence_term.tolist() == [0.75, 0.75]   # 1 - 0.125/0.5, 1 - 0.0625/0.25
    assert m.contribution.tolist() == [0.1875, 0.09375]
    assert m.fidelity == 0.375                           # 0.28125 / 0.75
    # literal Eq. 4 confidence term for the second pair: 1 - (0.25 - 0.3125)/0.25 = 1.25
    assert 1 - (0.25 - 0.3125) / 0.25 == 1.25
    empty = det([], [], [])
    images_p = [DET_PRISTINE, empty, empty]
    images_r = [DET_RECON, empty, det([[1, 1, 2, 2]], [0.1], [1])]
    assert [image_detection_fidelity(p, r) for p, r in zip(images_p, images_r)] == [0.375, 1, 0]
    assert detection_fidelity(images_p, images_r) == pytest.approx(1.375 / 3)


def test_box_iou_hand_cases():
    a = [[0, 0, 10, 10]]
    assert box_iou(a, a).item() == 1.0
    assert box_iou(a, [[0, 0, 10, 5]]).item() == 0.5
    assert box_iou(a, [[5, 0, 15, 10]]).item() == pytest.approx(1 / 3)
    assert box_iou(a, [[10, 0, 20, 10]]).item() == 0.0      # touching
    assert box_iou(a, [[20, 20, 30, 30]]).item() == 0.0
    line = [[2, 2, 2, 8]]                                     # zero width: area 0
    assert box_iou(line, line).item() == 1.0                  # the same box
    assert box_iou(line, [[2, 2, 2, 9]]).item() == 0.0
    assert box_iou(a, line).item() == 0.0
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_pairing_is_optimal_not_greedy():
    # A (0.9) overlaps X with IoU 0.6 and Y with IoU 0.5; B (0.8) is X exactly and overlaps
    # Y with IoU 2/7.  Greedy in pristine confidence order would give A-X and B-Y.
    p = det([[1, 0, 5, 1], [0, 0, 4, 1]], [0.9, 0.8], [0, 0])
    r = det([[0, 0, 4, 1], [2, 0, 7, 1]], [0.9, 0.8], [0, 0])
    iou = box_iou(p[0], r[0])
    np.testing.assert_allclose(iou, [[0.6, 0.5], [1.0, 2 / 7]], rtol=1e-15)
    m = match_detections(p, r)
    assert list(zip(m.pristine.tolist(), m.reconstructed.tolist())) == [(0, 1), (1, 0)]
    g = 1 - 0.1 / 0.9                                         # A with Y: 0.9 vs 0.8
    optimal = 0.5 * g * 0.9 + 1.0 * (1 - 0.1 / 0.8) * 0.8     # B with X: 0.8 vs 0.9
    greedy = 0.6 * 1 * 0.9 + (2 / 7) * 1 * 0.8                # A-X, B-Y: equal scores
    assert optimal > greedy
    assert m.fidelity == pytest.approx(optimal / 1.7)


def test_detection_rules():
    box = [[0, 0, 10, 10]]
    assert image_detection_fidelity(det(box, [0.5], [1]), det(box, [0.5], [2])) == 0.0  # class
    assert image_detection_fidelity(det(box, [0.5], [1]), det([], [], [])) == 0.0
    assert image_detection_fidelity(det(box, [0.5], [1]), det(box, [1.5], [1])) == 0.0  # g = 0
    # threshold: kept when score > threshold, for both outputs
    assert image_detection_fidelity(det(box, [0.05], [1]), det([], [], []),
                                    score_threshold=0.05) == 1.0
    assert image_detection_fidelity(det([], [], []), det(box, [0.05], [1]),
                                    score_threshold=0.05) == 1.0
    assert image_detection_fidelity(det([], [], []), det(box, [0.06], [1]),
                                    score_threshold=0.05) == 0.0
    # every input form
    as_dict = {"boxes": box, "scores": [0.5], "labels": [1]}
    as_obj = metrics.as_detections(as_dict)
    assert detection_fidelity([as_dict], [as_obj]) == 1.0
    assert detection_fidelity([det(box, [0.5], [1])], [([], [], [])]) == 0.0


boxes_st = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 12),
                              st.integers(0, 12), st.sampled_from([0.125, 0.25, 0.5, 0.75, 1.0]),
                              st.integers(0, 2)), max_size=6)


def to_det(rows):
    if not rows:
        return det([], [], [])
    return det([[x, y, x + w, y + h] for x, y, w, h, _, _ in rows], [s for *_, s, _ in rows],
               [c for *_, c in rows])


@settings(max_examples=100)
@given(boxes_st, boxes_st)
def test_detection_properties(p_rows, r_rows):
    p, r = to_det(p_rows), to_det(r_rows)
    f = image_detection_fidelity(p, r)
    assert 0.0 <= f <= 1.0
    assert image_detection_fidelity(p, p) == 1.0              # exactly
    # the order in which detections are listed does not matter
    perm = np.random.default_rng(len(r_rows)).permutation(len(r_rows))
    shuffled = (r[0][perm], r[1][perm], r[2][perm])
    assert image_detection_fidelity(p, shuffled) == pytest.approx(f, abs=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: detection_fidelity([det([], [], [])], []), "1 and 0 images"),
    (lambda: detection_fidelity([], []), "at least one image"),
    (lambda: image_detection_fidelity(det([[0, 0, 1, 1]], [0.5, 0.4], [1, 1]), det([], [], [])),
     "1 boxes, 2 scores and 2 labels"),
    (lambda: image_detection_fidelity((np.zeros((1, 3)), [0.5], [1]), det([], [], [])),
     "M x 4"),
    (lambda: image_detection_fidelity(det([[5, 0, 1, 1]], [0.5], [1]), det([], [], [])),
     "x2 < x1"),
    (lambda: image_detection_fidelity(det([[0, 0, 1, 1]], [-0.5], [1]), det([], [], [])),
     "non-negative"),
    (lambda: image_detection_fidelity(([[0, 0, 1, 1]], [0.5], [1.0]), det([], [], [])),
     "labels shall be integers"),
    (lambda: image_detection_fidelity({"boxes": []}, det([], [], [])), "'scores' is missing"),
    (lambda: image_detection_fidelity(det([], [], []), det([], [], []), score_threshold=-1),
     "score_threshold"),
    (lambda: image_detection_fidelity(det([[0, 0, np.inf, 1]], [0.5], [1]), det([], [], [])),
     "finite"),
])
def test_detection_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------------------
# C.5 BD-rate
# ----------------------------------------------------------------------------------------

BD_RATES = [100.0, 200.0, 400.0, 800.0]
BD_FIDELITY = [0.90, 0.95, 0.98, 0.99]


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_worked_example_bd_rate(method):
    test = [0.8 * r for r in BD_RATES]
    assert bd_rate(BD_RATES, BD_FIDELITY, test, BD_FIDELITY, method=method) \
        == pytest.approx(-20.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("factor", [0.5, 0.9, 1.0, 1.25, 3.0])
def test_bd_rate_of_scaled_rates_is_the_factor(method, factor):
    quality = [31.0, 34.5, 37.0, 40.0, 42.5]
    rates = [1000.0, 1800.0, 3000.0, 5200.0, 8000.0]
    got = bd_rate(rates, quality, [factor * r for r in rates], quality, method=method)
    assert got == pytest.approx((factor - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_bd_rate_of_shifted_log_linear_curves(method):
    # log10(rate) = a + b q; the test curve reaches each quality d later: D = -b d
    a, b, d = 1.0, 0.1, 2.0
    qa = np.array([30.0, 33.0, 36.0, 39.0, 42.0])
    qt = qa + d
    got = bd_rate(10 ** (a + b * qa), qa, 10 ** (a + b * (qt - d)), qt, method=method)
    assert got == pytest.approx((10 ** (-b * d) - 1) * 100, abs=1e-9)


@settings(max_examples=40)
@given(st.lists(st.floats(0.05, 2.0), min_size=4, max_size=6),
       st.lists(st.floats(0.05, 2.0), min_size=4, max_size=6),
       st.sampled_from(["cubic", "pchip"]))
def test_bd_rate_antisymmetric_and_order_free(steps_a, steps_t, method):
    qa = np.cumsum(steps_a) + 30
    qt = np.cumsum(steps_t) + 30
    ra = 100 * 2.0 ** np.arange(len(qa))
    rt = 90 * 2.0 ** np.arange(len(qt))
    if min(qa[-1], qt[-1]) <= max(qa[0], qt[0]):
        return
    x = bd_rate(ra, qa, rt, qt, method=method)
    y = bd_rate(rt, qt, ra, qa, method=method)
    assert (1 + x / 100) * (1 + y / 100) == pytest.approx(1.0, rel=1e-9)
    assert bd_rate(ra[::-1], qa[::-1], rt, qt, method=method) == pytest.approx(x, rel=1e-9,
                                                                               abs=1e-9)


def test_bd_rate_plateau():
    rates = [100.0, 200.0, 400.0, 800.0, 1600.0]
    saturated = [0.90, 0.97, 0.99, 1.0, 1.0]
    other = [0.92, 0.98, 0.995, 1.0, 1.0]
    with pytest.raises(ValueError, match="plateau='lowest_rate'"):
        bd_rate(rates, saturated, rates, other)
    # dropping the 1600 points leaves 4 points per curve
    for method in ("cubic", "pchip"):
        kept = bd_rate(rates, saturated, rates, other, method=method, plateau="lowest_rate")
        assert kept == bd_rate(rates[:4], saturated[:4], rates[:4], other[:4], method=method)
    assert bd_rate(rates, saturated, rates, other, plateau="lowest_rate") < 0
    with pytest.raises(ValueError, match="needs at least 4 points"):
        bd_rate(rates, [0.9, 0.99, 1.0, 1.0, 1.0], rates, other, method="cubic",
                plateau="lowest_rate")
    assert bd_rate(rates, [0.9, 0.99, 1.0, 1.0, 1.0], rates, other, plateau="lowest_rate") \
        == bd_rate(rates[:3], [0.9, 0.99, 1.0], rates[:4], other[:4])


def test_worked_example_cubic_fit_misreads_saturating_curves():
    # the test curve has the higher fidelity at every rate, so it needs less rate
    rates = [100.0, 200.0, 400.0, 800.0]
    anchor = [0.90, 0.97, 0.99, 0.998]
    test = [0.92, 0.975, 0.993, 0.999]
    assert bd_rate(rates, anchor, rates, test, method="pchip") == pytest.approx(-12.52, abs=5e-3)
    assert bd_rate(rates, anchor, rates, test, method="cubic") == pytest.approx(0.61, abs=5e-3)


@pytest.mark.parametrize("args, kw, message", [
    ((BD_RATES, BD_FIDELITY[:3], BD_RATES, BD_FIDELITY), {}, "anchor: rate and quality"),
    ((BD_RATES, [0.9, 0.95, 0.94, 0.99], BD_RATES, BD_FIDELITY), {}, "quality falls"),
    ((BD_RATES, BD_FIDELITY, [100, 100, 400, 800], BD_FIDELITY), {}, "same rate"),
    ((BD_RATES, BD_FIDELITY, [0, 200, 400, 800], BD_FIDELITY), {}, "positive"),
    ((BD_RATES, BD_FIDELITY, BD_RATES, [0.5, 0.6, 0.7, 0.8]), {}, "do not overlap"),
    ((BD_RATES[:3], BD_FIDELITY[:3], BD_RATES, BD_FIDELITY), {"method": "cubic"},
     "at least 4 points"),
    ((BD_RATES[:1], BD_FIDELITY[:1], BD_RATES, BD_FIDELITY), {"method": "pchip"},
     "at least 2 points"),
    ((BD_RATES, BD_FIDELITY, BD_RATES, BD_FIDELITY), {"method": "akima"}, "method"),
    ((BD_RATES, BD_FIDELITY, BD_RATES, BD_FIDELITY), {"plateau": "drop"}, "plateau"),
    ((BD_RATES, [0.9, np.nan, 0.98, 0.99], BD_RATES, BD_FIDELITY), {}, "finite"),
])
def test_bd_rate_errors(args, kw, message):
    with pytest.raises(ValueError, match=message):
        bd_rate(*args, **kw)


def test_no_torch_in_metrics():
    import ast
    from pathlib import Path
    for path in Path(metrics.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert names <= {"__future__", "dataclasses", "operator", "collections", "numpy",
                         "scipy"}, (path.name, names)
    assert math.isfinite(metrics.compression_rate(1, 1))
