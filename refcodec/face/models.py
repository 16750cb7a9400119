"""dlib's face detector, 5-point aligner and 128-d face embedder (numpy + dlib, no torch).

The models are dlib's own trained files, shipped in the PyPI package
``face-recognition-models==0.3.0`` (CC0; install it with ``--no-deps``) and run by
``dlib-bin==20.0.1.post1`` (imports as ``dlib``); both are in ``pip install 'refcodec[face]'``
plus ``tools/install_eval_assets.sh``.  Nothing is downloaded at run time.

- detection: dlib's HOG frontal face detector with one upsampling of the image (the default),
  or dlib's CNN (MMOD) detector ``mmod_human_face_detector.dat`` (``detector="cnn"``; about
  50x slower on a CPU).
- alignment: ``shape_predictor_5_face_landmarks.dat`` (eye corners and the nose base), then
  ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``: the 150 x 150 RGB "face chip"
  the embedder was trained on.
- embedding: ``dlib_face_recognition_resnet_model_v1.dat`` (a ResNet-34-like network, 99.38 %
  on LFW according to dlib) on the chip, without jittering: a 128-d float32 vector.  dlib
  documents that two chips show the same person when the Euclidean distance of their
  embeddings is below 0.6 (``SAME_PERSON_DISTANCE``).  On skimage's astronaut, the chip and
  its mirror image are 0.21 apart; different people are typically 0.6 .. 0.9 apart.

``import face_recognition_models`` fails on current setuptools (it needs pkg_resources), so its
folder is located with ``importlib.util.find_spec``, which does not import it.
``refcodec.models.assets`` cannot be reused here: importing it runs ``refcodec.models``, which
imports torch, and this module must not need torch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
from pathlib import Path

import numpy as np

EMBEDDER_ID = "dlib_face_recognition_resnet_model_v1"
EMBEDDING_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
#: dlib's documented decision threshold: same person when the distance is below it.
SAME_PERSON_DISTANCE = 0.6
#: HOG detections scoring below this are dropped.  dlib's own default is 0, which keeps the
#: mission patch on the astronaut's sleeve (skimage.data.astronaut(), score 0.12); every
#: face of the colour photographs of refcodec.face.data scores 0.37 or more.
HOG_MIN_SCORE = 0.3
#: The HOG detector runs on the image upsampled once (finds faces down to about 40 px).
HOG_UPSAMPLE = 1

MODELS_PACKAGE = "face_recognition_models"
MODELS_REQUIREMENT = "face-recognition-models==0.3.0"
DLIB_REQUIREMENT = "dlib-bin==20.0.1.post1"
INSTALL_HINT = ("pip install 'refcodec[face]' (dlib-bin==20.0.1.post1) and run "
                "tools/install_eval_assets.sh (face-recognition-models==0.3.0)")

MODEL_FILES = {
    "embedder": "dlib_face_recognition_resnet_model_v1.dat",
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}

Box = tuple[int, int, int, int]


class FaceModelsMissing(RuntimeError):
    """dlib or its model files are not installed."""


def package_dir(package: str, requirement: str, missing: type[Exception] = FaceModelsMissing,
                hint: str = INSTALL_HINT) -> Path:
    """The folder of an installed (not necessarily importable) package, found without
    importing it; ``missing(...)`` with the install hint when it is not installed.
    (refcodec.models.assets.package_dir does the same but its package imports torch.)"""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise missing(f"package {package!r} ({requirement}) is not installed: {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def models_dir() -> Path:
    """The ``models`` folder of the installed package face-recognition-models."""
    return package_dir(MODELS_PACKAGE, MODELS_REQUIREMENT) / "models"


def model_path(name: str) -> Path:
    """Path of one of dlib's model files (a key of MODEL_FILES)."""
    path = models_dir() / MODEL_FILES[name]
    if not path.is_file():
        raise FaceModelsMissing(f"{path} is missing from {MODELS_REQUIREMENT}: {INSTALL_HINT}")
    return path


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise FaceModelsMissing(f"dlib ({DLIB_REQUIREMENT}) is not installed: "
                                f"{INSTALL_HINT}") from None
    return dlib


def have_face_models() -> bool:
    """True when dlib and the detector, aligner and embedder files are installed."""
    try:
        _import_dlib()
        for name in ("embedder", "landmarks"):
            model_path(name)
    except FaceModelsMissing:
        return False
    return True


@functools.lru_cache(maxsize=None)
def embedder_sha256() -> bytes:
    """SHA-256 of the embedder's weights file (dlib_face_recognition_resnet_model_v1.dat)."""
    h = hashlib.sha256()
    with open(model_path("embedder"), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def _rgb_image(image, what: str = "image") -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{what} shall be an H x W x 3 uint8 RGB array, got shape "
                         f"{img.shape} dtype {img.dtype}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{what} is empty ({img.shape[1]}x{img.shape[0]})")
    return np.ascontiguousarray(img)


def _box(box) -> Box:
    try:
        left, top, right, bottom = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"a face box shall be (left, top, right, bottom) integers, got "
                         f"{box!r}") from None
    if right <= left or bottom <= top:
        raise ValueError(f"empty face box {box!r}: right > left and bottom > top required")
    return left, top, right, bottom


