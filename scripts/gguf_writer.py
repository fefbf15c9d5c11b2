"""gguf_writer.py — a small, dependency-light GGUF v3 writer (and reader) for dashkit scripts.

Pure Python + numpy; no third-party GGUF library.  Written from the GGUF specification
(ggml docs/gguf.md) and llama.cpp's conventions; used by scripts/make_ref_models.py (reference
models for the golden tests) and by scripts/export_gguf.py (the trained model).

File layout produced (all little-endian):
    magic "GGUF" | u32 version=3 | u64 n_tensors | u64 n_kv
    n_kv x (string key | u32 value_type | value)
    n_tensors x (string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset)
    zero padding to `alignment`
    tensor data; every tensor starts at a multiple of `alignment` relative to the data start
    (the data of the last tensor is padded too, as llama.cpp does).
  string = u64 byte length + UTF-8 bytes (no NUL); bool = 1 byte; array = u32 elem_type +
  u64 count + elements.  ne[0] is the fastest-moving dimension, i.e. the REVERSED numpy shape:
  a torch/numpy weight W of shape (n_out, n_in) is stored with ne = [n_in, n_out].
  The key "general.alignment" (u32) is written only when the alignment differs from the
  default 32, or when `write_alignment_key=True`.

Tensor encodings (byte-exact with ggml):
    F32   little-endian float32
    F16   IEEE half, round-to-nearest-even from float32
    BF16  upper 16 bits of float32, round-to-nearest-even; NaN kept quiet
    Q8_0  blocks of 32 values along ne[0]: f16 scale d = max|x|/127, then 32 int8
          q = round-half-away-from-zero(x * (1/d)) (q = 0 when d == 0); 34 bytes per block.

Usage:
    from gguf_writer import GGUFWriter, GGMLType, ValueType
    w = GGUFWriter("model.gguf")                     # alignment=32 by default
    w.add_string("general.architecture", "llama")
    w.add_uint32("llama.block_count", 2)
    w.add_float32("llama.rope.freq_base", 10000.0)
    w.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>"], ValueType.STRING)
    w.add_tokenizer_spm(tokens, scores, token_types)  # tokenizer.ggml.* (model "llama")
    w.add_tensor("token_embd.weight", emb_np_float32, GGMLType.F16)
    w.write()          # atomic: writes path + ".tmp" then renames

    info = read_gguf("model.gguf")  # dict: version, alignment, metadata {key: (type, value)},
                                    # tensors {name: (ggml_type, ne, float32 ndarray numpy-shaped)}

Command line:  python3 scripts/gguf_writer.py            (self-test of every type)
               python3 scripts/gguf_writer.py FILE.gguf  (dump metadata + tensor table)
               python3 scripts/gguf_writer.py --rewrite-check FILE.gguf
                   (re-encode a file, e.g. ../shared/fixtures/gguf/llama-2-tiny-random.gguf
                    written by llama.cpp; succeeds only when byte-identical)

Helpers: llama_permute_qk(w, n_head, n_head_kv) reorders rows of an HF q_proj/k_proj weight into
the interleaved layout that GGML's "normal" RoPE expects (what convert_hf_to_gguf.py does for arch
llama); f16_round / bf16_round / q8_0_round give the exact values an engine will dequantise.
"""

import os
import struct

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
GGUF_DEFAULT_ALIGNMENT = 32


class ValueType:
    """GGUF metadata value types (gguf_type)."""
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


_SCALAR_FMT = {
    ValueType.UINT8: "<B", ValueType.INT8: "<b", ValueType.UINT16: "<H", ValueType.INT16: "<h",
    ValueType.UINT32: "<I", ValueType.INT32: "<i", ValueType.FLOAT32: "<f", ValueType.BOOL: "<?",
    ValueType.UINT64: "<Q", ValueType.INT64: "<q", ValueType.FLOAT64: "<d",
}


class GGMLType:
    """ggml tensor types this writer can encode."""
    F32 = 0
    F16 = 1
    Q8_0 = 8
    BF16 = 30


GGML_TYPE_NAME = {GGMLType.F32: "F32", GGMLType.F16: "F16", GGMLType.Q8_0: "Q8_0",
                  GGMLType.BF16: "BF16"}


class LlamaFileType:
    """general.file_type values (llama_ftype) matching the tensor types above."""
    ALL_F32 = 0
    MOSTLY_F16 = 1
    MOSTLY_Q8_0 = 7
    MOSTLY_BF16 = 32


