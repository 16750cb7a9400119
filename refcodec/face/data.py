"""The real face photographs available offline, and the face set built from them.

Inventory (searched in the installed packages, in PyPI wheels and sdists of face packages and in
Debian's darknet; only real photographs of faces are used):

=====================  =======================================================  ======  =====
photo key              file, package                                            faces   split
=====================  =======================================================  ======  =====
skimage_astronaut      ``skimage.data.astronaut()``, scikit-image 0.26.0         1       train
                       (Eileen Collins, NASA photograph: public domain)
matplotlib_hopper      ``mpl-data/sample_data/grace_hopper.jpg``, matplotlib     1       train
                       (Grace Hopper, U.S. Navy photograph: public domain)
insightface_hanks      ``insightface/data/images/Tom_Hanks_54745.png`` of the    1       train
                       ``insightface==2.1`` wheel (a 112 x 112 aligned face
                       from a face-recognition data set; its licence is not
                       stated, the package is MIT)
fr_obama, fr_obama2,   ``tests/test_images/{obama,obama2,obama3,biden}.jpg``     1 each  train
fr_obama3, fr_biden    of the ``face-recognition==1.3.0`` sdist (official White
                       House photographs, U.S. government works: public
                       domain as far as can be told; the package is MIT)
insightface_t1         ``insightface/data/images/t1.jpg`` of the                 6       test
                       ``insightface==2.1`` wheel (a promotional still of six
                       actors; the photograph's licence is not stated, the
                       package is MIT)
lfw_subset             ``skimage.data.lfw_subset()[:100]``: 100 gray 25 x 25     85      70
                       face crops from Labeled Faces in the Wild (news          found   train,
                       photographs, research use), no identities                         15
                                                                                         test
=====================  =======================================================  ======  =====

Looked at and not used: ``32bit.png`` of face-recognition (obama2.jpg again, as RGBA),
``obama_partial_face*.jpg`` (crops of obama.jpg), insightface's ``mask_*.jpg`` (face-mask
textures, no faces), facenet-pytorch 2.6.0 (its wheel ships the MTCNN weights and no image;
there is no sdist), the mtcnn and face-alignment packages (no image in their wheel / sdist),
Debian darknet's ``person.jpg``, ``kite.jpg``, ... (people too small or turned away: neither of
dlib's detectors finds a face).  The second face the HOG detector reports on the astronaut is
the mission patch on her sleeve (score 0.12; refcodec.face.models.HOG_MIN_SCORE drops it).

So there are 13 colour faces of 11 people from 8 photographs, and 85 gray low-resolution LFW
faces (dlib finds no face, at HOG_MIN_SCORE, in 15 of the 100 upsampled crops).  The split
is fixed and by source photograph, so no photograph gives faces to both splits: the six
faces of ``insightface_t1`` (six different people) are the colour test set; the seven other
colour faces (five people) are the colour training set.  The LFW crops are split by index
(index % 5 == 4: test); LFW repeats some people, and the subset carries no identities, so an
LFW test face may show a person who is also in the LFW training faces.

Getting the files: scikit-image and matplotlib are installed packages.  The insightface wheel
and the face-recognition sdist are downloaded (``pip download --no-deps``) into the face data
folder (``REFCODEC_FACE_DATA``, default ``~/.cache/refcodec/face-data``) by
``tools/install_eval_assets.sh``; the files are read from the archives as they are and each
image is checked against its SHA-256 below.  Installing insightface itself would cost nothing
useful (its import wants onnx, onnxruntime, opencv; 1.2 MB wheel) and face-recognition is an
sdist whose tests/ folder is not installed, hence the archives.  Nothing is downloaded at run
time.

Every face: dlib's detector (``FaceModels.detect``, HOG) -> 5 landmarks -> 150 x 150 chip ->
128-d embedding.  The LFW crops are first made detectable: bicubic upsampling by 4 (25 -> 100
pixels, Pillow), edge padding by 50 pixels on each side, gray replicated to RGB.  Each record
also carries ``valid``, the part of the chip that comes from inside the photograph (the chip of
a mask image, warped like the photograph): dlib fills the rest with black (the 112 x 112 Tom
Hanks crop) or it is padding (LFW).

Building the 98 records takes about 30 s on two cores (mostly the embeddings at 0.2 s each
and the HOG detector on the large photographs; the 13 colour faces alone about 10 s); they are
cached in
``REFCODEC_CACHE`` (default ``~/.cache/refcodec``) ``/face/face_set-<key>.npz``, where the key
is a hash of the photographs' pixels, dlib's version, the model files' hashes and DATA_VERSION;
a cached set loads in well under a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from . import models

DATA_VERSION = 1
INSTALL_HINT = "run tools/install_eval_assets.sh (face section)"
LFW_COUNT = 100
LFW_UPSAMPLE = 4
LFW_PAD = 50


class FaceDataMissing(RuntimeError):
    """A package or archive holding face photographs is not installed."""


@dataclasses.dataclass(frozen=True)
class Archive:
    file: str
    requirement: str
    sha256: str
    kind: str            # "zip" or "tar"


ARCHIVES = {
    "insightface": Archive("insightface-2.1-py3-none-any.whl", "insightface==2.1",
                           "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
                           "zip"),
    "face_recognition": Archive(
        "face_recognition-1.3.0.tar.gz", "face-recognition==1.3.0",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec", "tar"),
}


@dataclasses.dataclass(frozen=True)
class PhotoSpec:
    """One source photograph: where it is, what it shows, which split its faces are in."""

    key: str
    source: str                 # package and file
    licence: str
    where: tuple[str, str]      # ("skimage", function) | ("matplotlib", path) |
    #                             (archive key, member)
    sha256: str | None          # of the file (None: an array of an installed package)
    people: tuple[str, ...]     # faces left to right
    split: str


PHOTOS = (
    PhotoSpec("skimage_astronaut", "scikit-image 0.26.0: skimage.data.astronaut()",
              "NASA photograph, public domain", ("skimage", "astronaut"), None,
              ("Eileen Collins",), "train"),
    PhotoSpec("matplotlib_hopper", "matplotlib: mpl-data/sample_data/grace_hopper.jpg",
              "U.S. Navy photograph, public domain",
              ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
              "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130",
              ("Grace Hopper",), "train"),
    PhotoSpec("insightface_hanks", "insightface 2.1 wheel: insightface/data/images/"
              "Tom_Hanks_54745.png", "not stated (package MIT)",
              ("insightface", "insightface/data/images/Tom_Hanks_54745.png"),
              "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
              ("Tom Hanks",), "train"),
    PhotoSpec("fr_obama", "face-recognition 1.3.0 sdist: tests/test_images/obama.jpg",
              "White House photograph, public domain (package MIT)",
              ("face_recognition", "face_recognition-1.3.0/tests/test_images/obama.jpg"),
              "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
              ("Barack Obama",), "train"),
    PhotoSpec("fr_obama2", "face-recognition 1.3.0 sdist: tests/test_images/obama2.jpg",
              "White House photograph, public domain (package MIT)",
              ("face_recognition", "face_recognition-1.3.0/tests/test_images/obama2.jpg"),
              "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
              ("Barack Obama",), "train"),
    PhotoSpec("fr_obama3", "face-recognition 1.3.0 sdist: tests/test_images/obama3.jpg",
              "White House photograph, public domain (package MIT)",
              ("face_recognition", "face_recognition-1.3.0/tests/test_images/obama3.jpg"),
              "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
              ("Barack Obama",), "train"),
    PhotoSpec("fr_biden", "face-recognition 1.3.0 sdist: tests/test_images/biden.jpg",
              "White House photograph, public domain (package MIT)",
              ("face_recognition", "face_recognition-1.3.0/tests/test_images/biden.jpg"),
              "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
              ("Joe Biden",), "train"),
    PhotoSpec("insightface_t1", "insightface 2.1 wheel: insightface/data/images/t1.jpg",
              "not stated (package MIT)",
              ("insightface", "insightface/data/images/t1.jpg"),
              "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
              ("Jennifer Aniston", "Courteney Cox", "David Schwimmer", "Matthew Perry",
               "Matt LeBlanc", "Lisa Kudrow"), "test"),
)

LFW_SOURCE = "scikit-image 0.26.0: skimage.data.lfw_subset()"
LFW_LICENCE = "Labeled Faces in the Wild (news photographs), research use"


def lfw_split(index: int) -> str:
    """The fixed split of LFW crop ``index`` (0..99)."""
    return "test" if index % 5 == 4 else "train"


@dataclasses.dataclass(frozen=True, eq=False)
class Photo:
    """A source photograph as it is fed to the detector (LFW crops: upsampled and padded)."""

    key: str
    source: str
    licence: str
    image: np.ndarray                      # H x W x 3 uint8 RGB
    region: tuple[int, int, int, int]      # (left, top, right, bottom) of real pixels
    split: str
    people: tuple[str | None, ...]
    color: bool


@dataclasses.dataclass(frozen=True, eq=False)
class FaceRecord:
    """One face of the face set."""

    name: str                 # unique, e.g. "insightface_t1_2"
    source: str               # package and file
    photo: str                # key of the source photograph (the unit of the split)
    person: str | None        # None for the LFW crops (no identities)
    split: str                # "train" or "test"
    color: bool               # False for the gray LFW crops
    chip: np.ndarray          # 150 x 150 x 3 uint8
    embedding: np.ndarray     # (128,) float32
    valid: np.ndarray         # 150 x 150 float32 in [0, 1]: chip pixel inside the photo
    landmarks: np.ndarray     # (5, 2) int64: dlib's 5 points in the photo (Photo.image)


# ------------------------------------------------------------------------------------
# Photographs
# ------------------------------------------------------------------------------------

def face_data_dir() -> Path:
    """The folder of the downloaded archives (REFCODEC_FACE_DATA)."""
    env = os.environ.get("REFCODEC_FACE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "refcodec" / "face-data"


def cache_dir() -> Path:
    env = os.environ.get("REFCODEC_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "refcodec") / "face"


def _package_dir(package: str, requirement: str) -> Path:
    return models.package_dir(package, requirement, FaceDataMissing, INSTALL_HINT)


def _archive_member(key: str, member: str) -> bytes:
    arc = ARCHIVES[key]
    path = face_data_dir() / arc.file
    if not path.is_file():
        raise FaceDataMissing(f"{path} ({arc.requirement}) is missing: {INSTALL_HINT}")
    try:
        if arc.kind == "zip":
            with zipfile.ZipFile(path) as z:
                return z.read(member)
        with tarfile.open(path, "r:gz") as t:
            f = t.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise FaceDataMissing(f"{path}: cannot read {member} ({exc}): {INSTALL_HINT}") from None


def _skimage_data():
    try:
        import skimage.data
    except ImportError:
        raise FaceDataMissing(f"scikit-image (scikit-image==0.26.0) is not installed: "
                              f"{INSTALL_HINT}") from None
    return skimage.data


def _decode(data: bytes, what: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise FaceDataMissing(f"Pillow is not installed (needed for {what}): "
                              f"pip install 'refcodec[face]'") from None
    with Image.open(io.BytesIO(data)) as img:
        return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def _file_bytes(spec: PhotoSpec) -> bytes:
    kind, where = spec.where
    if kind == "matplotlib":
        path = _package_dir("matplotlib", "matplotlib==3.11.2") / where
        if not path.is_file():
            raise FaceDataMissing(f"{path} is missing from matplotlib: {INSTALL_HINT}")
        data = path.read_bytes()
    else:
        data = _archive_member(kind, where)
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise FaceDataMissing(f"{spec.source}: the file differs from the expected one "
                              f"(SHA-256 {hashlib.sha256(data).hexdigest()}, expected "
                              f"{spec.sha256}): {INSTALL_HINT}")
    return data


def load_photo(key: str) -> Photo:
    """The source photograph ``key`` (a PhotoSpec key, or "lfw_subset_NNN")."""
    if key.startswith("lfw_subset_"):
        try:
            index = int(key[len("lfw_subset_"):])
        except ValueError:
            index = -1
        if not 0 <= index < LFW_COUNT:
            raise KeyError(f"no photograph {key!r}")
        return _lfw_photo(index, _skimage_data().lfw_subset()[index])
    for spec in PHOTOS:
        if spec.key == key:
            break
    else:
        raise KeyError(f"no photograph {key!r}")
    if spec.where[0] == "skimage":
        img = np.ascontiguousarray(getattr(_skimage_data(), spec.where[1])()[:, :, :3])
    else:
        img = _decode(_file_bytes(spec), spec.source)
    h, w = img.shape[:2]
    return Photo(spec.key, spec.source, spec.licence, img, (0, 0, w, h), spec.split,
                 spec.people, True)


def _lfw_photo(index: int, crop: np.ndarray) -> Photo:
    from PIL import Image
    g = np.floor(np.clip(crop, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    size = g.shape[0] * LFW_UPSAMPLE
    up = np.asarray(Image.fromarray(g).resize((size, size), Image.BICUBIC), dtype=np.uint8)
    up = np.pad(up, LFW_PAD, mode="edge")
    img = np.ascontiguousarray(np.repeat(up[:, :, None], 3, axis=2))
    region = (LFW_PAD, LFW_PAD, LFW_PAD + size, LFW_PAD + size)
    return Photo(f"lfw_subset_{index:03d}", f"{LFW_SOURCE}[{index}]", LFW_LICENCE, img, region,
                 lfw_split(index), (None,), False)


def load_photos(lfw: bool = True) -> list[Photo]:
    """Every source photograph of the face set, in a fixed order."""
    photos = [load_photo(spec.key) for spec in PHOTOS]
    if lfw:
        crops = _skimage_data().lfw_subset()[:LFW_COUNT]
        photos += [_lfw_photo(i, crops[i]) for i in range(LFW_COUNT)]
    return photos


def valid_mask(fm: models.FaceModels, photo: Photo, landmarks: np.ndarray) -> np.ndarray:
    """150 x 150 float32 in [0, 1]: which chip pixels come from the photograph's real
    pixels (the chip of a mask image warped with the same landmarks)."""
    h, w = photo.image.shape[:2]
    mask = np.zeros((h, w, 3), np.uint8)
    left, top, right, bottom = photo.region
    mask[top:bottom, left:right] = 255
    return fm.chip_from_landmarks(mask, landmarks)[:, :, 0].astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------
# The face set
# ------------------------------------------------------------------------------------

def _photo_faces(fm: models.FaceModels, photo: Photo):
    """(name, person, landmarks) of the faces of one photograph, left to right; None for an
    LFW crop where no face is found."""
    boxes = fm.detect(photo.image)
    want = len(photo.people)
    if len(boxes) < want:
        if not photo.color:
            return []
        raise RuntimeError(f"{photo.source}: dlib found {len(boxes)} face(s), expected "
                           f"{want}; the face set cannot be built with this dlib version")
    boxes = sorted(boxes[:want], key=lambda b: (b[0], b[1]))
    out = []
    for k, (box, person) in enumerate(zip(boxes, photo.people)):
        name = photo.key if want == 1 else f"{photo.key}_{k}"
        out.append((name, person, fm.landmarks(photo.image, box)))
    return out


def _cache_key(photos: list[Photo]) -> str:
    import dlib
    h = hashlib.sha256()
    h.update(json.dumps([DATA_VERSION, dlib.__version__, models.HOG_MIN_SCORE,
                         models.HOG_UPSAMPLE]).encode())
    h.update(models.embedder_sha256())
    h.update(hashlib.sha256(models.model_path("landmarks").read_bytes()).digest())
    for p in photos:
        h.update(p.key.encode() + b"\0")
        h.update(hashlib.sha256(p.image.tobytes()).digest())
    return h.hexdigest()[:24]


def _build(fm: models.FaceModels, photos: list[Photo]) -> list[FaceRecord]:
    pending = []
    for photo in photos:
        for name, person, pts in _photo_faces(fm, photo):
            chip = fm.chip_from_landmarks(photo.image, pts)
            pending.append((photo, name, person, pts, chip, valid_mask(fm, photo, pts)))
    embeddings = fm.embed_many([p[4] for p in pending])
    return [FaceRecord(name=name, source=photo.source, photo=photo.key, person=person,
                       split=photo.split, color=photo.color, chip=chip, embedding=emb,
                       valid=valid, landmarks=pts)
            for (photo, name, person, pts, chip, valid), emb in zip(pending, embeddings)]


def _save(path: Path, records: list[FaceRecord]) -> None:
    meta = [{"name": r.name, "source": r.source, "photo": r.photo, "person": r.person,
             "split": r.split, "color": r.color} for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)),
                 chip=np.stack([r.chip for r in records]),
                 embedding=np.stack([r.embedding for r in records]),
                 valid=np.stack([r.valid for r in records]),
                 landmarks=np.stack([r.landmarks for r in records]))
    os.replace(tmp, path)


def _load(path: Path) -> list[FaceRecord] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = [z[k] for k in ("chip", "embedding", "valid", "landmarks")]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    n = len(meta)
    shapes = [(n, models.CHIP_SIZE, models.CHIP_SIZE, 3), (n, models.EMBEDDING_DIM),
              (n, models.CHIP_SIZE, models.CHIP_SIZE), (n, 5, 2)]
    if any(a.shape != s for a, s in zip(arrays, shapes)):
        return None
    chips, embs, valid, pts = arrays
    return [FaceRecord(chip=chips[i], embedding=embs[i].astype(np.float32),
                       valid=valid[i].astype(np.float32), landmarks=pts[i].astype(np.int64),
                       **meta[i]) for i in range(n)]


def face_set(split: str | None = None, *, lfw: bool = True, cache: bool = True,
             fm: models.FaceModels | None = None) -> list[FaceRecord]:
    """The face set (module doc): every face as a FaceRecord, colour photographs first (in
    PHOTOS order, faces left to right), then the LFW crops; ``split`` "train" or "test"
    keeps one split; ``lfw=False`` leaves out the LFW crops.  Cached on disk (module doc)
    unless ``cache=False``.  FaceDataMissing / FaceModelsMissing say what to install."""
    if split not in (None, "train", "test"):
        raise ValueError(f"split shall be 'train', 'test' or None, got {split!r}")
    fm = fm or models.load_face_models()
    photos = load_photos(lfw=lfw)
    records = None
    path = cache_dir() / f"face_set-{_cache_key(photos)}.npz"
    if cache and path.is_file():
        records = _load(path)
    if records is None:
        records = _build(fm, photos)
        if cache:
            try:
                _save(path, records)
            except OSError:
                pass            # a read-only cache folder only costs time
    return [r for r in records if split is None or r.split == split]
