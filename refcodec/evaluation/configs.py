"""The QPs and the coding configurations of the evaluation (presets and NAME=key:value)."""

from __future__ import annotations

from .. import codec

QPS = (12, 22, 32, 42)

#: The paper's configuration (spec Annex B): log quantizer, 8 bits, one parameter set per
#: tensor, one channel per picture (packing "auto": maps smaller than 16 x 16 after padding,
#: which libx265 cannot code, are tiled, as Annex B.3), QP = slice QP.
BASELINE = "baseline"
PRESET_CONFIGS = {
    "baseline": {},
    "uniform": {"quantizer": "uniform"},
    "10bit": {"bit_depth": 10},
    "per_channel": {"per_channel": True},
    "tiled": {"packing": "tiled"},
}
_CONFIG_KEYS = {"quantizer": str, "bit_depth": int, "per_channel": lambda v: v in (
    "1", "true", "True", "yes"), "packing": str, "pad_mode": str, "preset": str}


def parse_config(spec: str) -> tuple[str, dict]:
    """``name`` of PRESET_CONFIGS, or ``name=key:value,key:value`` with keys quantizer,
    bit_depth, per_channel, packing, pad_mode, preset (EncoderConfig fields)."""
    if "=" not in spec:
        if spec not in PRESET_CONFIGS:
            raise ValueError(f"unknown configuration {spec!r}; presets: "
                             f"{', '.join(PRESET_CONFIGS)}, or name=key:value,...")
        return spec, dict(PRESET_CONFIGS[spec])
    name, _, body = spec.partition("=")
    fields = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        if key not in _CONFIG_KEYS:
            raise ValueError(f"configuration {name!r}: unknown key {key!r}")
        fields[key] = _CONFIG_KEYS[key](value)
    codec.EncoderConfig(**fields)     # validate
    return name, fields


def encoder_config(fields: dict, qp: int) -> codec.EncoderConfig:
    return codec.EncoderConfig(qp=qp, **fields)
