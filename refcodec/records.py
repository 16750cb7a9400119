"""Frozen dataclasses for parsed VFC headers.

construct Containers never leave ``refcodec.bitstream``: everything else works with these
records.  Attribute names are the syntax element names of the specification; derived
values (clause 8.3.14) are properties, never stored.
"""

from __future__ import annotations

import dataclasses
import functools

from .enums import (DTYPE_INFO, Embedder, PackingType, PadMode, ParamFormat, PayloadCodec,
                    PermutationCoding, PredictorType, QuantizerType, SourceDtype, SourceLayout,
                    TextureCodec, UnitType)
from .packing import Layout


@dataclasses.dataclass(frozen=True)
class StreamHeader:
    version_major: int
    version_minor: int
    profile_idc: int
    level_idc: int
    num_layers: int


@dataclasses.dataclass(frozen=True)
class QuantParams:
    """One parameter set of the quantizer (clause 8.3.7).

    ``min_value``/``max_value`` for the uniform and log quantizers, ``offset_value`` for the
    integer quantizer; the unused attributes are None.  Values are exact binary32 numbers
    (exact binary16 ones when the layer's param_format is BINARY16, clause 8.3.15).
    """

    min_value: float | None = None
    max_value: float | None = None
    offset_value: float | None = None


@dataclasses.dataclass(frozen=True)
class LayerHeader:
    layer_id: str
    source_layout: SourceLayout
    source_dtype: SourceDtype
    batch_size: int
    num_channels: int
    height: int
    width: int
    sample_bit_depth: int
    quantizer_type: QuantizerType
    per_channel_quant_flag: bool
    quant_params: tuple[QuantParams, ...]
    channel_permutation: tuple[int, ...] | None
    packing_type: PackingType
    tile_rows: int
    tile_cols: int
    pad_mode: PadMode
    pad_bottom: int
    pad_right: int
    payload_codec: PayloadCodec = PayloadCodec.HEVC
    # layer_header_ext() (clause 8.3.15, format 1.2): both None when it is absent (a
    # layer_header unit), both set when present (a layer_header_ext unit)
    param_format: ParamFormat | None = None
    permutation_coding: PermutationCoding | None = None
    # grouped_permutation() (PermutationCoding GROUPED, clause 8.3.16): group_bits and the
    # channel_group of every channel, None otherwise; channel_permutation is then the order
    # they give (clause 8.3.8)
    group_bits: int | None = None
    channel_groups: tuple[int, ...] | None = None

    # ---- derived variables (clause 8.3.14) ----
    @functools.cached_property
    def layout(self) -> Layout:
        """The picture geometry of the layer (packing.Layout holds its formulas)."""
        return Layout(self.batch_size, self.num_channels, self.height, self.width,
                      self.tile_rows, self.tile_cols, self.pad_bottom, self.pad_right,
                      self.pad_mode == PadMode.REPLICATE, self.channel_permutation,
                      self.packing_type == PackingType.DENSE)

    @property
    def has_ext(self) -> bool:
        """Whether layer_header() holds layer_header_ext() (a layer_header_ext unit)."""
        return self.param_format is not None or self.permutation_coding is not None

    @property
    def unit_type(self) -> UnitType:
        """The unit that carries this header: LAYER_HEADER_EXT when it has the extension."""
        return UnitType.LAYER_HEADER_EXT if self.has_ext else UnitType.LAYER_HEADER

    @property
    def uses_format12(self) -> bool:
        """Whether the layer uses the syntax of version 1.2 (a layer_header_ext unit,
        packing_type 2 or quantizer_type 3), which needs version_minor 2 (clause 8.1.2)."""
        return (self.has_ext or self.packing_type == PackingType.DENSE
                or self.quantizer_type == QuantizerType.SQRT)

    @property
    def param_format_value(self) -> ParamFormat:
        """ParamFormat (clause 8.3.14)."""
        return self.param_format if self.param_format is not None else ParamFormat.BINARY32

    @property
    def permutation_coding_value(self) -> PermutationCoding:
        """PermutationCoding (clause 8.3.14)."""
        return (self.permutation_coding if self.permutation_coding is not None
                else PermutationCoding.U32)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The tensor shape in the source layout."""
        if self.source_layout == SourceLayout.NHWC:
            return (self.batch_size, self.height, self.width, self.num_channels)
        return (self.batch_size, self.num_channels, self.height, self.width)

    @property
    def num_elements(self) -> int:
        return self.batch_size * self.num_channels * self.height * self.width

    @property
    def output_bytes(self) -> int:
        """The bytes of the decoded tensor in its source dtype."""
        return self.num_elements * DTYPE_INFO[self.source_dtype].itemsize

    @property
    def num_slots(self) -> int:
        """NumSlots: channel maps to code, batch_size * num_channels."""
        return self.batch_size * self.num_channels

    @property
    def coded_tile_height(self) -> int:
        return self.layout.tile_height

    @property
    def coded_tile_width(self) -> int:
        return self.layout.tile_width

    @property
    def tiles_per_picture(self) -> int:
        return self.layout.tiles

    @property
    def picture_height(self) -> int:
        return self.layout.picture_shape[0]

    @property
    def picture_width(self) -> int:
        return self.layout.picture_shape[1]

    @property
    def num_pictures(self) -> int:
        return self.layout.num_pictures

    @property
    def max_sample_value(self) -> int:
        return (1 << self.sample_bit_depth) - 1


@dataclasses.dataclass(frozen=True)
class Layer:
    """One coded layer: its header and its layer_data() unit."""

    index: int           # position of the layer in the stream (0-based)
    header: LayerHeader
    sample_md5: bytes
    hevc_payload: bytes
    header_offset: int   # byte offset of the layer_header unit in the stream
    data_offset: int     # byte offset of the layer_data unit in the stream
    payload_offset: int  # byte offset of hevc_payload in the stream


@dataclasses.dataclass(frozen=True)
class FaceBase:
    """A face_base() unit (clause 13.3): the quantized, Exp-Golomb coded face embedding.

    ``levels`` are the decoded quantization levels (clause 13.5), read while checking the
    unit; the embedding is ``refcodec.face.entropy.dequantize(levels, embedding_step)``.
    """

    face_id: str
    embedder_idc: Embedder
    embedding_dim: int
    embedding_step: float
    eg_order: int
    levels: tuple[int, ...]
    offset: int            # byte offset of the unit in the stream
    payload_offset: int    # byte offset of embedding_payload


@dataclasses.dataclass(frozen=True)
class FaceEnhancement:
    """A face_enhancement() unit (clause 13.4): the residual texture of a face image."""

    face_id: str
    image_height: int
    image_width: int
    image_channels: int
    predictor_type: PredictorType
    predictor_id: str | None          # None when predictor_type is NONE
    predictor_sha256: bytes | None
    residual_min: int
    residual_max: int
    texture_codec: TextureCodec
    texture_md5: bytes
    texture_payload: bytes
    offset: int            # byte offset of the unit in the stream
    payload_offset: int    # byte offset of texture_payload

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_height, self.image_width, self.image_channels)


@dataclasses.dataclass(frozen=True)
class Face:
    """One coded face: its base layer and, optionally, its enhancement layer."""

    index: int             # position of the face_base unit among the stream's faces
    base: FaceBase
    enhancement: FaceEnhancement | None = None


@dataclasses.dataclass(frozen=True)
class SkippedUnit:
    unit_type: int
    offset: int
    length: int


@dataclasses.dataclass(frozen=True)
class Stream:
    header: StreamHeader
    layers: tuple[Layer, ...]
    skipped_units: tuple[SkippedUnit, ...] = ()
    size: int = 0
    faces: tuple[Face, ...] = ()

    def layer(self, layer_id: str) -> Layer:
        for layer in self.layers:
            if layer.header.layer_id == layer_id:
                return layer
        raise KeyError(layer_id)


def version_minor_of(headers, has_faces: bool) -> int:
    """The version_minor an encoder writes (clause 8.1.2): the lowest whose syntax the
    stream uses: 2 when a layer uses the syntax of version 1.2, else 1 with faces, else 0."""
    if any(h.uses_format12 for h in headers):
        return 2
    return 1 if has_faces else 0


# The bytes of a decoder's output arrays, which the level's max_decoded_bytes bounds
# (clause 11.2): the reader counts them as it reads the units, the encoder when it chooses
# the level.  A layer's tensor is LayerHeader.output_bytes.

def embedding_bytes(embedding_dim: int) -> int:
    """A face's embedding: binary32 values."""
    return 4 * embedding_dim


def face_image_bytes(height: int, width: int, channels: int) -> int:
    """A face's image and its decoded texture: 8-bit samples each."""
    return 2 * height * width * channels
