"""dlib's face detector, aligner and embedder (refcodec.face.models) on real photographs, and
the face set of refcodec.face.data.

Skipped (with the reason) when dlib, its model files or the photographs are missing: install
them with ``pip install -e '.[face,eval]'`` and ``bash tools/install_eval_assets.sh``.
"""

import hashlib

import numpy as np
import pytest

pytest.importorskip("dlib", reason="needs dlib: pip install -e '.[face]' (dlib-bin)")

from refcodec.face import data, models  # noqa: E402


@pytest.fixture(scope="module")
def fm():
    try:
        return models.load_face_models()
    except models.FaceModelsMissing as exc:
        pytest.skip(str(exc))


def _photo(key):
    try:
        return data.load_photo(key).image
    except data.FaceDataMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def astronaut(fm):
    img = _photo("skimage_astronaut")
    boxes = fm.detect(img)
    chip = fm.chip(img, boxes[0]) if boxes else None
    return img, boxes, chip


def test_astronaut_one_face(fm, astronaut):
    img, boxes, chip = astronaut
    assert len(boxes) == 1
    left, top, right, bottom = boxes[0]
    assert 0 <= left < right <= img.shape[1] and 0 <= top < bottom <= img.shape[0]
    assert chip.shape == (models.CHIP_SIZE, models.CHIP_SIZE, 3) and chip.dtype == np.uint8


def test_hog_score_threshold_drops_the_mission_patch(fm, astronaut):
    """dlib's own threshold (0) also reports the mission patch on the astronaut's sleeve; its
    score is below HOG_MIN_SCORE and the face's is above."""
    img, boxes, _ = astronaut
    rects, scores, _ = fm.hog.run(img, models.HOG_UPSAMPLE, 0.0)
    assert len(rects) == 2
    face = [s for r, s in zip(rects, scores) if (r.left(), r.top()) == boxes[0][:2]]
    other = [s for r, s in zip(rects, scores) if (r.left(), r.top()) != boxes[0][:2]]
    assert face[0] >= models.HOG_MIN_SCORE > other[0]


def test_embedding_same_person_and_other_person(fm, astronaut):
    _, _, chip = astronaut
    emb = fm.embed(chip)
    assert emb.shape == (models.EMBEDDING_DIM,) and emb.dtype == np.float32
    mirror = fm.embed(np.ascontiguousarray(chip[:, ::-1]))
    assert 0 < models.distance(emb, mirror) < models.SAME_PERSON_DISTANCE
    hopper = _photo("matplotlib_hopper")
    boxes = fm.detect(hopper)
    assert len(boxes) == 1
    other = fm.embed(fm.chip(hopper, boxes[0]))
    assert models.distance(emb, other) > models.SAME_PERSON_DISTANCE


def test_embed_many_equals_embed_and_landmark_chips(fm, astronaut):
    img, boxes, chip = astronaut
    mirror = np.ascontiguousarray(chip[:, ::-1])
    many = fm.embed_many([chip, mirror])
    assert np.array_equal(many[0], fm.embed(chip))
    assert np.array_equal(many[1], fm.embed(mirror))
    assert fm.embed_many([]).shape == (0, models.EMBEDDING_DIM)
    pts = fm.landmarks(img, boxes[0])
    assert pts.shape == (5, 2)
    assert np.array_equal(fm.chip_from_landmarks(img, pts), chip)


def test_bad_inputs_raise_value_error(fm, astronaut):
    img, boxes, chip = astronaut
    with pytest.raises(ValueError, match="uint8 RGB"):
        fm.detect(img.astype(np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        fm.detect(img[:, :, 0])
    with pytest.raises(ValueError, match="unknown face detector"):
        fm.detect(img, detector="yolo")
    with pytest.raises(ValueError, match="150x150"):
        fm.embed(img)
    with pytest.raises(ValueError, match="empty face box"):
        fm.chip(img, (10, 10, 5, 20))
    with pytest.raises(ValueError, match="left, top, right, bottom"):
        fm.chip(img, "box")
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        fm.chip_from_landmarks(img, np.zeros((4, 2), np.int64))


def test_embedder_sha256():
    digest = models.embedder_sha256()
    assert len(digest) == 32
    assert digest == hashlib.sha256(models.model_path("embedder").read_bytes()).digest()


def test_missing_models_package_raises_with_hint(monkeypatch):
    monkeypatch.setattr(models, "MODELS_PACKAGE", "no_such_face_models_package")
    with pytest.raises(models.FaceModelsMissing, match="install_eval_assets"):
        models.models_dir()
    assert not models.have_face_models()


@pytest.fixture(scope="module")
def colour_faces(fm):
    try:
        return data.face_set(lfw=False, fm=fm)
    except data.FaceDataMissing as exc:
        pytest.skip(str(exc))


def test_face_set_split_by_photo(colour_faces):
    recs = colour_faces
    train = {r.photo for r in recs if r.split == "train"}
    test = {r.photo for r in recs if r.split == "test"}
    assert train and test and not train & test
    test_people = [r.person for r in recs if r.split == "test"]
    assert len(test_people) >= 5 and len(set(test_people)) == len(test_people)
    assert not set(test_people) & {r.person for r in recs if r.split == "train"}
    assert len({r.name for r in recs}) == len(recs)
    for r in recs:
        assert r.color
        assert r.chip.shape == (150, 150, 3) and r.chip.dtype == np.uint8
        assert r.embedding.shape == (128,) and r.embedding.dtype == np.float32
        assert r.valid.shape == (150, 150) and 0 <= r.valid.min() <= r.valid.max() <= 1
    # the photographs' faces are distinct people except the three Obama photographs
    obama = [r.embedding for r in recs if r.person == "Barack Obama"]
    assert len(obama) == 3
    assert all(models.distance(a, b) < models.SAME_PERSON_DISTANCE
               for i, a in enumerate(obama) for b in obama[i + 1:])
    tests = [r.embedding for r in recs if r.split == "test"]
    assert all(models.distance(a, b) > models.SAME_PERSON_DISTANCE
               for i, a in enumerate(tests) for b in tests[i + 1:])


def test_face_set_cache_round_trip(colour_faces, fm, tmp_path, monkeypatch):
    monkeypatch.setenv("REFCODEC_CACHE", str(tmp_path))
    recs = [r for r in colour_faces if r.photo == "insightface_hanks"]
    path = tmp_path / "face" / "x.npz"
    data._save(path, recs)
    back = data._load(path)
    assert [r.name for r in back] == [r.name for r in recs]
    for a, b in zip(back, recs):
        assert np.array_equal(a.chip, b.chip) and np.array_equal(a.embedding, b.embedding)
        assert np.array_equal(a.valid, b.valid) and np.array_equal(a.landmarks, b.landmarks)
        assert (a.person, a.split, a.photo, a.source) == (b.person, b.split, b.photo, b.source)
    path.write_bytes(b"not an npz")
    assert data._load(path) is None


def test_lfw_split_is_fixed_by_index():
    assert [data.lfw_split(i) for i in range(10)] == ["train"] * 4 + ["test"] + \
        ["train"] * 4 + ["test"]
    with pytest.raises(KeyError):
        data.load_photo("lfw_subset_100")
    with pytest.raises(KeyError):
        data.load_photo("no_such_photo")
    with pytest.raises(ValueError, match="split"):
        data.face_set(split="validation")
