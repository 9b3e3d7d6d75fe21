#!/usr/bin/env python3
"""Generate Sources/QwenEmbed/Tokenizer/UnicodeTables.swift.

The tokenizer needs, per Unicode scalar:
  * its class for Qwen's pre-tokenization pattern: \\p{L} (letter), \\p{N} (number),
    \\s (White_Space as the Rust regex crate defines it) or other;
  * whether it may change under NFC ("unsafe": canonical combining class != 0, or
    NFC_Quick_Check != Yes), so already-normalized text is recognised by one table look-up;
and, for the NFC slow path, canonical combining classes, full canonical decompositions,
and the primary-composite pairs (composition exclusions removed; Hangul is algorithmic).

Usage:
    pip install unicodedata2==16.0.0
    python3 scripts/gen-unicode-tables.py [-o PATH]

Unicode version: 16.0.0, from the `unicodedata2` PyPI package pinned at 16.0.0. That is
the version of the Rust `regex` crate inside tiktoken 0.14 (its \\p{L} includes Kawi,
Nag Mundari (15.0), CJK extension I (15.1), Todhri (16.0), but not Unicode 17 scripts),
so the pre-tokenizer classes agree with tiktoken's; NFC uses the same version.
`--python-unicodedata` takes the data from Python's own `unicodedata` instead (Python
3.11: Unicode 14.0.0; characters added since then then classify differently).
"""
import argparse
import sys

