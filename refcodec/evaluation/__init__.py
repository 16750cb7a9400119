"""Evaluation of VFC feature coding on real networks and real images (informative).

The paper's test conditions (section 4 of [CHEN2019], Table 3, Fig. 5) with what can be had
offline: real pretrained networks from PyPI packages (``refcodec.models``) and real
photographs shipped in scikit-image.  Everything runs on CPU, deterministically.

Image set (``image_set``)
    18 photographs of ``skimage.data`` (scikit-image 0.26.0; no download): astronaut,
    chelsea, coffee, rocket, motorcycle (left view of ``stereo_motorcycle``), camera, coins,
    clock, moon, text, page, retina, immunohistochemistry, hubble_deep_field, brick, grass,
    gravel, cell.  Grayscale ones are replicated to RGB.  Each is expanded by five variants,
    in this order (fractions of the photograph's height H and width W; a crop spans
    rows round(y0*H) .. round((y0+h)*H) and the same for columns):

        full          the whole photograph
        crop80-flip   centre crop of 80% x 80%, mirrored left-right
        crop70-tl     top-left crop of 70% x 70%
        crop70-br-flip  bottom-right crop of 70% x 70%, mirrored left-right
        crop50        centre crop of 50% x 50%

    followed by 41 more (``images._more_variants``: the whole photograph mirrored; crops of
    80, 70, 60 and 50 % at the four corners and the centre, plain and mirrored, those not
    already listed; the whole photograph scaled down to 50 % and 35 % of its sides, plain
    and mirrored), 46 variants in all.
    Input k (0-based) is variant k // 18 of photograph k % 18: the default N = 36 is every
    photograph whole and centre-cropped-flipped; N <= 828.  Other inputs: a folder, a list
    file or arrays (``sources``).
    ``detection_image_set`` (for the text detector): the two photographs with text
    (``text``, ``page``), each in six variants: whole, left 60%, right 60%, top 70%,
    bottom 70%, centre 70% x 70%, and four photographs without text (chelsea, coffee,
    rocket, astronaut, whole; there any detection is a false one), in the order
    text/full, page/full, chelsea, text/left60, page/left60, coffee, text/right60,
    page/right60, rocket, text/top70, page/top70, astronaut, then the remaining text
    variants: the default N = 6 is the first two triples; N <= 16.

Preprocessing: see ``refcodec.models.imagenet_preprocess`` (resize shorter side to 256,
bilinear with antialiasing in torch, centre crop 224) and ``craft_preprocess`` (own
resolution, longer side at most 384, sides multiples of 32).

Measures, per network, split point, configuration and QP (``refcodec.metrics``, Annex C):

* rate: stream bytes of the feature (all tensors crossing the cut, one VFC stream per
  input, every byte of the stream counted), compression rate = float32 size / stream
  bytes (over all inputs), coded fraction = its reciprocal (the "Comp.Rate" of Table 3),
  bits per element;
* classification fidelity: share of inputs whose top-1 ImageNet class from the
  reconstructed feature equals the one from the pristine feature (C.2); also the top-5
  agreement A_5;
* retrieval fidelity: every input is a query against the other N - 1 inputs (the
  references).  An input's embedding is MobileNetV2's 1280-d globally pooled feature (its
  penultimate layer).  References always use the pristine embeddings (only query features
  are coded, as in the paper); the pristine ranking of query q orders the references by
  cosine similarity to q's embedding from the pristine feature, the reconstructed ranking
  by cosine similarity to q's embedding from the reconstructed feature (ties to the lower
  index).  Retrieval fidelity = mean over queries of the bubble index of the two full
  rankings (N - 1 items; C.3);
* detection fidelity: CRAFT text boxes (``refcodec.models.craft.detect_text_boxes``) from
  the pristine and the reconstructed feature, F_image of C.4 (threshold 0), mean over
  inputs;
* encode and decode time per input (one thread).

* continuous fidelity per input: softmax KL and logit MSE (classification), F_image of
  Eq. 4 (detection); bootstrap intervals of every point and paired bootstrap intervals of
  the BD-rates (``stats``).

The retrieval references of a point are the pristine embeddings of the point's own inputs
(the same values as the unsplit network's, for every split).

Jobs are (network, input, split, configuration, QP); they run on Dask distributed (a
LocalCluster, or an existing cluster) or in a plain loop, with one torch thread per
worker, and the results depend on the job only, not on the engine or the worker count.
Each finished job is written at once to the results store (``store``), which a killed run
resumes from.

Modules: ``images`` (the bundled inputs), ``sources`` (folders, list files, lazy loading),
``configs`` (QPs, configurations), ``networks`` (built-in, any torch module, named
architectures), ``jobs`` (the tasks of one job), ``engine`` (Dask or a loop, progress),
``store`` (the results store), ``summary`` (aggregation, BD-rates, Fig. 5), ``stats``
(bootstrap intervals), ``driver`` (EvalOptions, evaluate, result_from_store), ``report``
(CSV, JSON, Markdown, plots); this package re-exports their public names.

From Python, any torch module::

    from refcodec.evaluation import evaluate
    result = evaluate(model=my_model, split=["layer2", "layer3"], images="/data/val",
                      qps=(22, 32, 42), workers=2, store="out/my.sqlite")
"""