class TokenType:
    """tokenizer.ggml.token_type values."""
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


Q8_0_BLOCK = 32


# ---------------------------------------------------------------- encodings ----

def encode_f16(x):
    return np.ascontiguousarray(x, dtype=np.float32).astype("<f2").tobytes()


def _bf16_bits(x):
    u = np.ascontiguousarray(x, dtype="<f4").view("<u4").astype(np.uint64)
    is_nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = (u + (0x7FFF + ((u >> 16) & 1))) >> 16
    quiet = ((u >> 16) | 0x40) & 0xFFFF
    return np.where(is_nan, quiet, rounded).astype("<u2")


def encode_bf16(x):
    return _bf16_bits(x).tobytes()


def _q8_0_blocks(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % Q8_0_BLOCK != 0:
        raise ValueError("Q8_0 needs ne[0] (last numpy dim) %% 32 == 0, got %d" % x.shape[-1])
    b = x.reshape(-1, Q8_0_BLOCK)
    d = (np.abs(b).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    v = (b * inv).astype(np.float32)
    q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)  # roundf()
    return d.astype("<f2"), q


def encode_q8_0(x):
    d, q = _q8_0_blocks(x)
    out = np.empty((d.shape[0], 2 + Q8_0_BLOCK), dtype=np.uint8)
    out[:, :2] = d.view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def f16_round(x):
    """float32 values as an engine dequantising an F16 tensor sees them."""
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def bf16_round(x):
    """float32 values as an engine dequantising a BF16 tensor sees them."""
    bits = _bf16_bits(x).astype(np.uint32) << 16
    return bits.view(np.float32).reshape(np.shape(x))


def q8_0_round(x):
    """float32 values as an engine dequantising a Q8_0 tensor sees them (d_f16 * q)."""
    d, q = _q8_0_blocks(x)
    return (d.astype(np.float32) * q.astype(np.float32)).reshape(np.shape(x))


def tensor_nbytes(ggml_type, ne):
    n = int(np.prod(ne)) if len(ne) else 1
    if ggml_type == GGMLType.F32:
        return 4 * n
    if ggml_type in (GGMLType.F16, GGMLType.BF16):
        return 2 * n
    if ggml_type == GGMLType.Q8_0:
        return n // Q8_0_BLOCK * (2 + Q8_0_BLOCK)
    raise ValueError("unsupported ggml type %r" % ggml_type)


def llama_permute_qk(w, n_head, n_head_kv=None):
    """Reorder rows of an HF Llama q_proj (n_head) or k_proj (pass n_head_kv) weight of shape
    (n_head*head_dim, n_embd) from rotate_half order to adjacent-pair order, as
    convert_hf_to_gguf.py does for arch `llama`.  Within each head, row i of the first half
    and row i of the second half become rows 2i and 2i+1."""
    if n_head_kv is not None and n_head_kv != n_head:
        n_head = n_head_kv
    w = np.asarray(w)
    hd2 = w.shape[0] // n_head // 2
    return (w.reshape(n_head, 2, hd2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


# ---------------------------------------------------------------- writer ----

def _pack_string(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _pack_value(vtype, value):
    if vtype == ValueType.STRING:
        return _pack_string(value)
    if vtype == ValueType.ARRAY:
        raise ValueError("nested arrays: use add_array")
    fmt = _SCALAR_FMT.get(vtype)
    if fmt is None:
        raise ValueError("unknown GGUF value type %r" % vtype)
    return struct.pack(fmt, value)


class GGUFWriter:
    """Collects metadata and tensors in insertion order; write() emits one GGUF v3 file."""

    def __init__(self, path, alignment=GGUF_DEFAULT_ALIGNMENT, write_alignment_key=False):
        if alignment <= 0 or alignment % 8 != 0:
            raise ValueError("alignment must be a positive multiple of 8, got %r" % alignment)
        self.path = path
        self.alignment = alignment
        self._kv = []        # (key, packed bytes incl. type)
        self._keys = set()
        self._tensors = []   # (name, ne list, ggml_type, data bytes)
        if alignment != GGUF_DEFAULT_ALIGNMENT or write_alignment_key:
            self.add_uint32("general.alignment", alignment)

    # -- metadata
    def _add(self, key, packed):
        if key in self._keys:
            raise ValueError("duplicate metadata key %r" % key)
        self._keys.add(key)
        self._kv.append((key, packed))

    def add_value(self, key, value, vtype):
        """Scalar of any GGUF type (ValueType.*)."""
        self._add(key, struct.pack("<I", vtype) + _pack_value(vtype, value))

    def add_array(self, key, values, elem_type):
        """Array of scalars or strings (elem_type = ValueType.*)."""
        if elem_type == ValueType.ARRAY:
            raise ValueError("arrays of arrays are not supported")
        values = list(values)
        if elem_type in _SCALAR_FMT:
            body = np.asarray(values, dtype=np.dtype(_SCALAR_FMT[elem_type])).tobytes()
        else:
            body = b"".join(_pack_value(elem_type, v) for v in values)
        self._add(key, struct.pack("<IIQ", ValueType.ARRAY, elem_type, len(values)) + body)

    def add_string(self, key, v): self.add_value(key, v, ValueType.STRING)
    def add_bool(self, key, v): self.add_value(key, bool(v), ValueType.BOOL)
    def add_uint8(self, key, v): self.add_value(key, v, ValueType.UINT8)
    def add_int8(self, key, v): self.add_value(key, v, ValueType.INT8)
    def add_uint16(self, key, v): self.add_value(key, v, ValueType.UINT16)
    def add_int16(self, key, v): self.add_value(key, v, ValueType.INT16)
    def add_uint32(self, key, v): self.add_value(key, v, ValueType.UINT32)
    def add_int32(self, key, v): self.add_value(key, v, ValueType.INT32)
    def add_uint64(self, key, v): self.add_value(key, v, ValueType.UINT64)
    def add_int64(self, key, v): self.add_value(key, v, ValueType.INT64)
    def add_float32(self, key, v): self.add_value(key, v, ValueType.FLOAT32)
    def add_float64(self, key, v): self.add_value(key, v, ValueType.FLOAT64)

    def add_tokenizer_spm(self, tokens, scores, token_types, bos_id=1, eos_id=2, unk_id=0,
                          add_bos=True, add_eos=False):
        """SentencePiece-style vocabulary as llama.cpp stores it (tokenizer.ggml.model = llama):
        pieces use U+2581 for spaces, byte-fallback pieces are "<0xNN>" with TokenType.BYTE."""
        if not (len(tokens) == len(scores) == len(token_types)):
            raise ValueError("tokens/scores/token_types lengths differ")
        self.add_string("tokenizer.ggml.model", "llama")
        self.add_array("tokenizer.ggml.tokens", tokens, ValueType.STRING)
        self.add_array("tokenizer.ggml.scores", scores, ValueType.FLOAT32)
        self.add_array("tokenizer.ggml.token_type", token_types, ValueType.INT32)
        self.add_uint32("tokenizer.ggml.bos_token_id", bos_id)
        self.add_uint32("tokenizer.ggml.eos_token_id", eos_id)
        self.add_uint32("tokenizer.ggml.unknown_token_id", unk_id)
        self.add_bool("tokenizer.ggml.add_bos_token", add_bos)
        self.add_bool("tokenizer.ggml.add_eos_token", add_eos)

    # -- tensors
    def add_tensor(self, name, data, ggml_type=GGMLType.F32):
        """data: numpy array (any float dtype), numpy shape order; stored with ne reversed."""
        if any(t[0] == name for t in self._tensors):
            raise ValueError("duplicate tensor %r" % name)
        arr = np.asarray(data, dtype=np.float32)
        if arr.ndim < 1 or arr.ndim > 4:
            raise ValueError("tensor %r: 1..4 dims supported, got %d" % (name, arr.ndim))
        ne = list(reversed(arr.shape))
        if ggml_type == GGMLType.F32:
            raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        elif ggml_type == GGMLType.F16:
            raw = encode_f16(arr)
        elif ggml_type == GGMLType.BF16:
            raw = encode_bf16(arr)
        elif ggml_type == GGMLType.Q8_0:
            raw = encode_q8_0(arr)
        else:
            raise ValueError("tensor %r: unsupported ggml type %r" % (name, ggml_type))
        assert len(raw) == tensor_nbytes(ggml_type, ne)
        self._tensors.append((name, ne, ggml_type, raw))

    def _pad(self, n):
        return (-n) % self.alignment

    def to_bytes(self):
        out = bytearray()
        out += GGUF_MAGIC + struct.pack("<IQQ", GGUF_VERSION, len(self._tensors), len(self._kv))
        for key, packed in self._kv:
            out += _pack_string(key) + packed
        offset = 0
        for name, ne, t, raw in self._tensors:
            out += _pack_string(name) + struct.pack("<I", len(ne))
            out += struct.pack("<%dQ" % len(ne), *ne)
            out += struct.pack("<IQ", t, offset)
            offset += len(raw) + self._pad(len(raw))
        out += b"\0" * self._pad(len(out))
        for _, _, _, raw in self._tensors:
            out += raw + b"\0" * self._pad(len(raw))
        return bytes(out)

    def write(self):
        """Writes the file atomically (temp file + rename); returns the byte size."""
        data = self.to_bytes()
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)
        return len(data)


# ---------------------------------------------------------------- reader ----

class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError("truncated GGUF at byte %d (need %d)" % (self.pos, n))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.unpack("<Q")).decode("utf-8")

    def value(self, vtype):
        if vtype == ValueType.STRING:
            return self.string()
        if vtype == ValueType.ARRAY:
            et, n = self.unpack("<I"), self.unpack("<Q")
            return [self.value(et) for _ in range(n)]
        return self.unpack(_SCALAR_FMT[vtype])


def _decode_tensor(t, ne, raw):
    shape = tuple(reversed(ne))
    if t == GGMLType.F32:
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    if t == GGMLType.F16:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(shape)
    if t == GGMLType.BF16:
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    if t == GGMLType.Q8_0:
        blk = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 2 + Q8_0_BLOCK)
        d = blk[:, :2].copy().view("<f2").astype(np.float32)
        q = blk[:, 2:].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(shape)
    raise ValueError("unsupported ggml type %d" % t)


def read_gguf(path):
    """Parses a GGUF v2/v3 file written by anyone; returns a dict (see module doc)."""
    with open(path, "rb") as f:
        buf = f.read()
    c = _Cursor(buf)
    if c.take(4) != GGUF_MAGIC:
        raise ValueError("%s: bad magic" % path)
    version = c.unpack("<I")
    if version not in (2, 3):
        raise ValueError("%s: unsupported version %d" % (path, version))
    n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
    meta = {}
    for _ in range(n_kv):
        key = c.string()
        vt = c.unpack("<I")
        if vt == ValueType.ARRAY:
            et = c.unpack("<I")
            n = c.unpack("<Q")
            meta[key] = ((ValueType.ARRAY, et), [c.value(et) for _ in range(n)])
        else:
            meta[key] = (vt, c.value(vt))
    align = meta.get("general.alignment", (None, GGUF_DEFAULT_ALIGNMENT))[1]
    infos = []
    for _ in range(n_tensors):
        name = c.string()
        nd = c.unpack("<I")
        ne = [c.unpack("<Q") for _ in range(nd)]
        t, off = c.unpack("<I"), c.unpack("<Q")
        infos.append((name, ne, t, off))
    data_start = c.pos + (-c.pos) % align
    tensors = {}
    for name, ne, t, off in infos:
        if off % align:
            raise ValueError("%s: tensor %s offset %d not aligned to %d" % (path, name, off, align))
        start = data_start + off
        n = tensor_nbytes(t, ne)
        if start + n > len(buf):
            raise ValueError("%s: tensor %s past end of file" % (path, name))
        tensors[name] = (t, ne, _decode_tensor(t, ne, buf[start:start + n]))
    return {"version": version, "alignment": align, "metadata": meta, "tensors": tensors,
            "tensor_order": [i[0] for i in infos], "data_start": data_start, "size": len(buf)}


# ---------------------------------------------------------------- self-test ----

def self_test(tmpdir):
    """Round-trips every value type and tensor type through write + read_gguf; raises on error."""
    rng = np.random.default_rng(0)
    p = os.path.join(tmpdir, "gguf_writer_selftest.gguf")
    for align in (32, 64):
        w = GGUFWriter(p, alignment=align)
        scalars = [("t.u8", 200, ValueType.UINT8), ("t.i8", -100, ValueType.INT8),
                   ("t.u16", 60000, ValueType.UINT16), ("t.i16", -30000, ValueType.INT16),
                   ("t.u32", 4000000000, ValueType.UINT32), ("t.i32", -2000000000, ValueType.INT32),
                   ("t.f32", 1.5, ValueType.FLOAT32), ("t.bool", True, ValueType.BOOL),
                   ("t.str", "h\u00e9llo \u2581", ValueType.STRING),
                   ("t.u64", 2**63 + 5, ValueType.UINT64), ("t.i64", -2**62, ValueType.INT64),
                   ("t.f64", 2.0**-40, ValueType.FLOAT64)]
        for k, v, t in scalars:
            w.add_value(k, v, t)
        w.add_array("t.arr_i32", [1, -2, 3], ValueType.INT32)
        w.add_array("t.arr_f32", [0.5, -0.25], ValueType.FLOAT32)
        w.add_array("t.arr_str", ["a", "", "\u2581b"], ValueType.STRING)
        w.add_array("t.arr_bool", [True, False], ValueType.BOOL)
        w.add_array("t.arr_empty", [], ValueType.UINT8)
        x = rng.standard_normal((3, 64)).astype(np.float32)
        x[0, 0] = 0.0
        x[1, :32] = 0.0                                   # an all-zero Q8_0 block
        v1 = rng.standard_normal(7).astype(np.float32)    # odd size: exercises padding
        w.add_tensor("a.f32", v1, GGMLType.F32)
        w.add_tensor("b.f16", x, GGMLType.F16)
        w.add_tensor("c.bf16", x, GGMLType.BF16)
        w.add_tensor("d.q8_0", x, GGMLType.Q8_0)
        w.write()
        r = read_gguf(p)
        assert r["version"] == 3 and r["alignment"] == align
        assert ("general.alignment" in r["metadata"]) == (align != 32)
        for k, v, t in scalars:
            rt, rv = r["metadata"][k]
            assert rt == t and (rv == v or (t == ValueType.FLOAT32 and abs(rv - v) < 1e-7)), k
        assert r["metadata"]["t.arr_str"] == ((ValueType.ARRAY, ValueType.STRING),
                                              ["a", "", "\u2581b"])
        assert r["metadata"]["t.arr_i32"][1] == [1, -2, 3]
        assert r["metadata"]["t.arr_bool"][1] == [True, False]
        assert r["metadata"]["t.arr_empty"][1] == []
        assert r["data_start"] % align == 0
        t = r["tensors"]
        assert t["a.f32"][1] == [7] and np.array_equal(t["a.f32"][2], v1)
        assert t["b.f16"][1] == [64, 3] and np.array_equal(t["b.f16"][2], f16_round(x))
        assert np.array_equal(t["c.bf16"][2], bf16_round(x))
        assert np.array_equal(t["d.q8_0"][2], q8_0_round(x))
        assert np.abs(t["d.q8_0"][2] - x).max() <= np.abs(x).max() / 127 * 0.51 + 1e-3
        assert np.all(t["d.q8_0"][2][1, :32] == 0)
    # bf16 rounding is nearest-even, not truncation; NaN stays NaN
    y = np.array([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, float("nan")], dtype=np.float32)
    yb = bf16_round(y)
    assert yb[0] == 1.0 and yb[1] == 1.0 + 2.0**-6 and np.isnan(yb[2])
    os.remove(p)
    return True


def rewrite_is_identical(src, dst):
    """Reads a GGUF (e.g. one written by llama.cpp's converter) and writes it back with this
    writer, keeping key/tensor order and types; True when the two files are byte-identical."""
    r = read_gguf(src)
    w = GGUFWriter(dst, alignment=r["alignment"])
    for k, (t, v) in r["metadata"].items():
        if k == "general.alignment":
            continue
        if isinstance(t, tuple):
            w.add_array(k, v, t[1])
        else:
            w.add_value(k, v, t)
    for name in r["tensor_order"]:
        t, _, arr = r["tensors"][name]
        w.add_tensor(name, arr, t)
    w.write()
    with open(src, "rb") as a, open(dst, "rb") as b:
        return a.read() == b.read()


if __name__ == "__main__":
    import sys
    import tempfile
    if len(sys.argv) > 2 and sys.argv[1] == "--rewrite-check":
        with tempfile.TemporaryDirectory() as d:
            ok = rewrite_is_identical(sys.argv[2], os.path.join(d, "rewrite.gguf"))
        print("rewrite of %s: %s" % (sys.argv[2], "byte-identical" if ok else "DIFFERS"))
        sys.exit(0 if ok else 1)
    elif len(sys.argv) > 1:
        info = read_gguf(sys.argv[1])
        for k, (t, v) in info["metadata"].items():
            if isinstance(v, list) and len(v) > 8:
                v = "%r ... (%d items)" % (v[:8], len(v))
            print("%s [%s] = %s" % (k, t, v))
        for name in info["tensor_order"]:
            t, ne, _ = info["tensors"][name]
            print("%s %s %s" % (name, GGML_TYPE_NAME.get(t, t), ne))
    else:
        with tempfile.TemporaryDirectory() as d:
            self_test(d)
        print("gguf_writer self-test: ok")
