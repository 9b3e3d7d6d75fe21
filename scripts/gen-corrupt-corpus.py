#!/usr/bin/env python3
"""Writes the corrupt-file corpus the tests load through the C API
(tests/python/test_corrupt_corpus.py): broken variants of small valid GGUFs and
checkpoint directories, and manifest.jsonl with, per case, the status the load must
return and a word its message must contain.

    gen-corrupt-corpus.py OUT_DIR

Kinds of damage: truncation at every structural boundary of a GGUF (magic, version,
counts, each metadata entry, each tensor record, the data), lying lengths and counts
(strings, arrays, metadata and tensor counts), offsets outside the data or overlapping,
unknown and engine-private tensor types, wrong shapes, absurd hyper-parameters, NaN and
infinite scales; for checkpoint directories: headers past the end, bad JSON, offsets
outside or overlapping, unknown dtypes, a shard missing from its index, broken configs,
GPTQ tensors of inconsistent shapes or dtypes and unsupported GPTQ settings. The valid
bases are in the manifest too ("OK").
"""
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from small_gguf import write_small_gguf  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
manifest = []


def case(name, path, status, contains=None, generate=None):
    """status: what the load returns, "OK" or a qwen_status name without QWEN_ERR_;
    contains: a word its message (or the generation's) must hold; generate: the status
    of a short generation after a successful load (None: not run)."""
    manifest.append({"name": name, "path": str(path), "status": status, "contains": contains, "generate": generate})


# ---------------------------------------------------------------------------- GGUF

