#!/usr/bin/env python3
"""Tokenizer throughput: tiktoken vs `qwen bench-tokenizer`, on the same text, one run.

Builds the reference corpus (the `text` fields of Tests/Fixtures/tokenizer-cases.jsonl,
joined by newlines and repeated to about --mb megabytes), then measures
  * tiktoken (Qwen's pattern, qwen.tiktoken, Qwen's special tokens; tiktoken.Encoding):
    vocabulary load time and single-threaded encode_ordinary MB/s, best of --reps;
  * ours: `qwen bench-tokenizer -m VOCAB --file CORPUS --json` (release build);
and prints both figures and the ratio. Token counts are compared as a sanity check
(ours NFC-normalizes first, as Qwen's tokenizer does; the corpus is compared after NFC).

Usage: python3 scripts/bench-tokenizer.py [--qwen .build/release/qwen] [--vocab PATH]
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
       r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + ["<|extra_%d|>" % i for i in range(205)]


def load_tiktoken(path):
    import tiktoken
    t0 = time.perf_counter()
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    enc = tiktoken.Encoding("qwen", pat_str=PAT, mergeable_ranks=ranks,
                            special_tokens={s: len(ranks) + i for i, s in enumerate(SPECIALS)})
    return enc, (time.perf_counter() - t0) * 1000


def main():
    cache = os.environ.get("QWEN_CACHE", os.path.expanduser("~/.cache/qwen-embed"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--qwen", default=os.path.join(ROOT, ".build/release/qwen"),
                    help="the qwen CLI (release build)")
    ap.add_argument("--vocab", default=os.path.join(cache, "qwen.tiktoken"))
    ap.add_argument("--cases", default=os.path.join(ROOT, "Tests/Fixtures/tokenizer-cases.jsonl"))
    ap.add_argument("--mb", type=float, default=5.0, help="corpus size in MB")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    texts = [json.loads(l)["text"] for l in open(args.cases, encoding="utf-8") if l.strip()]
    unit = "\n".join(texts) + "\n"
    target = int(args.mb * 1e6)
    reps = max(1, target // len(unit.encode("utf-8")) + 1)
    corpus = unit * reps
    data = corpus.encode("utf-8")[:target]
    corpus = data.decode("utf-8", errors="ignore")
    data = corpus.encode("utf-8")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "corpus.txt")
        with open(path, "wb") as f:
            f.write(data)

        enc, tk_load = load_tiktoken(args.vocab)
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            tk_ids = enc.encode_ordinary(corpus)
            best = min(best, time.perf_counter() - t0)
        tk_mbs = len(data) / best / 1e6
        nfc_count = len(enc.encode_ordinary(unicodedata.normalize("NFC", corpus)))

        if not os.path.exists(args.qwen):
            sys.exit("%s not found: build it (make build) or pass --qwen" % args.qwen)
        out = subprocess.run([args.qwen, "bench-tokenizer", "-m", args.vocab, "--file", path,
                              "--reps", str(args.reps), "--json"],
                             check=True, capture_output=True, text=True).stdout
        ours = json.loads(out.strip().splitlines()[-1])

    ratio = ours["encode_mb_per_s"] / tk_mbs
    result = {
        "corpus_bytes": len(data),
        "tiktoken_mb_per_s": round(tk_mbs, 3),
        "tiktoken_load_ms": round(tk_load, 1),
        "tiktoken_tokens": len(tk_ids),
        "tiktoken_tokens_nfc": nfc_count,
        "ours_mb_per_s": ours["encode_mb_per_s"],
        "ours_load_ms": ours["load_ms"],
        "ours_tokens": ours["tokens"],
        "ratio": round(ratio, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("corpus: %.2f MB (tokenizer-cases.jsonl texts x%d)" % (len(data) / 1e6, reps))
        print("tiktoken: %8.2f MB/s  load %7.1f ms  %d tokens" % (tk_mbs, tk_load, nfc_count))
        print("qwen:     %8.2f MB/s  load %7.1f ms  %d tokens" % (ours["encode_mb_per_s"], ours["load_ms"], ours["tokens"]))
        print("ratio (qwen / tiktoken encode): %.2fx" % ratio)
    if ours["tokens"] != nfc_count:
        print("warning: token counts differ (ours %d, tiktoken on NFC text %d)" % (ours["tokens"], nfc_count),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
