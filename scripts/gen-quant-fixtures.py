#!/usr/bin/env python3
"""Independent reference for the GGUF block formats: random blocks dequantized by
gguf-py (llama.cpp's own Python package, `gguf.quants.dequantize`), written to
Tests/Fixtures/quant-<TYPE>.bin for KernelsTests.

File layout (little-endian): u32 type (ggml raw value), u32 rows, u32 cols,
then rows * rowBytes of block data, then rows * cols f32 values.
Scale fields (f16) are set to finite values in [-0.05, 0.05] so every block is
meaningful; everything else is random bytes. Run: python3 scripts/gen-quant-fixtures.py
"""
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

OUT = pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Fixtures"
ROWS, COLS = 3, 512
# Byte offsets of f16 scale fields inside one block, per type.
SCALES = {
    T.F16: [], T.BF16: [], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}

rng = np.random.default_rng(20261123)
for qtype, scale_offsets in SCALES.items():
    block_size, block_bytes = GGML_QUANT_SIZES[qtype]
    blocks = ROWS * COLS // block_size
    if qtype == T.F16:
        raw = rng.uniform(-2, 2, ROWS * COLS).astype(np.float16).view(np.uint8)
    elif qtype == T.BF16:
        raw = (rng.uniform(-2, 2, ROWS * COLS).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    else:
        raw = rng.integers(0, 256, blocks * block_bytes, dtype=np.uint8).reshape(blocks, block_bytes)
        for off in scale_offsets:
            halves = rng.uniform(-0.05, 0.05, blocks).astype(np.float16).view(np.uint8).reshape(blocks, 2)
            raw[:, off:off + 2] = halves
        raw = raw.reshape(-1)
    values = dequantize(raw.reshape(ROWS, -1), qtype).astype(np.float32).reshape(ROWS, COLS)
    assert np.isfinite(values).all()
    path = OUT / f"quant-{qtype.name}.bin"
    path.write_bytes(struct.pack("<III", int(qtype), ROWS, COLS) + raw.tobytes() + values.tobytes())
    print(path.name, raw.size, "bytes of blocks")
