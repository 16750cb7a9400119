"""Real pretrained networks of refcodec.models: strict weight loading, known predictions on
real photographs, split points (head + tail == full network), feature coding API.

Skipped (with the reason) when torch or the offline assets are missing: install them with
``pip install -e '.[torch]'`` and ``bash tools/install_eval_assets.sh``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch: pip install -e '.[torch]'")

import refcodec  # noqa: E402
from refcodec import models  # noqa: E402
from refcodec.models import assets, craft, mobilenet_v2  # noqa: E402

INSTALL = "evaluation assets not installed: run tools/install_eval_assets.sh"
needs_mobilenet = pytest.mark.skipif(not assets.have("mobilenet_v2"), reason=INSTALL)
needs_craft = pytest.mark.skipif(not assets.have("craft"), reason=INSTALL)


def _photo(name):
    pytest.importorskip("skimage", reason=INSTALL)
    from refcodec.evaluation import load_photo
    return load_photo(name)


@pytest.fixture(scope="module")
def mnet():
    if not assets.have("mobilenet_v2"):
        pytest.skip(INSTALL)
    torch.set_num_threads(2)
    return models.load_network("mobilenet_v2")


@pytest.fixture(scope="module")
def craft_net():
    if not assets.have("craft"):
        pytest.skip(INSTALL)
    return models.load_network("craft")


# -- MobileNetV2 ---------------------------------------------------------------------

@needs_mobilenet
def test_mobilenet_weights_load_strictly():
    state = assets.load_state_dict("mobilenet_v2")
    model = mobilenet_v2.MobileNetV2()
    assert len(state) == 314
    assert set(model.state_dict()) == set(state)
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for k, v in model.state_dict().items():
        assert v.shape == state[k].shape, k


@pytest.mark.parametrize("photo, index, name", [("chelsea", 285, "Egyptian cat"),
                                                ("coffee", 967, "espresso")])
def test_mobilenet_known_predictions(mnet, photo, index, name):
    with torch.no_grad():
        logits = mnet.model(mnet.preprocess(_photo(photo)))
    assert int(logits.argmax()) == index
    names = models.imagenet_class_names()
    if names is not None:          # optional (Debian package darknet)
        assert names[index] == name


def test_mobilenet_split_shapes_and_head_tail_equal_full(mnet):
    x = mnet.preprocess(_photo("chelsea"))
    assert tuple(x.shape) == (1, 3, 224, 224)
    with torch.no_grad():
        full = mnet.model(x)
        emb = mnet.model.embed(x)
        for name in mnet.splits:
            split = mnet.split(name)
            f = split.head(x)
            assert tuple(f.shape[1:]) == mobilenet_v2.SPLIT_SHAPES_224[name], name
            out = split.tail(f)
            torch.testing.assert_close(out["logits"], full, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out["embedding"], emb, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(split(x)["logits"], full, atol=1e-4, rtol=1e-4)
    with pytest.raises(KeyError, match="no split point"):
        mnet.split("pool3")


def test_mobilenet_relu6_split_points_are_nonnegative(mnet):
    x = mnet.preprocess(_photo("coffee"))
    with torch.no_grad():
        for name in ("conv1", "conv5", "pool5"):
            f = mnet.split(name).head(x)
            assert float(f.min()) >= 0 and float(f.max()) <= 6


# -- CRAFT ---------------------------------------------------------------------------

@needs_craft
def test_craft_weights_load_strictly():
    state = assets.load_state_dict("craft")
    assert len(state) == 154 and all(k.startswith("module.") for k in state)
    model = craft.CRAFT()
    assert set(model.state_dict()) == {k[len("module."):] for k in state}
    craft.load_state_dict(model, state)          # strict=True inside
    bad = dict(state)
    bad.pop(next(iter(bad)))
    with pytest.raises(RuntimeError, match="Missing key"):
        craft.load_state_dict(craft.CRAFT(), bad)


def test_craft_split_shapes_and_head_tail_equal_full(craft_net):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 96)
    expect = {"conv1": {"relu1_2": (64, 64, 96)}, "pool1": {"pool1": (64, 32, 48)},
              "conv2": {"relu2_2": (128, 32, 48)}}
    expect["conv3"] = {**expect["conv2"], "relu3_2": (256, 16, 24)}
    expect["conv4"] = {**expect["conv3"], "relu4_2": (512, 8, 12)}
    expect["conv5"] = {**expect["conv4"], "bn5_2": (512, 4, 6)}
    with torch.no_grad():
        full = craft_net.model(x)
        assert tuple(full.shape) == (1, 2, 32, 48)
        for name in craft_net.splits:
            f = craft_net.split(name).head(x)
            assert {k: tuple(v.shape[1:]) for k, v in f.items()} == expect[name]
            out = craft_net.split(name).tail(f)["maps"]
            torch.testing.assert_close(out, full, atol=1e-4, rtol=1e-4)
    assert set(craft_net.splits) == set(craft.SPLIT_POINTS)


def test_craft_detects_text_in_a_text_photograph_only(craft_net):
    with torch.no_grad():
        text = craft_net.model(craft_net.preprocess(_photo("text")))
        cat = craft_net.model(craft_net.preprocess(_photo("chelsea")))
    boxes, scores, labels = craft_net.detections(text)
    assert len(boxes) >= 2 and (scores >= 0.7).all() and (labels == 0).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert len(craft_net.detections(cat)[0]) == 0


def test_detect_text_boxes_on_a_synthetic_map():
    maps = np.zeros((2, 40, 60), np.float32)
    maps[0, 10:20, 10:35] = 0.9         # one blob of 250 pixels
    maps[0, 30:32, 40:42] = 0.95        # 4 pixels: below min_size
    maps[0, 25:35, 50:58] = 0.5         # never reaches the text threshold
    maps[1, 0:2, 0:2] = 0.9             # link score only: 4 pixels, no text peak
    boxes, scores, labels = craft.detect_text_boxes(maps)
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9)
    niter = int(np.sqrt(250 * 10 / 250) * 2)
    assert niter == 6
    assert boxes[0].tolist() == [2 * (10 - niter), 2 * (10 - niter), 2 * (35 + niter),
                                 2 * (20 + niter)]


# -- split / coding API (any module) -------------------------------------------------

def test_code_feature_tensor_and_dict():
    torch.manual_seed(1)
    t = torch.relu(torch.randn(1, 8, 20, 20))
    rec, data = models.code_feature(t, refcodec.EncoderConfig(qp=12))
    assert isinstance(rec, torch.Tensor) and rec.shape == t.shape and rec.dtype == t.dtype
    assert refcodec.read_headers(data).layers[0].header.layer_id == "feature"
    assert float((rec - t).abs().max()) < 0.2
    feats = {"a": t, "b": torch.relu(torch.randn(1, 4, 16, 24))}
    coded = models.code_feature(feats, refcodec.EncoderConfig(qp=22), detailed=True)
    assert set(coded.feature) == {"a", "b"} and coded.num_elements == 8 * 400 + 4 * 384
    assert coded.feature["b"].shape == feats["b"].shape and coded.encode_seconds > 0
    assert [lay.header.layer_id for lay in refcodec.read_headers(coded.stream).layers] == \
        ["a", "b"]


def test_split_model_from_sequence_and_split_run():
    torch.manual_seed(2)
    mods = [torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 4, 3, padding=1), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten()]
    split = models.SplitModel.from_sequence(mods, 1)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        full = torch.nn.Sequential(*mods)(x)
        assert tuple(split.head(x).shape) == (1, 8, 16, 16)
        torch.testing.assert_close(split(x), full)
    p, r, (rec, data) = models.split_run(split.head, split.tail, x)
    torch.testing.assert_close(p, full)
    assert r.shape == p.shape and isinstance(data, bytes) and rec.shape == (1, 8, 16, 16)
    p2, r2, ident = models.split_run(split.head, split.tail, x, codec_fn=lambda f: (f, b""))
    torch.testing.assert_close(r2, p2)


def test_missing_asset_says_how_to_install(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "easyocr_en_models" else real(name, *a))
    with pytest.raises(models.AssetMissing, match="install_eval_assets.sh"):
        assets.weights_path("craft")
    assert not assets.have("craft")
