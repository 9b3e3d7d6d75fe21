#!/usr/bin/env python3
"""Proves that only the per-instruction-set kernel targets contain instructions beyond
baseline x86-64, so the baseline (generic) path can never execute AVX2 or AVX-512
code on a CPU that lacks it, even if the linker merged identical symbols.

Disassembles a binary (objdump -d) and, per function:
  - any AVX-512 instruction (zmm or opmask registers, xmm16-31/ymm16-31, EVEX-only
    mnemonics) must be in the KernelsAVX512 target;
  - any VEX/EVEX instruction at all (a 'v'-prefixed mnemonic: AVX, AVX2, FMA, F16C) must be
    in one of KernelsAVX2, KernelsAVXVNNI, KernelsAVX512;
  - KernelsAVX2 functions contain no AVX-VNNI or AVX-512 instruction.
Swift mangles a module's symbols with its name (`11KernelsAVX2`, `14KernelsAVXVNNI`,
`13KernelsAVX512`), which is how functions are attributed to targets.
Usage: check-isa-isolation.py BINARY...   (exit 1 and a list on a violation)
"""
import re
import subprocess
import sys

MODULES = {"avx2": "11KernelsAVX2", "avxvnni": "14KernelsAVXVNNI", "avx512": "13KernelsAVX512"}
AVX512_OPERAND = re.compile(r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{1to\d+\}|\{%k")
AVX512_ONLY = re.compile(r"^(vpternlog|vpermt2|vpermi2|vpmov[a-z]*(db|dw|qd|qb|wb)\b|vcvtps2ph.*\{|vpcompress|vpexpand|vrndscale|vreduce|vfpclass|vgetexp|vscalef|vpbroadcastm|vpconflict|vplzcnt|vdbpsadbw|vpmadd52|vpermb|vpopcnt|vpshufbitqmb|kmov|kand|kor|kxor|knot|kshift|ktest|kortest|kunpck|kadd)")


def functions(binary):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True, text=True, check=True).stdout
    name, body = None, []
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            if name:
                yield name, body
            name, body = m.group(1), []
        elif name and "\t" in line:
            parts = line.split("\t", 1)[1].strip()
            body.append(parts)
    if name:
        yield name, body


def module_of(symbol):
    for isa, tag in MODULES.items():
        if tag in symbol:
            return isa
    return None


def check(binary):
    violations, counts = [], {"avx2": 0, "avxvnni": 0, "avx512": 0, None: 0}
    for name, body in functions(binary):
        isa = module_of(name)
        counts[isa] += 1
        vex = [i for i in body if i.startswith("v") or i.startswith("{vex}") or re.match(r"^k[a-z]+", i)]
        avx512 = [i for i in vex if AVX512_OPERAND.search(i) or AVX512_ONLY.match(i)]
        vnni = [i for i in vex if "vpdpbusd" in i or "vpdpwssd" in i]
        if isa is None and vex:
            violations.append(f"{name}: baseline code with {vex[0]!r} ({len(vex)} such instructions)")
        elif isa in ("avx2", "avxvnni") and avx512:
            violations.append(f"{name}: {isa} code with AVX-512 {avx512[0]!r}")
        elif isa == "avx2" and vnni:
            violations.append(f"{name}: avx2 code with VNNI {vnni[0]!r}")
    return violations, counts


def main():
    failed = False
    for binary in sys.argv[1:]:
        violations, counts = check(binary)
        print(f"{binary}: functions per target: avx2 {counts['avx2']}, avxvnni {counts['avxvnni']}, "
              f"avx512 {counts['avx512']}, baseline {counts[None]}")
        if counts["avx2"] == 0 or counts["avx512"] == 0:
            print(f"{binary}: no kernel target functions found (stripped, or the targets are missing)")
            failed = True
        for v in violations:
            print("  VIOLATION", v)
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
