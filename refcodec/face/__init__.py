"""Scalable face layers (base: embedding, enhancement: residual texture), clause 13.

- ``entropy``: quantization and Exp-Golomb coding of the embedding (face_base);
- ``texture``: the HEVC / JPEG / JPEG 2000 texture codecs (face_enhancement);
- ``codec``: the face encoder (informative) and decoder (normative);
- ``models``: dlib's face detector, aligner and 128-d embedder (``refcodec[face]``);
- ``predictor``: the predictor networks (numpy inference) and their weights files.

Nothing is imported here eagerly: ``refcodec.bitstream`` imports ``entropy`` while the
rest imports ``refcodec.bitstream``.
"""
