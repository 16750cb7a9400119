"""Conformance bitstreams of VFC (spec clause 12): generator, manifest, runner, planes dump.

``generate`` codes the streams of a *codec-features table* (CSV, one row per stream) and
writes, under one output directory::

    streams/<name>.vfc       the bitstreams, valid and invalid
    reference/<name>.npz     the reference decoder's output tensors of each valid stream
    manifest.json            everything a test needs: checksums, tolerances, expected errors
    index.md                 a generated table of the streams

Invalid streams are valid streams altered in one place (a header field, a CRC, a unit, an
HEVC parameter set); each alteration in ``ALTERATIONS`` targets one clause, and the
generator checks that the reference decoder refuses the result with that clause before it
records it.  ``run_suite`` runs any decoder (a command line) over a manifest and compares its
output with the references: sample planes bit-exactly (tier 1, clause 12.2), tensors
bit-exactly or within the tolerance of clause 12.3 (tier 2).

conformance/README.md documents the table columns, the manifest fields and the runner.

Where things are (a module imports only modules above it in this list)::

    errors             SuiteError
    requirements       the spec's requirement identifiers (clause 4.6): read_requirements
    features           the codec-features table: Features (its columns), read_features
    synthetic_data     the synthetic tensors and faces the valid streams code
    checksums          planes_md5, tensor_sha256 and the bit patterns they hash
    tolerances         the tolerances of clauses 12.3 and 13.7.3, correctly rounded log
    units              byte-level patching of a stream's units (for altered streams)
    alterations/       ALTERATIONS: how each invalid stream is made (layer.py, face.py)
    invalid            the invalid-streams table: InvalidRow, read_invalid
    manifest           the manifest as the runner reads it: schema, key checks, face_keys
    files              atomic, reproducible files (write_npz)
    reference_decoder  the reference decoder's outputs and refusals; decoder_main
    index              index.md and the descriptions of the streams
    generation         generate: coding, checking and writing a suite
    runner             run_suite: a decoder under test over a manifest, format_results

The bits of HEVC parameter sets are edited by ``refcodec.hevc.edit``.  The names below are
re-exported here (``refcodec.conformance.X``); private helpers live in their module.
"""

from .errors import SuiteError
from .features import (DATA_KINDS, DTYPE_NAMES, EXTRA_UNITS, FACE_KINDS, FEATURE_COLUMNS,
                       NAME_PATTERN, Features, channel_order, face_config, parse_features,
                       read_features)
from .synthetic_data import (EMBEDDING_DIM, EMBEDDING_SD, FACE_SIZE, feature_faces,
                             feature_tensors, integer_offset, synthetic, synthetic_face)
from .checksums import planes_bytes, planes_md5_hex, tensor_bits, tensor_sha256
from .tolerances import (PREDICTOR_IMAGE_TOLERANCE, correctly_rounded_log_table,
                         image_tolerance, log_reference_is_correctly_rounded, tolerance,
                         ulp_log2)
from .requirements import REQUIREMENT_ID, Requirement, read_requirements, requirement_ids
from .alterations import ALTERATIONS, Alteration
from .alterations.face import UNKNOWN_PREDICTOR_ID, UNKNOWN_PREDICTOR_SHA256
from .invalid import InvalidRow, default_invalid_rows, read_invalid
from .manifest import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, face_keys, load_manifest
from .files import atomic_write, write_npz
from .reference_decoder import (decode_outputs, decode_planes, decoder_main, face_textures,
                                reference_refusal)
from .index import describe_face, describe_layer, render_index
from .generation import (DEFAULT_SUITE_NAME, FACE_BASE_CLAUSES, FACE_ENHANCEMENT_CLAUSES,
                         FACE_PREDICTOR_CLAUSES, SKIPPABLE_UNITS, exercised_clauses, generate)
from .runner import (PLACEHOLDERS, Decoder, DecoderRun, as_source_dtype, check_faces,
                     check_output, check_planes, check_texture, command_decoder,
                     compare_embedding, compare_image, compare_tensor, format_results,
                     reference_faces, reference_tensor, run_stream, run_suite)

__all__ = [
    "SuiteError",
    "DATA_KINDS", "DTYPE_NAMES", "EXTRA_UNITS", "FACE_KINDS", "FEATURE_COLUMNS", "NAME_PATTERN",
    "Features", "channel_order", "face_config", "parse_features", "read_features",
    "EMBEDDING_DIM", "EMBEDDING_SD", "FACE_SIZE", "feature_faces", "feature_tensors",
    "integer_offset", "synthetic", "synthetic_face",
    "planes_bytes", "planes_md5_hex", "tensor_bits", "tensor_sha256",
    "PREDICTOR_IMAGE_TOLERANCE", "correctly_rounded_log_table", "image_tolerance",
    "log_reference_is_correctly_rounded", "tolerance", "ulp_log2",
    "REQUIREMENT_ID", "Requirement", "read_requirements", "requirement_ids",
    "ALTERATIONS", "Alteration", "UNKNOWN_PREDICTOR_ID", "UNKNOWN_PREDICTOR_SHA256",
    "InvalidRow", "default_invalid_rows", "read_invalid",
    "READABLE_SCHEMA_VERSIONS", "SCHEMA_VERSION", "face_keys", "load_manifest",
    "atomic_write", "write_npz",
    "decode_outputs", "decode_planes", "decoder_main", "face_textures", "reference_refusal",
    "describe_face", "describe_layer", "render_index",
    "DEFAULT_SUITE_NAME", "FACE_BASE_CLAUSES", "FACE_ENHANCEMENT_CLAUSES",
    "FACE_PREDICTOR_CLAUSES", "SKIPPABLE_UNITS", "exercised_clauses", "generate",
    "PLACEHOLDERS", "Decoder", "DecoderRun", "as_source_dtype", "check_faces", "check_output",
    "check_planes", "check_texture", "command_decoder", "compare_embedding", "compare_image",
    "compare_tensor", "format_results", "reference_faces", "reference_tensor", "run_stream",
    "run_suite",
]
