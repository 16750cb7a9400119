"""Evaluation metrics for feature coding (spec Annex C, informative).

They compare what a network produces from pristine features with what it produces from
reconstructed (decoded) features; they take network outputs as numpy arrays and need no
deep-learning framework.  Detection pairing and PCHIP BD-rate use scipy.

- Annex C.1 ``compression_rate``, ``coded_fraction``, ``bits_per_element``,
  ``stream_rates`` (a VFC stream, whole and per layer)
- Annex C.2 ``classification_fidelity`` (top-1 unchanged; top-k agreement)
- Annex C.3 ``retrieval_fidelity``, ``bubble_index`` (Algorithm 1 of [CHEN2019] as a
  similarity, O(n log n)), ``rank_references``
- Annex C.4 ``detection_fidelity``, ``match_detections``, ``box_iou``
- Annex C.5 ``bd_rate`` (cubic or PCHIP)
"""

from .bdrate import bd_rate
from .classification import classification_fidelity, top1_labels, top_k_classes
from .detection import (DetectionMatch, Detections, as_detections, box_iou, confidence_term,
                        detection_fidelity, image_detection_fidelity, match_detections)
from .rate import (PAPER_DTYPE, RateReport, StreamRates, bits_per_element, coded_fraction,
                   compression_rate, dtype_size, layer_coded_bytes, original_bytes,
                   stream_rates)
from .retrieval import (bubble_index, bubble_indices, bubble_swaps, completed_rankings,
                        count_inversions, inversion_counts, rank_references,
                        retrieval_fidelity)

__all__ = [
    "PAPER_DTYPE", "RateReport", "StreamRates", "bits_per_element", "coded_fraction",
    "compression_rate", "dtype_size", "layer_coded_bytes", "original_bytes", "stream_rates",
    "classification_fidelity", "top1_labels", "top_k_classes",
    "bubble_index", "bubble_indices", "bubble_swaps", "completed_rankings", "count_inversions",
    "inversion_counts", "rank_references", "retrieval_fidelity",
    "DetectionMatch", "Detections", "as_detections", "box_iou", "confidence_term",
    "detection_fidelity", "image_detection_fidelity", "match_detections",
    "bd_rate",
]
