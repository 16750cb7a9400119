"""refcodec.evaluation: deterministic image set, configurations, metric aggregation, a tiny
end-to-end run on the real MobileNetV2 (skipped when torch or the assets are missing)."""

import json

import numpy as np
import pytest

from refcodec import evaluation as ev

INSTALL = "evaluation assets not installed: run tools/install_eval_assets.sh"


def _skimage():
    pytest.importorskip("skimage", reason=INSTALL)


# -- images --------------------------------------------------------------------------

def test_image_set_is_deterministic_and_documented():
    _skimage()
    a, b = ev.image_set(36), ev.image_set(36)
    assert [im.key for im in a] == [im.key for im in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    n = len(ev.CORE_PHOTOS)
    assert [im.key for im in a[:n]] == [f"{p}/full" for p in ev.CORE_PHOTOS]
    assert [im.key for im in a[n:]] == [f"{p}/crop80-flip" for p in ev.CORE_PHOTOS]
    for im in a:
        assert im.image.dtype == np.uint8 and im.image.ndim == 3 and im.image.shape[2] == 3
    photo = ev.load_photo("chelsea")                     # 300 x 451
    assert np.array_equal(a[1].image, photo)
    flipped = a[n + 1].image
    assert flipped.shape == (240, 361, 3)                # rows 30..270, cols 45..406
    assert np.array_equal(flipped, photo[30:270, 45:406][:, ::-1])
    cam = a[ev.CORE_PHOTOS.index("camera")].image        # gray replicated to RGB
    assert np.array_equal(cam[..., 0], cam[..., 2])
    with pytest.raises(ValueError):
        ev.image_set(0)
    with pytest.raises(ValueError):
        ev.image_set(n * len(ev.VARIANTS) + 1)


def test_detection_image_set_order():
    _skimage()
    keys = [im.key for im in ev.detection_image_set(16)]
    assert keys[:6] == ["text/full", "page/full", "chelsea/full", "text/left60",
                        "page/left60", "coffee/full"]
    assert len(set(keys)) == 16
    assert [im.key for im in ev.detection_image_set()] == keys[:6]


# -- configurations ------------------------------------------------------------------

def test_parse_config():
    assert ev.parse_config("baseline") == ("baseline", {})
    assert ev.parse_config("10bit") == ("10bit", {"bit_depth": 10})
    assert ev.parse_config("u10=quantizer:uniform,bit_depth:10,per_channel:true") == \
        ("u10", {"quantizer": "uniform", "bit_depth": 10, "per_channel": True})
    with pytest.raises(ValueError, match="unknown configuration"):
        ev.parse_config("nope")
    with pytest.raises(ValueError, match="unknown key"):
        ev.parse_config("x=qp:3")
    with pytest.raises(Exception, match="bit_depth"):
        ev.parse_config("x=bit_depth:9")


# -- aggregation ---------------------------------------------------------------------

def _rows(recon_equal: bool, n=5, seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.random((n, 16))
    rows = []
    for i in range(n):
        logits = rng.standard_normal(10)
        er = emb[i] if recon_equal else rng.random(16)
        rows.append({"network": "net", "split": "s", "config": "baseline", "qp": 22,
                     "image_index": i, "elements": 100, "bytes": 50, "encode_s": 0.1,
                     "decode_s": 0.01, "top1_pristine": int(np.argmax(logits)),
                     "top1_reconstructed": int(np.argmax(logits)) if recon_equal else
                     (int(np.argmax(logits)) + 1) % 10,
                     "top5_agreement": 1.0, "embedding_pristine": emb[i],
                     "embedding_reconstructed": er})
    return rows, emb


def test_identical_features_give_fidelity_one():
    rows, refs = _rows(True)
    (s,) = ev.aggregate(rows, refs)
    assert s["classification_fidelity"] == 1.0 and s["retrieval_fidelity"] == 1.0
    assert s["compression_rate"] == 8.0 and s["coded_fraction"] == 0.125
    assert s["bits_per_element"] == 4.0 and s["images"] == 5
    det = [{"network": "d", "split": "s", "config": "baseline", "qp": 22, "image_index": i,
            "elements": 10, "bytes": 10, "encode_s": 0, "decode_s": 0,
            "detections_pristine": 1, "detections_reconstructed": 1,
            "detection_fidelity_image": 1.0} for i in range(3)]
    assert ev.aggregate(det, None)[0]["detection_fidelity"] == 1.0


def test_changed_outputs_lower_fidelity():
    rows, refs = _rows(False)
    (s,) = ev.aggregate(rows, refs)
    assert s["classification_fidelity"] == 0.0
    assert 0.0 <= s["retrieval_fidelity"] < 1.0


def test_retrieval_fidelity_excludes_the_query_itself():
    refs = np.eye(4) + 0.1
    # reconstructed query 0 points at reference 3 first: its ranking of 1, 2, 3 changes
    rec = refs.copy()
    rec[0] = np.array([0.1, 0.2, 0.3, 1.0])
    f = ev.retrieval_fidelity_of(refs, rec, refs)
    assert 0.5 < f < 1.0
    assert ev.retrieval_fidelity_of(refs, refs, refs) == 1.0


def test_bd_rates_against_the_baseline():
    summary = []
    for cfg, scale in (("baseline", 1.0), ("half", 0.5)):
        for qp, (bpe, fid) in zip(ev.QPS, ((4, 0.99), (2, 0.95), (1, 0.8), (0.5, 0.5))):
            summary.append({"network": "n", "split": "s", "config": cfg, "qp": qp,
                            "bits_per_element": bpe * scale, "classification_fidelity": fid,
                            "retrieval_fidelity": None, "detection_fidelity": None})
    (row,) = ev.bd_rates(summary)
    assert row["config"] == "half" and row["task"] == "classification"
    assert row["bd_rate_percent"] == pytest.approx(-50.0)


def test_jpeg_size_is_pillow_q75():
    pytest.importorskip("PIL", reason=INSTALL)
    img = np.zeros((32, 32, 3), np.uint8)
    assert 200 < ev.jpeg_size(img) < 1000


# -- tiny end-to-end run on the real network -----------------------------------------

@pytest.fixture(scope="module")
def tiny_result():
    pytest.importorskip("torch", reason="needs torch: pip install -e '.[torch]'")
    from refcodec.models import assets
    _skimage()
    if not assets.have("mobilenet_v2"):
        pytest.skip(INSTALL)
    opts = ev.EvalOptions(networks=("mobilenet_v2",), splits={"mobilenet_v2": ["conv4"]},
                          qps=(22,), configs=("baseline",), images=2, workers=1,
                          progress=False)
    return ev.evaluate(opts)


def test_tiny_evaluation_table_structure(tiny_result, tmp_path):
    (s,) = tiny_result["summary"]
    assert (s["network"], s["split"], s["config"], s["qp"], s["images"]) == \
        ("mobilenet_v2", "conv4", "baseline", 22, 2)
    assert s["elements_per_image"] == 96 * 14 * 14
    assert s["compression_rate"] > 1 and 0 <= s["classification_fidelity"] <= 1
    assert 0 <= s["retrieval_fidelity"] <= 1 and s["detection_fidelity"] is None
    assert [j["image"] for j in tiny_result["jobs"]] == ["astronaut/full", "chelsea/full"]
    table = ev.table3(tiny_result["summary"], qps=(22,))
    lines = table.splitlines()
    assert lines[0] == ("| Feat. | Cla QP22 rate | Cla QP22 fid. | Ret QP22 rate | "
                        "Ret QP22 fid. |")
    assert lines[2].startswith("| **MobileNetV2** |")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[0] == "conv4" and len(cells) == 5
    assert float(cells[1]) == pytest.approx(s["coded_fraction"], abs=5e-4)
    files = ev.write_reports(tiny_result, tmp_path, "test")
    for f in ("README.md", "summary.csv", "jobs.csv", "results.json",
              "rate_fidelity_mobilenet_v2.png", "fig5_size_vs_image.png"):
        assert f in files and (tmp_path / f).stat().st_size > 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["meta"]["command"] == "test" and len(data["fig5"]) == 1
    assert "| Feat. |" in (tmp_path / "README.md").read_text()


@pytest.mark.slow
def test_results_do_not_depend_on_the_worker_count():
    pytest.importorskip("torch")
    from refcodec.models import assets
    if not (assets.have("mobilenet_v2") and assets.have("craft")):
        pytest.skip(INSTALL)
    base = dict(splits={"mobilenet_v2": ["conv3", "pool5"], "craft": ["pool1"]},
                qps=(22, 42), configs=("baseline", "uniform"), images=3,
                detection_images=2, progress=False)
    one = ev.evaluate(ev.EvalOptions(workers=1, **base))
    two = ev.evaluate(ev.EvalOptions(workers=2, **base))
    strip = ("encode_s", "decode_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in one["jobs"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in two["jobs"]]
    keys = ("bytes_per_image", "classification_fidelity", "retrieval_fidelity",
            "detection_fidelity", "top5_agreement")
    assert [[s[k] for k in keys] for s in one["summary"]] == \
        [[s[k] for k in keys] for s in two["summary"]]


def test_bd_rates_at_equal_softmax_kl_and_logit_mse():
    """The continuous fidelities (issue 15): BD-rate at equal -log10(distortion).  'half'
    needs half the rate for the same KL and MSE: -50 %; 'shifted' has 10x the KL of the
    baseline at every rate, which is the baseline's curve one decade lower, checked against
    metrics.bd_rate of the -log10 values computed here."""
    import math
    kls, mses = (1e-4, 1e-3, 1e-2, 1e-1), (1e-3, 1e-2, 1e-1, 1.0)
    summary = []
    for cfg, scale, kl_factor in (("baseline", 1.0, 1), ("half", 0.5, 1), ("shifted", 1.0, 10)):
        for qp, bpe, kl, mse in zip(ev.QPS, (4, 2, 1, 0.5), kls, mses):
            summary.append({"network": "n", "split": "s", "config": cfg, "qp": qp,
                            "bits_per_element": bpe * scale, "classification_fidelity": None,
                            "retrieval_fidelity": None, "detection_fidelity": None,
                            "softmax_kl": kl * kl_factor, "logit_mse": mse})
    rows = {(r["config"], r["task"]): r for r in ev.bd_rates(summary)}
    assert rows[("half", "classification_kl")]["bd_rate_percent"] == pytest.approx(-50.0)
    assert rows[("half", "classification_logit_mse")]["bd_rate_percent"] == \
        pytest.approx(-50.0)
    assert rows[("shifted", "classification_logit_mse")]["bd_rate_percent"] == \
        pytest.approx(0.0, abs=1e-9)
    from refcodec.metrics import bd_rate
    want = bd_rate([4, 2, 1, 0.5], [-math.log10(v) for v in kls],
                   [4, 2, 1, 0.5], [-math.log10(10 * v) for v in kls], plateau="lowest_rate")
    assert want > 0
    assert rows[("shifted", "classification_kl")]["bd_rate_percent"] == pytest.approx(want)


def test_bd_rate_of_a_zero_distortion_is_refused_with_a_note():
    summary = []
    for cfg in ("baseline", "lossless"):
        for qp, bpe, kl in zip(ev.QPS, (4, 2, 1, 0.5), (1e-4, 1e-3, 1e-2, 1e-1)):
            summary.append({"network": "n", "split": "s", "config": cfg, "qp": qp,
                            "bits_per_element": bpe, "classification_fidelity": None,
                            "retrieval_fidelity": None, "detection_fidelity": None,
                            "softmax_kl": 0.0 if cfg == "lossless" else kl, "logit_mse": None})
    (row,) = ev.bd_rates(summary)
    assert row["task"] == "classification_kl" and row["bd_rate_percent"] is None
    assert "no finite quality" in row["note"]