from .configs import BASELINE, PRESET_CONFIGS, QPS, encoder_config, parse_config
from .driver import EvalOptions, build_result, evaluate, plan, result_from_store
from .engine import ENGINES, Progress, connect
from .images import (CORE_PHOTOS, DETECTION_NEGATIVE_PHOTOS, DETECTION_TEXT_PHOTOS,
                     TEXT_VARIANTS, VARIANTS, EvalImage, apply_variant, detection_image_set,
                     detection_set_specs, image_set, image_set_specs, images_for, load_photo)
from .jobs import Failed, Job, Skipped, classification_measures, reference_embeddings, run_job
from .networks import (ARCHITECTURES, NetworkSpec, fx_split, load_architecture, named_network,
                       user_network)
from .report import (NETWORK_TITLES, SUMMARY_COLUMNS, bd_table, detail_table, fig5_table,
                     markdown_report, plot, render, render_store, table3, write_csv,
                     write_reports)
from .sources import (EvaluationError, ImageRef, ImageUnreadable, folder_images, list_images,
                      load_image, resolve_images)
from .stats import bd_rate_intervals, point_statistics
from .store import ResultStore, job_key
from .summary import (FIDELITIES, aggregate, bd_rates, fig5, jpeg_size, network_input_image,
                      retrieval_fidelity_of)

__all__ = [
    # images and sources
    "CORE_PHOTOS", "VARIANTS", "TEXT_VARIANTS", "DETECTION_TEXT_PHOTOS",
    "DETECTION_NEGATIVE_PHOTOS", "EvalImage", "load_photo", "apply_variant", "image_set",
    "detection_image_set", "images_for", "image_set_specs", "detection_set_specs",
    "ImageRef", "ImageUnreadable", "EvaluationError", "folder_images", "list_images",
    "load_image", "resolve_images",
    # configs
    "QPS", "BASELINE", "PRESET_CONFIGS", "parse_config", "encoder_config",
    # networks
    "ARCHITECTURES", "NetworkSpec", "fx_split", "load_architecture", "named_network",
    "user_network",
    # jobs, engine, store
    "Job", "Skipped", "Failed", "run_job", "reference_embeddings", "classification_measures",
    "ENGINES", "Progress", "connect", "ResultStore", "job_key",
    # summary and statistics
    "retrieval_fidelity_of", "aggregate", "FIDELITIES", "bd_rates", "jpeg_size",
    "network_input_image", "fig5", "point_statistics", "bd_rate_intervals",
    # driver
    "EvalOptions", "evaluate", "plan", "build_result", "result_from_store",
    # report
    "SUMMARY_COLUMNS", "NETWORK_TITLES", "write_csv", "table3", "detail_table", "bd_table",
    "fig5_table", "plot", "write_reports", "render", "render_store", "markdown_report",
]
