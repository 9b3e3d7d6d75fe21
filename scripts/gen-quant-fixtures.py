#!/usr/bin/env python3
"""Independent reference for the GGUF block formats: blocks dequantized by gguf-py
(llama.cpp's own Python package, `gguf.quants.dequantize`), written to
Tests/Fixtures/quant-<TYPE>.bin for KernelsTests.

Rows: RANDOM_ROWS rows of random bytes whose f16 scale fields are set to finite
values in [-0.05, 0.05] (every bit pattern of the codes occurs), then, for the
formats gguf-py can quantize (not the K formats), QUANTIZED_ROWS rows made by
`gguf.quants.quantize` from normal(0, 1) floats.

File layout (little-endian): u32 type (ggml raw value), u32 rows, u32 cols,
then rows * rowBytes of block data, rows * cols f32 dequantized values,
cols f32 x (uniform in [-1, 1]), rows f64 dot products values . x (in f64).
Run: python3 scripts/gen-quant-fixtures.py
"""
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import QuantError, dequantize, quantize

OUT = pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Fixtures"
RANDOM_ROWS, QUANTIZED_ROWS, COLS = 3, 2, 512
# Byte offsets of f16 scale fields inside one block, per type.
SCALES = {
    T.F16: [], T.BF16: [], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}

rng = np.random.default_rng(20261123)
for qtype, scale_offsets in SCALES.items():
    block_size, block_bytes = GGML_QUANT_SIZES[qtype]
    blocks = RANDOM_ROWS * COLS // block_size
    if qtype == T.F16:
        raw = rng.uniform(-2, 2, RANDOM_ROWS * COLS).astype(np.float16).view(np.uint8)
    elif qtype == T.BF16:
        raw = (rng.uniform(-2, 2, RANDOM_ROWS * COLS).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    else:
        raw = rng.integers(0, 256, blocks * block_bytes, dtype=np.uint8).reshape(blocks, block_bytes)
        for off in scale_offsets:
            halves = rng.uniform(-0.05, 0.05, blocks).astype(np.float16).view(np.uint8).reshape(blocks, 2)
            raw[:, off:off + 2] = halves
        raw = raw.reshape(-1)
    raw = raw.reshape(RANDOM_ROWS, -1)
    try:
        floats = rng.normal(0, 1, (QUANTIZED_ROWS, COLS)).astype(np.float32)
        raw = np.concatenate([raw, quantize(floats, qtype).view(np.uint8).reshape(QUANTIZED_ROWS, -1)])
    except (QuantError, NotImplementedError):
        pass
    rows = raw.shape[0]
    values = dequantize(raw, qtype).astype(np.float32).reshape(rows, COLS)
    assert np.isfinite(values).all()
    x = rng.uniform(-1, 1, COLS).astype(np.float32)
    dots = values.astype(np.float64) @ x.astype(np.float64)
    path = OUT / f"quant-{qtype.name}.bin"
    path.write_bytes(struct.pack("<III", int(qtype), rows, COLS) + raw.tobytes() + values.tobytes()
                     + x.tobytes() + dots.astype("<f8").tobytes())
    print(path.name, raw.size, "bytes of blocks")
