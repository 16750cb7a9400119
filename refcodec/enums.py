"""Enumerations of the VFC syntax elements (clause 8) and the level limits (clause 11).

Values not listed are reserved: a decoder refuses them with UnsupportedFeature.
"""

from __future__ import annotations

import dataclasses
import enum


class UnitType(enum.IntEnum):
    """unit_type (clause 8.2.1).  0 and 6..254 are reserved.  FACE_BASE and
    FACE_ENHANCEMENT (format 1.1, clause 13) are skippable units; LAYER_HEADER_EXT (format
    1.2) is a layer_header() with layer_header_ext() (clause 8.3.15), a critical unit."""

    LAYER_HEADER = 1
    LAYER_DATA = 2
    FACE_BASE = 3
    FACE_ENHANCEMENT = 4
    LAYER_HEADER_EXT = 5
    END_OF_STREAM = 255


#: The skippable_flag each known unit type shall carry (clause 8.2.2): the face units can
#: be ignored by a decoder that only wants the feature layers (a version 1.0 decoder does).
UNIT_SKIPPABLE = {UnitType.LAYER_HEADER: False, UnitType.LAYER_DATA: False,
                  UnitType.FACE_BASE: True, UnitType.FACE_ENHANCEMENT: True,
                  UnitType.LAYER_HEADER_EXT: False, UnitType.END_OF_STREAM: False}
#: The lowest version_minor in which each unit type is defined (clause 8.2.1): in a stream
#: of a lower version_minor the type is reserved, as it was in that version.
UNIT_VERSION_MINOR = {UnitType.FACE_BASE: 1, UnitType.FACE_ENHANCEMENT: 1,
                      UnitType.LAYER_HEADER_EXT: 2}


class Profile(enum.IntEnum):
    """profile_idc (clause 8.1.3).  0 and 2..255 are reserved."""

    MAIN = 1


class SourceLayout(enum.IntEnum):
    """source_layout (clause 8.3.2).  2..255 are reserved."""

    NCHW = 0
    NHWC = 1


class SourceDtype(enum.IntEnum):
    """source_dtype (clause 8.3.3).  3..255 are reserved."""

    FLOAT32 = 0
    FLOAT16 = 1
    BFLOAT16 = 2


class QuantizerType(enum.IntEnum):
    """quantizer_type (clause 8.3.6).  4..255 are reserved; SQRT (format 1.2) is reserved
    in a stream whose version_minor is below 2."""

    UNIFORM = 0
    LOG = 1
    INTEGER = 2
    SQRT = 3


class PackingType(enum.IntEnum):
    """packing_type (clause 8.3.9).  3..255 are reserved; DENSE (format 1.2) is reserved
    in a stream whose version_minor is below 2."""

    CHANNEL_PER_PICTURE = 0
    TILED = 1
    DENSE = 2


class ParamFormat(enum.IntEnum):
    """param_format (clause 8.3.15, format 1.2): the number format of quant_params.
    2..255 are reserved."""

    BINARY32 = 0
    BINARY16 = 1


class PermutationCoding(enum.IntEnum):
    """permutation_coding (clause 8.3.16, format 1.2): how channel_permutation is coded.
    3..255 are reserved."""

    U32 = 0        # one u(32) per entry, as in versions 1.0 and 1.1
    COMPACT = 1    # PermBits bits per entry, byte aligned at the end
    GROUPED = 2    # a group of group_bits bits per channel: the channels sorted by group


class PadMode(enum.IntEnum):
    """pad_mode (clause 8.3.10).  2..255 are reserved."""

    REPLICATE = 0
    ZERO = 1


class PayloadCodec(enum.IntEnum):
    """payload_codec (clause 8.3.11).  1..255 are reserved."""

    HEVC = 0


class Embedder(enum.IntEnum):
    """embedder_idc (clause 13.3.2): the network whose embedding space face_base carries.
    2..255 are reserved."""

    UNSPECIFIED = 0     # agreed by the application, not signalled
    DLIB_RESNET_V1 = 1  # dlib's dlib_face_recognition_resnet_model_v1 (128-d)


class PredictorType(enum.IntEnum):
    """predictor_type (clause 13.4.3).  2..255 are reserved."""

    NONE = 0        # the prediction is 0: the residual is the image itself
    NETWORK = 1     # a predictor network named by predictor_id and predictor_sha256


