"""``python -m refcodec.conformance decode INPUT OUTPUT.npz``: the reference decoder's
{output} for the runner (``reference_decoder.decoder_main``)."""

from .reference_decoder import decoder_main

if __name__ == "__main__":
    raise SystemExit(decoder_main())
