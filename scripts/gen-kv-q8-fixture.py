#!/usr/bin/env python3
"""Independent reference for the q8 KV cache's row quantizer: rows of f32 values and the
Q8_0 blocks gguf-py (llama.cpp's own Python package, `gguf.quants.quantize`, which follows
ggml's quantize_row_q8_0_ref) makes of them, written to Tests/Fixtures/kv-q8_0.bin.

Rows: normal(0, 1) values at the scale of keys and values (x 4), a row whose values
are exact halves of the scale (ties: round half away from zero, not to even), a row with
an all-zero block, and a row of tiny values (f16 scales below the normal range).

File layout (little-endian): u32 rows, u32 cols, rows * cols f32 values, then
rows * cols / 32 * 34 bytes of Q8_0 blocks.
Run: python3 scripts/gen-kv-q8-fixture.py
"""
import pathlib
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize

OUT = pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Fixtures" / "kv-q8_0.bin"
COLS = 128
rng = np.random.default_rng(20261204)
rows = [rng.normal(0, 4, COLS) for _ in range(3)]
# d = 63.5 / 127 = 0.5 exactly, so x / d = k + 0.5: every value a tie.
ties = (rng.integers(-127, 127, COLS) + 0.5) * 0.5
ties[::32] = 63.5
rows.append(ties)
zero_block = rng.normal(0, 1, COLS)
zero_block[32:64] = 0
rows.append(zero_block)
rows.append(rng.normal(0, 1e-6, COLS))
values = np.array(rows, dtype=np.float32)
blocks = quantize(values, T.Q8_0).view(np.uint8)
OUT.write_bytes(struct.pack("<II", *values.shape) + values.tobytes() + blocks.tobytes())
print(OUT.name, values.shape, blocks.size, "bytes of blocks")