class TextureCodec(enum.IntEnum):
    """texture_codec (clause 13.4.6).  3..255 are reserved."""

    HEVC = 0
    JPEG = 1
    JPEG2000 = 2


ALLOWED_BIT_DEPTHS = (8, 10, 12)
#: image_channels of a face_enhancement() (clause 13.4.2).
ALLOWED_IMAGE_CHANNELS = (1, 3)


@dataclasses.dataclass(frozen=True)
class DtypeInfo:
    """Facts about a source dtype used by clauses 8.3.7 and 12.3."""

    precision: int        # significand bits, including the implicit one
    min_exponent: int     # exponent of the smallest normal number
    max_finite: float     # largest finite value
    itemsize: int         # bytes per element


DTYPE_INFO = {
    SourceDtype.FLOAT32: DtypeInfo(24, -126, 3.4028234663852886e38, 4),
    SourceDtype.FLOAT16: DtypeInfo(11, -14, 65504.0, 2),
    SourceDtype.BFLOAT16: DtypeInfo(8, -126, 3.3895313892515355e38, 2),
}


@dataclasses.dataclass(frozen=True)
class Level:
    """The limits of one level (clause 11.2).  A decoder may refuse anything beyond them
    before it allocates memory for it."""

    level_idc: int
    max_layers: int
    max_layer_elements: int       # batch_size * num_channels * height * width
    max_num_channels: int         # num_channels
    max_pictures: int             # pictures in one layer's HEVC payload
    max_picture_size: int         # picture width and height, in samples
    max_picture_samples: int      # width * height of one picture
    max_layer_samples: int        # decoded samples of one layer: pictures * width * height
    max_unit_payload: int         # len_unit_payload, bytes
    max_faces: int                # face_base units in one stream (clause 13)
    max_embedding_dim: int        # embedding_dim of a face_base()
    # totals over the whole stream (format 1.2), checked as the units are read
    max_decoded_bytes: int        # bytes of every output array: layers, embeddings, images
    max_units: int                # units in the stream, skipped ones and end_of_stream included
    max_embedding_values: int     # embedding_dim summed over every face_base unit

    def layer_excess(self, elements: int, channels: int, picture_width: int,
                     picture_height: int, pictures: int) -> tuple[str, int, int] | None:
        """The first per-layer limit a layer of these sizes exceeds, as (what, value,
        limit), or None when it fits (the encoder's view of clause 11.2; the reader checks
        the same limits field by field as it reads them)."""
        for what, value, limit in (
                ("elements (N*C*H*W)", elements, self.max_layer_elements),
                ("channels", channels, self.max_num_channels),
                ("picture side", max(picture_width, picture_height), self.max_picture_size),
                ("picture samples", picture_width * picture_height, self.max_picture_samples),
                ("pictures", pictures, self.max_pictures),
                ("decoded samples", pictures * picture_width * picture_height,
                 self.max_layer_samples)):
            if value > limit:
                return what, value, limit
        return None

    def capped(self, other: "Level | None" = None, **limits: int) -> "Level":
        """These limits lowered to ``other``'s (field by field) and to ``limits``: the
        lower limits a decoder may be configured with (clause 11.2)."""
        values = dataclasses.asdict(self)
        if other is not None:
            values = {k: min(v, getattr(other, k)) for k, v in values.items()}
        for name, value in limits.items():
            if name not in values or name == "level_idc":
                raise TypeError(f"no level limit {name!r}")
            values[name] = min(values[name], value)
        return Level(**values)


LEVELS = {
    10: Level(10, max_layers=16, max_layer_elements=1 << 24, max_num_channels=4096,
              max_pictures=1 << 16, max_picture_size=4096, max_picture_samples=1 << 22,
              max_layer_samples=1 << 26, max_unit_payload=1 << 28, max_faces=16,
              max_embedding_dim=4096, max_decoded_bytes=1 << 28, max_units=1 << 10,
              max_embedding_values=1 << 14),
    20: Level(20, max_layers=256, max_layer_elements=1 << 28, max_num_channels=65536,
              max_pictures=1 << 20, max_picture_size=8192, max_picture_samples=1 << 25,
              max_layer_samples=1 << 30, max_unit_payload=1 << 31, max_faces=256,
              max_embedding_dim=65535, max_decoded_bytes=1 << 32, max_units=1 << 16,
              max_embedding_values=1 << 20),
}