# Unicode White_Space (PropList.txt); unchanged since Unicode 6.x. This is what `\s`
# means in the Rust regex crate (and so in tiktoken) with Unicode enabled.
WHITE_SPACE = (
    list(range(0x09, 0x0E)) + [0x20, 0x85, 0xA0, 0x1680] + list(range(0x2000, 0x200B))
    + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

SBASE, LBASE, VBASE, TBASE = 0xAC00, 0x1100, 0x1161, 0x11A7
LCOUNT, VCOUNT, TCOUNT = 19, 21, 28
SCOUNT = LCOUNT * VCOUNT * TCOUNT


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--python-unicodedata", action="store_true")
    ap.add_argument("-o", default="Sources/QwenEmbed/Tokenizer/UnicodeTables.swift")
    args = ap.parse_args()
    if args.python_unicodedata:
        import unicodedata as ud
        source = "Python %d.%d unicodedata" % sys.version_info[:2]
    else:
        try:
            import unicodedata2 as ud
        except ImportError:
            sys.exit("needs unicodedata2: pip install unicodedata2==16.0.0")
        if ud.unidata_version != "16.0.0":
            sys.exit("unicodedata2 has Unicode %s; tiktoken's regex uses 16.0.0: "
                     "pip install unicodedata2==16.0.0" % ud.unidata_version)
        source = "unicodedata2 %s (PyPI), the Unicode version of tiktoken 0.14's regex" % ud.unidata_version
    version = ud.unidata_version

    N = 0x110000
    ws = set(WHITE_SPACE)

    # Canonical decompositions (single level), excluding Hangul syllables.
    decomp1 = {}
    for cp in range(N):
        if 0xD800 <= cp < 0xE000:
            continue
        d = ud.decomposition(chr(cp))
        if d and not d.startswith("<"):
            decomp1[cp] = [int(x, 16) for x in d.split()]

    def full_decomp(cp):
        if cp not in decomp1:
            return [cp]
        out = []
        for x in decomp1[cp]:
            out.extend(full_decomp(x))
        return out

    ccc = {}
    for cp in range(N):
        if 0xD800 <= cp < 0xE000:
            continue
        c = ud.combining(chr(cp))
        if c:
            ccc[cp] = c

    # Primary composites: two-scalar canonical decompositions whose composite is not
    # excluded (Full_Composition_Exclusion). A composite is excluded exactly when NFC
    # of the composite is not itself.
    comp = {}
    for cp, d in decomp1.items():
        if len(d) != 2:
            continue
        if ud.normalize("NFC", chr(cp)) != chr(cp):
            continue  # excluded
        comp[(d[0], d[1])] = cp
    seconds = {b for (_, b) in comp}

    # NFC unsafe: ccc != 0, or NFC_QC = No (NFC(c) != c), or NFC_QC = Maybe (may
    # combine with a preceding character: second of a primary composite, Hangul V/T).
    def unsafe(cp):
        if cp in ccc:
            return True
        if cp in seconds:
            return True
        if VBASE <= cp < VBASE + VCOUNT or TBASE < cp < TBASE + TCOUNT:
            return True
        if 0xD800 <= cp < 0xE000:
            return False
        return ud.normalize("NFC", chr(cp)) != chr(cp)

    props = bytearray(N)
    for cp in range(N):
        if 0xD800 <= cp < 0xE000:
            continue
        ch = chr(cp)
        cat = ud.category(ch)
        if cp in ws:
            v = 3
        elif cat[0] == "L":
            v = 1
        elif cat[0] == "N":
            v = 2
        else:
            v = 0
        if unsafe(cp):
            v |= 4
        props[cp] = v

    # Two-stage table; pick the block size giving the smallest result.
    best = None
    for shift in (5, 6, 7, 8):
        bs = 1 << shift
        blocks, index = {}, []
        for b in range(0, N, bs):
            t = bytes(props[b:b + bs])
            if t not in blocks:
                blocks[t] = len(blocks)
            index.append(blocks[t])
        size = len(blocks) * bs + len(index) * (1 if len(blocks) <= 256 else 2)
        if best is None or size < best[0]:
            best = (size, shift, blocks, index)
    _, shift, blocks, index = best
    assert len(blocks) <= 256, "stage-2 block count must fit a byte"
    stage2 = b"".join(sorted(blocks, key=lambda t: blocks[t]))

    def wrap(s, width=120):
        return "\n".join(s[i:i + width] for i in range(0, len(s), width))

    stage1_hex = "".join("%02x" % i for i in index)
    stage2_chr = "".join(chr(ord("A") + v) for v in stage2)

    ccc_hex = "".join("%06x%02x" % (cp, c) for cp, c in sorted(ccc.items()))
    # Decompositions: per entry "cp(6) n(1) scalars(6 each)".
    dec = []
    for cp in sorted(decomp1):
        f = full_decomp(cp)
        assert 1 <= len(f) <= 15
        dec.append("%06x%x" % (cp, len(f)) + "".join("%06x" % x for x in f))
    dec_hex = "".join(dec)
    comp_hex = "".join("%06x%06x%06x" % (a, b, c) for (a, b), c in sorted(comp.items()))

    out = []
    out.append("// GENERATED by scripts/gen-unicode-tables.py -- do not edit.")
    if args.python_unicodedata:
        out.append("// Regenerate: python3 scripts/gen-unicode-tables.py --python-unicodedata")
    else:
        out.append("// Regenerate: pip install unicodedata2==16.0.0 && python3 scripts/gen-unicode-tables.py")
    out.append("// Unicode %s (data source: %s)." % (version, source))
    out.append("//")
    out.append("// Scalar properties: two-stage table, block size %d. Stage 1 (hex bytes) gives the" % (1 << shift))
    out.append("// block of scalar >> %d; stage 2 holds one character per scalar, 'A' + value, where" % shift)
    out.append("// value & 3 is the pre-tokenizer class (0 other, 1 \\p{L}, 2 \\p{N}, 3 White_Space)")
    out.append("// and value & 4 marks scalars that may change under NFC (ccc != 0 or NFC_QC != Yes).")
    out.append("// Newlines inside the literals are ignored by the decoder.")
    out.append("")
    out.append("let unicodeTablesVersion = \"%s\"" % version)
    out.append("let unicodePropShift = %d" % shift)
    out.append("")
    out.append("let unicodePropStage1Hex = \"\"\"\n%s\n\"\"\"" % wrap(stage1_hex))
    out.append("")
    out.append("let unicodePropStage2 = \"\"\"\n%s\n\"\"\"" % wrap(stage2_chr))
    out.append("")
    out.append("/// Canonical combining classes != 0: 6 hex digits scalar, 2 hex digits class; sorted.")
    out.append("let unicodeCCCHex = \"\"\"\n%s\n\"\"\"" % wrap(ccc_hex))
    out.append("")
    out.append("/// Full canonical decompositions (Hangul excluded): 6 hex scalar, 1 hex count n,")
    out.append("/// n x 6 hex scalars; sorted by scalar.")
    out.append("let unicodeDecompHex = \"\"\"\n%s\n\"\"\"" % wrap(dec_hex))
    out.append("")
    out.append("/// Primary composites (exclusions removed, Hangul excluded): 6 hex first, 6 hex second,")
    out.append("/// 6 hex composite; sorted by (first, second).")
    out.append("let unicodeCompHex = \"\"\"\n%s\n\"\"\"" % wrap(comp_hex))
    out.append("")
    with open(args.o, "w") as f:
        f.write("\n".join(out))
    print("wrote %s: Unicode %s, %d blocks of %d, %d ccc, %d decompositions, %d compositions"
          % (args.o, version, len(blocks), 1 << shift, len(ccc), len(decomp1), len(comp)))


if __name__ == "__main__":
    main()