def gguf_layout(data):
    """Byte offsets of a GGUF's parts: end of each fixed header field, of each metadata
    entry, of each tensor record (with where its offset field sits), and the data start."""
    pos = 0

    def take(fmt):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0]

    def string():
        nonlocal pos
        n = take("Q")
        start = pos - 8
        pos += n
        return start

    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(kind):
        nonlocal pos
        if kind == 8:
            string()
        elif kind == 9:
            inner, count = take("I"), take("Q")
            for _ in range(count):
                value(inner)
        else:
            take(sizes[kind])

    take("I"); version_end = pos
    take("I")
    tensors = take("Q"); tensor_count_at = pos - 8
    kvs = take("Q"); kv_count_at = pos - 8
    header_end = pos
    entries = []
    for _ in range(kvs):
        key_at = string()
        kind = take("I")
        value_at = pos
        value(kind)
        entries.append({"start": key_at, "value_at": value_at, "kind": kind, "end": pos})
    records = []
    for _ in range(tensors):
        start = string()
        dims = take("I")
        dims_at = pos
        for _ in range(dims):
            take("Q")
        type_at = pos
        take("I")
        offset_at = pos
        take("Q")
        records.append({"start": start, "dims_at": dims_at, "type_at": type_at, "offset_at": offset_at, "end": pos})
    return {"version_end": version_end, "tensor_count_at": tensor_count_at, "kv_count_at": kv_count_at,
            "header_end": header_end, "entries": entries, "records": records,
            "data_start": (pos + 31) // 32 * 32}


def write_bytes(name, data):
    path = out / name
    path.write_bytes(bytes(data))
    return path


def patch(data, at, fmt, value):
    data = bytearray(data)
    struct.pack_into("<" + fmt, data, at, value)
    return data


for arch, qtype in (("qwen2", "f32"), ("qwen", "q8_0")):
    base_path = out / f"valid-{arch}-{qtype}.gguf"
    write_small_gguf(base_path, arch, qtype)
    base = base_path.read_bytes()
    case(f"valid {arch} {qtype} GGUF", base_path, "OK", generate="OK")
    layout = gguf_layout(base)
    tag = f"{arch}-{qtype}"
    cuts = {"empty": 0, "mid-magic": 3, "after-magic": 4, "after-version": layout["version_end"],
            "in-tensor-count": layout["tensor_count_at"] + 3, "in-kv-count": layout["kv_count_at"] + 3,
            "after-counts": layout["header_end"], "before-data": layout["data_start"],
            "mid-data": (layout["data_start"] + len(base)) // 2, "last-byte": len(base) - 1}
    for i, entry in enumerate(layout["entries"]):
        cuts[f"in-kv-{i}"] = (entry["start"] + entry["end"]) // 2
        cuts[f"after-kv-{i}"] = entry["end"]
    for i, record in enumerate(layout["records"]):
        cuts[f"in-tensor-record-{i}"] = record["dims_at"]
    for what, at in cuts.items():
        case(f"{tag} truncated {what}", write_bytes(f"trunc-{tag}-{what}.gguf", base[:at]), "BAD_MODEL")
    case(f"{tag} bad magic", write_bytes(f"magic-{tag}.gguf", b"GGUX" + base[4:]), "BAD_MODEL", "GGUF")
    case(f"{tag} version 99", write_bytes(f"version-{tag}.gguf", patch(base, 4, "I", 99)), "UNSUPPORTED_MODEL", "version")
    case(f"{tag} tensor count 2^60", write_bytes(f"tcount-{tag}.gguf", patch(base, layout["tensor_count_at"], "Q", 1 << 60)), "BAD_MODEL")
    case(f"{tag} metadata count 2^60", write_bytes(f"kvcount-{tag}.gguf", patch(base, layout["kv_count_at"], "Q", 1 << 60)), "BAD_MODEL")
    first = layout["entries"][0]
    case(f"{tag} key length 2^62", write_bytes(f"keylen-{tag}.gguf", patch(base, first["start"], "Q", 1 << 62)), "BAD_MODEL")
    array = next(e for e in layout["entries"] if e["kind"] == 9)
    case(f"{tag} array count 2^62", write_bytes(f"arraylen-{tag}.gguf", patch(base, array["value_at"] + 4, "Q", 1 << 62)), "BAD_MODEL")
    case(f"{tag} metadata type 77", write_bytes(f"kvtype-{tag}.gguf", patch(base, array["value_at"] - 4, "I", 77)), "BAD_MODEL")
    rec = layout["records"][1]
    case(f"{tag} tensor type 999", write_bytes(f"ttype-{tag}.gguf", patch(base, rec["type_at"], "I", 999)), "UNSUPPORTED_MODEL", "999")
    case(f"{tag} engine-private tensor type", write_bytes(f"tprivate-{tag}.gguf", patch(base, rec["type_at"], "I", 0x51570004)), "UNSUPPORTED_MODEL")
    case(f"{tag} tensor offset past the end", write_bytes(f"toffset-{tag}.gguf", patch(base, rec["offset_at"], "Q", 1 << 40)), "BAD_MODEL", "outside")
    case(f"{tag} tensor offset misaligned", write_bytes(f"tmisaligned-{tag}.gguf", patch(base, rec["offset_at"], "Q", 4)), "BAD_MODEL", "aligned")
    other = layout["records"][2]
    offset = struct.unpack_from("<Q", base, other["offset_at"])[0]
    case(f"{tag} overlapping tensors", write_bytes(f"toverlap-{tag}.gguf", patch(base, rec["offset_at"], "Q", offset)), "BAD_MODEL", "overlap")
    case(f"{tag} tensor dimension 2^40", write_bytes(f"tdim-{tag}.gguf", patch(base, rec["dims_at"], "Q", 1 << 40)), "BAD_MODEL")
    case(f"{tag} wrong embedding shape", write_bytes(f"tshape-{tag}.gguf", patch(base, layout["records"][0]["dims_at"], "Q", 64)), "BAD_MODEL")

# Absurd hyper-parameters and NaN / Inf scales, written whole by gguf-py variants.
import gguf  # noqa: E402


def rewritten(name, edit_kv=None, edit_tensor=None):
    """The qwen2 f32 base with a metadata value or a tensor replaced."""
    src = gguf.GGUFReader(str(out / "valid-qwen2-f32.gguf"))
    w = gguf.GGUFWriter(str(out / name), "qwen2")
    for key, field in src.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value = field.contents()
        kind = gguf.GGUFValueType(field.types[0])
        if edit_kv and key in edit_kv:
            value = edit_kv[key]
        if kind == gguf.GGUFValueType.ARRAY:
            w.add_array(key, value)
        else:
            w.add_key_value(key, value, kind)
    for t in src.tensors:
        data = np.array(t.data)
        if edit_tensor and t.name in edit_tensor:
            data = edit_tensor[t.name](data)
        w.add_tensor(t.name, data, raw_shape=list(reversed([int(d) for d in t.shape])), raw_dtype=t.tensor_type)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return out / name


case("head count 0", rewritten("heads0.gguf", {"qwen2.attention.head_count": 0}), "BAD_MODEL", "head")
case("block count 2^31", rewritten("blocks.gguf", {"qwen2.block_count": 1 << 31}), "BAD_MODEL", "layer")
case("embedding length 0", rewritten("embd0.gguf", {"qwen2.embedding_length": 0}), "BAD_MODEL")
case("rms epsilon NaN", rewritten("epsnan.gguf", {"qwen2.attention.layer_norm_rms_epsilon": float("nan")}), "BAD_MODEL", "epsilon")
case("context length 2^31", rewritten("ctx.gguf", {"qwen2.context_length": 1 << 31}), "BAD_MODEL", "context")
nan_weights = rewritten("nan-weights.gguf", edit_tensor={"blk.0.ffn_up.weight": lambda a: np.full_like(a, np.nan)})
# GGUF data is not scanned at load (it is mapped, not read): NaN weights load, and the
# generation refuses the non-finite logits they give.
case("NaN weights", nan_weights, "OK", "finite", generate="BAD_MODEL")
inf_weights = rewritten("inf-weights.gguf", edit_tensor={"token_embd.weight": lambda a: np.full_like(a, np.inf)})
case("infinite embeddings", inf_weights, "OK", "finite", generate="BAD_MODEL")

# ------------------------------------------------------------- checkpoint directories

subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-qwen-checkpoints.py"), str(out / "bases"),
                "fuzz-base", "fuzz-gptq"], check=True, capture_output=True)