@dataclasses.dataclass(frozen=True, eq=False)
class FaceModels:
    """dlib's detectors, 5-point shape predictor and face embedder, loaded once."""

    dlib: object = dataclasses.field(repr=False)
    hog: object = dataclasses.field(repr=False)
    shape_predictor: object = dataclasses.field(repr=False)
    facerec: object = dataclasses.field(repr=False)

    @functools.cached_property
    def cnn(self):
        """dlib's MMOD CNN face detector (loaded on first use)."""
        return self.dlib.cnn_face_detection_model_v1(str(model_path("cnn_detector")))

    def detect(self, image: np.ndarray, detector: str = "hog") -> list[Box]:
        """Face boxes (left, top, right, bottom) in pixels of an H x W x 3 uint8 RGB image,
        largest area first (ties: top-most, then left-most).  ``detector`` is "hog" (dlib's
        HOG detector, one upsampling, detections scoring below HOG_MIN_SCORE dropped) or
        "cnn" (dlib's MMOD detector, one upsampling).  Boxes may reach beyond the image."""
        img = _rgb_image(image)
        if detector == "hog":
            rects, scores, _ = self.hog.run(img, HOG_UPSAMPLE, 0.0)
            rects = [r for r, s in zip(rects, scores) if s >= HOG_MIN_SCORE]
        elif detector == "cnn":
            rects = [d.rect for d in self.cnn(img, HOG_UPSAMPLE)]
        else:
            raise ValueError(f"unknown face detector {detector!r}: 'hog' or 'cnn'")
        boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
        return sorted(boxes, key=lambda b: (-(b[2] - b[0]) * (b[3] - b[1]), b[1], b[0]))

    def landmarks(self, image: np.ndarray, box) -> np.ndarray:
        """dlib's 5 landmarks of the face in ``box``: int64 (5, 2) pixel (x, y)."""
        shape = self._shape(_rgb_image(image), _box(box))
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                        dtype=np.int64)

    def _shape(self, img: np.ndarray, box: Box):
        return self.shape_predictor(img, self.dlib.rectangle(*box))

    def chip(self, image: np.ndarray, box) -> np.ndarray:
        """The aligned 150 x 150 x 3 uint8 face chip of the face in ``box``: dlib's 5-point
        landmarks, then ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``."""
        img = _rgb_image(image)
        shape = self._shape(img, _box(box))
        return self.chip_from_landmarks(img, self._points(shape))

    @staticmethod
    def _points(shape) -> np.ndarray:
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)],
                        dtype=np.int64)

    def chip_from_landmarks(self, image: np.ndarray, points: np.ndarray,
                            box=None) -> np.ndarray:
        """The face chip for given 5-point landmarks (int (5, 2) pixel x, y), e.g. moved a
        little to augment the alignment.  ``box`` only fills dlib's detection rectangle
        (unused by get_face_chip); by default the landmarks' bounding box."""
        img = _rgb_image(image)
        pts = np.asarray(points)
        if pts.shape != (5, 2) or not np.issubdtype(pts.dtype, np.integer):
            raise ValueError(f"landmarks shall be a (5, 2) integer array, got {pts.shape} "
                             f"{pts.dtype}")
        dlib = self.dlib
        if box is None:
            box = (int(pts[:, 0].min()), int(pts[:, 1].min()),
                   int(pts[:, 0].max()) + 1, int(pts[:, 1].max()) + 1)
        shape = dlib.full_object_detection(dlib.rectangle(*_box(box)),
                                           [dlib.point(int(x), int(y)) for x, y in pts])
        chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.ascontiguousarray(np.asarray(chip, dtype=np.uint8))

    def embed(self, chip: np.ndarray) -> np.ndarray:
        """The 128-d float32 embedding of a 150 x 150 x 3 uint8 RGB face chip (dlib's
        ``compute_face_descriptor``, no jittering).  Same person: distance < 0.6."""
        img = _rgb_image(chip, "a face chip")
        if img.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
            raise ValueError(f"a face chip shall be {CHIP_SIZE}x{CHIP_SIZE}, got "
                             f"{img.shape[1]}x{img.shape[0]}")
        return np.asarray(self.facerec.compute_face_descriptor(img), dtype=np.float32)

    def embed_many(self, chips) -> np.ndarray:
        """Embeddings of many chips at once (dlib's batch call; same values as ``embed``):
        float32 (N, 128)."""
        imgs = [_rgb_image(c, "a face chip") for c in chips]
        for img in imgs:
            if img.shape[:2] != (CHIP_SIZE, CHIP_SIZE):
                raise ValueError(f"a face chip shall be {CHIP_SIZE}x{CHIP_SIZE}, got "
                                 f"{img.shape[1]}x{img.shape[0]}")
        if not imgs:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return np.array([np.asarray(v) for v in self.facerec.compute_face_descriptor(imgs)],
                        dtype=np.float32)


@functools.lru_cache(maxsize=1)
def load_face_models() -> FaceModels:
    """dlib's HOG detector, 5-point shape predictor and face embedder (cached; the CNN
    detector is loaded on first use).  FaceModelsMissing (a RuntimeError) names what to
    install when dlib or a model file is missing."""
    dlib = _import_dlib()
    landmarks = model_path("landmarks")
    embedder = model_path("embedder")
    return FaceModels(dlib=dlib, hog=dlib.get_frontal_face_detector(),
                      shape_predictor=dlib.shape_predictor(str(landmarks)),
                      facerec=dlib.face_recognition_model_v1(str(embedder)))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two embeddings (dlib: same person when < 0.6)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