BASE, GPTQ = out / "bases" / "fuzz-base", out / "bases" / "fuzz-gptq"
case("valid bf16 directory", BASE, "OK", generate="OK")
case("valid GPTQ directory", GPTQ, "OK", generate="OK")


def variant(name, source=BASE):
    target = out / name
    shutil.copytree(source, target)
    return target


def header_of(path):
    data = path.read_bytes()
    n = struct.unpack_from("<Q", data, 0)[0]
    return json.loads(data[8:8 + n]), data[8 + n:]


def rewrite(path, header, body):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)


def edit_header(name, edit, source=BASE, file="model.safetensors"):
    d = variant(name, source)
    header, body = header_of(d / file)
    edit(header)
    rewrite(d / file, header, body)
    return d


d = variant("st-header-past-end")
data = (d / "model.safetensors").read_bytes()
(d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + data[8:])
case("safetensors header length past the end", d, "BAD_MODEL", "header")
d = variant("st-header-not-json")
(d / "model.safetensors").write_bytes(struct.pack("<Q", 8) + b"{not jso" + data[8:])
case("safetensors header not JSON", d, "BAD_MODEL")
d = variant("st-truncated")
(d / "model.safetensors").write_bytes(data[: len(data) // 2])
case("safetensors truncated in the data", d, "BAD_MODEL", "outside")
d = variant("st-empty")
(d / "model.safetensors").write_bytes(b"")
case("safetensors empty file", d, "BAD_MODEL")


def set_offsets(tensor, begin, end):
    def edit(h):
        h[tensor]["data_offsets"] = [begin, end]
    return edit


first = "transformer.h.0.ln_1.weight"
h, _ = header_of(BASE / "model.safetensors")
b0, e0 = h[first]["data_offsets"]
case("safetensors offsets outside", edit_header("st-offsets-outside", set_offsets(first, 1 << 40, (1 << 40) + e0 - b0)), "BAD_MODEL", "outside")
case("safetensors offsets reversed", edit_header("st-offsets-reversed", set_offsets(first, e0, b0)), "BAD_MODEL")
other = "transformer.h.0.ln_2.weight"
b1, e1 = h[other]["data_offsets"]
case("safetensors overlapping tensors", edit_header("st-overlap", set_offsets(first, b1, e1)), "BAD_MODEL", "overlap")
case("safetensors unknown dtype", edit_header("st-dtype", lambda h: h[first].update(dtype="Q9")), "UNSUPPORTED_MODEL", "Q9")
case("safetensors negative shape", edit_header("st-shape", lambda h: h[first].update(shape=[-128])), "BAD_MODEL")
case("safetensors wrong byte count", edit_header("st-bytes", lambda h: h[first].update(shape=[64])), "BAD_MODEL", "bytes")
case("safetensors wrong shape for the config", edit_header("st-config-shape", lambda h: h["lm_head.weight"].update(
    shape=[h["lm_head.weight"]["shape"][1], h["lm_head.weight"]["shape"][0]])), "BAD_MODEL", "lm_head.weight")
case("safetensors matrix as I16", edit_header("st-i16", lambda h: h["lm_head.weight"].update(dtype="I16")), "UNSUPPORTED_MODEL", "lm_head.weight")
d = variant("st-missing-tensor")
header, body = header_of(d / "model.safetensors")
header["transformer.h.1.mlp.w1.weighX"] = header.pop("transformer.h.1.mlp.w1.weight")
rewrite(d / "model.safetensors", header, body)
case("missing tensor", d, "BAD_MODEL", "transformer.h.1.mlp.w1")

# A shard index naming a shard that is not there, and one naming a tensor its shard lacks.
d = variant("index-missing-shard")
(d / "model.safetensors").rename(d / "model-00001-of-00002.safetensors")
names = [k for k in header_of(d / "model-00001-of-00002.safetensors")[0] if k != "__metadata__"]
weight_map = {n: "model-00001-of-00002.safetensors" for n in names}
weight_map[names[0]] = "model-00002-of-00002.safetensors"
(d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
case("shard missing from the index's directory", d, "IO", "model-00002-of-00002.safetensors")
d = variant("index-not-json")
(d / "model.safetensors.index.json").write_text("{\"weight_map\": ")
case("index not JSON", d, "BAD_MODEL", "index")
d = variant("index-bad-shard-name")
(d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {names[0]: "../../etc/passwd"}}))
case("index shard name escaping the directory", d, "BAD_MODEL", "shard")


def edit_config(name, edit, source=BASE, file="config.json"):
    d = variant(name, source)
    config = json.loads((d / file).read_text())
    edit(config)
    (d / file).write_text(json.dumps(config))
    return d


d = variant("config-not-json")
(d / "config.json").write_text("{\"hidden_size\": 128,")
case("config.json not JSON", d, "BAD_MODEL", "config.json")
case("config.json without hidden_size", edit_config("config-no-hidden", lambda c: c.pop("hidden_size")), "BAD_MODEL", "hidden_size")
case("config.json 0 heads", edit_config("config-heads0", lambda c: c.update(num_attention_heads=0)), "BAD_MODEL")
case("config.json hidden 2^40", edit_config("config-hidden", lambda c: c.update(hidden_size=1 << 40)), "BAD_MODEL", "hidden")
# Found by fuzz_checkpoint: a rotary_pct of 8.9e99 trapped converting the rotated width to Int.
case("config.json rotary_pct 1e100", edit_config("config-rotary", lambda c: c.update(rotary_pct=1e100)), "BAD_MODEL", "rotary_pct")
case("config.json rotary_pct 0", edit_config("config-rotary0", lambda c: c.update(rotary_pct=0)), "BAD_MODEL", "rotary_pct")
case("config.json unknown architecture", edit_config("config-arch", lambda c: c.update(architectures=["LlamaForCausalLM"], model_type="llama")),
     "UNSUPPORTED_MODEL", "LlamaForCausalLM")
case("config.json empty", edit_config("config-empty", lambda c: c.clear()), "UNSUPPORTED_MODEL", "architecture")
d = variant("no-tiktoken")
(d / "qwen.tiktoken").unlink()
case("no qwen.tiktoken", d, "UNSUPPORTED_MODEL", "qwen.tiktoken")
d = variant("tiktoken-garbled")
(d / "qwen.tiktoken").write_bytes(b"not base64!! 0\n\xff\xfe 1\n")
case("qwen.tiktoken garbled", d, "BAD_MODEL")

# GPTQ: inconsistent tensors and unsupported settings.
gh, _ = header_of(GPTQ / "model.safetensors")
layer = "transformer.h.0.mlp.w1"
case("GPTQ qweight of the wrong shape", edit_header("gptq-qweight-shape", lambda h: h[layer + ".qweight"].update(
    shape=list(reversed(h[layer + ".qweight"]["shape"]))), GPTQ), "BAD_MODEL", layer + ".qweight")
case("GPTQ scales as F32", edit_header("gptq-scales-f32", lambda h: h[layer + ".scales"].update(
    dtype="F32", shape=[h[layer + ".scales"]["shape"][0], h[layer + ".scales"]["shape"][1] // 2]), GPTQ), "BAD_MODEL", layer + ".scales")
case("GPTQ g_idx too short", edit_header("gptq-gidx", lambda h: h[layer + ".g_idx"].update(
    shape=[h[layer + ".g_idx"]["shape"][0] // 2, 2]), GPTQ), "BAD_MODEL", layer + ".g_idx")
d = variant("gptq-no-qzeros", GPTQ)
header, body = header_of(d / "model.safetensors")
header[layer + ".qzeroX"] = header.pop(layer + ".qzeros")
rewrite(d / "model.safetensors", header, body)
case("GPTQ qzeros missing", d, "BAD_MODEL", layer + ".qzeros")
case("GPTQ bits 3", edit_config("gptq-bits3", lambda c: c["quantization_config"].update(bits=3), GPTQ), "UNSUPPORTED_MODEL", "bits")
case("GPTQ checkpoint format v2", edit_config("gptq-v2", lambda c: c["quantization_config"].update(checkpoint_format="gptq_v2"), GPTQ),
     "UNSUPPORTED_MODEL", "checkpoint_format")
case("GPTQ group size disagreeing with the tensors", edit_config("gptq-group", lambda c: c["quantization_config"].update(group_size=32), GPTQ),
     "BAD_MODEL", "qzeros")
d = variant("gptq-nan-scale", GPTQ)
header, body = header_of(d / "model.safetensors")
begin = header[layer + ".scales"]["data_offsets"][0]
body = bytearray(body)
body[begin:begin + 2] = np.array([np.nan], dtype=np.float16).tobytes()
rewrite(d / "model.safetensors", header, bytes(body))
# GPTQ layers are repacked on first use: the NaN scale is found then, not at load.
case("GPTQ NaN scale", d, "OK", "not finite", generate="BAD_MODEL")

with open(out / "manifest.jsonl", "w") as f:
    for entry in manifest:
        f.write(json.dumps(entry) + "\n")
print(f"{len(manifest)} cases in {out}")
