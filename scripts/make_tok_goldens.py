#!/usr/bin/python3
"""Golden token ids for tests/test_tokenizer.c, made by SentencePiece itself (an implementation
dashkit did not write) on llama2.c's tok512.model, the model tok512.bin was exported from.

Run (Debian python3-sentencepiece; no protobuf module is needed):
    /usr/bin/python3 scripts/make_tok_goldens.py [FIXTURES]    # default ../shared/fixtures
It writes tests/data/tok512_golden.tsv.

Normaliser settings of tok512.model (read from its ModelProto below and recorded in the file):
name=identity (no NFKC), add_dummy_prefix=1, remove_extra_whitespaces=1, escape_whitespaces=1;
trainer: BPE, byte_fallback=1, unk/bos/eos = 0/1/2.

tok512.bin keeps only pieces and scores, not these flags, and llama2.c's run.c encode() never
collapses whitespace (it only prepends the dummy " "). So each string gets two independent
references:
  ids_model    SentencePiece with tok512.model exactly as shipped (remove_extra_whitespaces=1);
               dashkit must match them with dk_tokenizer_set_remove_extra_whitespaces(t, true).
  ids_keep_ws  SentencePiece with the same model, its proto patched to remove_extra_whitespaces=0;
               this is what run.c, llama.cpp and dashkit's default do.
Decoded text for both is stored too (SentencePiece's DecodeIds of each id list).

What cannot be matched from tok512.bin, and is therefore not tested:
- SentencePiece decodes the unknown id 0 to tok512.model's unk_surface, which the trainer stored
  as the literal escaped text ' \\342\\201\\207 ' (a quirk of that model); tok512.bin has no
  surface, so dashkit uses SentencePiece's default ' \u2047 '. No case decodes id 0.
- Invalid UTF-8 input: SentencePiece's Python API takes str, which is always valid, so only
  valid UTF-8 text is encoded here (byte-level invalid sequences are covered by decode cases).

Long text: the whole of two Project Gutenberg books from the fixtures (about 2 MB) is encoded
and only the id count and an FNV-1a-64 hash of the ids (int32 little-endian bytes) plus the
first 32 ids are stored, to keep the repository small.

Line formats (tab-separated; text fields are UTF-8 bytes in lowercase hex, '-' for empty;
id lists are space-separated decimals, '-' for empty):
  enc   NAME  TEXT_HEX  IDS_MODEL  IDS_KEEP_WS  DECODED_MODEL_HEX  DECODED_KEEP_WS_HEX
  dec   NAME  IDS  DECODED_MODEL_HEX  DECODED_KEEP_WS_HEX
  long  NAME  FIXTURE_PATH  MODE(model|keep_ws)  N_IDS  FNV1A64_HEX  FIRST_32_IDS
"""
import hashlib
import os
import struct
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "tok512_golden.tsv")


# ---- minimal protobuf wire-format reader/writer (only what is needed to flip one flag) ----

def read_varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """Yields (field_number, wire_type, value, start, end) for each top-level field of b."""
    i = 0
    while i < len(b):
        start = i
        key, i = read_varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = read_varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield f, wt, v, start, i


def normalizer_spec(model):
    for f, wt, v, _, _ in fields(model):
        if f == 3 and wt == 2:  # ModelProto.normalizer_spec
            return {nf: nv for nf, _, nv, _, _ in fields(v)}
    raise ValueError("no normalizer_spec")


def with_remove_extra_whitespaces(model, on):
    """Returns model bytes with NormalizerSpec.remove_extra_whitespaces (field 4) set to on."""
    out = bytearray()
    for f, wt, v, s, e in fields(model):
        if f == 3 and wt == 2:
            sub = bytearray()
            for nf, nwt, nv, ns, ne in fields(v):
                if nf != 4:
                    sub += v[ns:ne]
            sub += bytes([4 << 3 | 0, 1 if on else 0])
            out += bytes([3 << 3 | 2])
            n = len(sub)
            while n >= 0x80:
                out.append((n & 0x7F) | 0x80)
                n >>= 7
            out.append(n)
            out += sub
        else:
            out += model[s:e]
    return bytes(out)


# ---- cases ----

ENC_CASES = [
    ("empty", ""),
    ("plain", "Once upon a time, there was a little girl named Lily."),
    ("word", "hello"),
    ("single_char", "a"),
    ("single_space", " "),
    ("leading_space", " Lily"),
    ("leading_spaces", "   Lily went out"),
    ("trailing_spaces", "Lily went out   "),
    ("multiple_spaces", "She  saw   a    big ball"),
    ("only_spaces", "     "),
    ("newlines", "Lily was sad.\nShe cried.\n\nThen she smiled.\n"),
    ("leading_newline", "\nThe end"),
    ("space_newline_space", "a \n b"),
    ("tabs_cr", "a\tb\r\nc"),
    ("digits", "In 1984 there were 3,141 cats and 20 dogs; 007."),
    ("punctuation", "\"Hello!\" said Tim. 'Why?' (yes) [no] {maybe} <tag> a/b\\c @#$%^&*_+=|~`"),
    ("quotes_unicode", "\u201cLet\u2019s go,\u201d she said \u2014 quickly\u2026"),
    ("accents_in_vocab", "caf\u00e9 ma\u00f1ana \u00e2"),
    ("accents_byte_fallback", "na\u00efve \u00fcber Stra\u00dfe"),
    ("cjk", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8"),
    ("emoji", "I love \U0001F600 and \U0001F680!"),
    ("mixed_scripts", "\u041f\u0440\u0438\u0432\u0435\u0442 \u03ba\u03cc\u03c3\u03bc\u03b5 \u05e9\u05dc\u05d5\u05dd"),
    ("nbsp_hairspace", "a\u00a0b\u200ac \u3000d"),
    ("control_text", "<s> not a control token </s> <unk> <0x41>"),
    ("repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("story", "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
              "She said, \"I want to play with your ball, but I can't find it.\""),
    ("code", "int main(void) {\n    return x[i] + 0x1F; // done\n}"),
]

# Decode-only id lists: BOS/EOS interleaved, leading space pieces, byte runs incl. invalid UTF-8.
DEC_CASES = [
    ("bos_then_space_piece", [1, 410, 411]),
    ("two_space_pieces", [410, 410, 261]),
    ("eos_between", [259, 2, 259]),
    ("bos_eos_only", [1, 2]),
    ("byte_newline_then_space", [13, 259]),
    ("space_then_byte", [410, 13, 261]),
    ("valid_utf8_bytes", [230, 131, 134, 259]),
    ("lone_continuation", [131, 261]),
    ("truncated_utf8", [233, 154, 261]),
    ("overlong", [195, 131, 261]),
    ("surrogate", [240, 163, 163, 261]),
    ("bytes_split_by_bos", [233, 1, 154, 168]),
]


def hexs(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return b.hex() if b else "-"


def ids_str(ids):
    return " ".join(str(i) for i in ids) if ids else "-"


def fnv1a64(ids):
    h = 0xCBF29CE484222325
    for b in b"".join(struct.pack("<i", i) for i in ids):
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def main():
    fixtures = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "fixtures")
    path = os.path.join(fixtures, "llama2c", "tok512.model")
    model = open(path, "rb").read()
    ns = normalizer_spec(model)
    flags = {"name": ns.get(1, b"").decode(), "add_dummy_prefix": ns.get(3, 1),
             "remove_extra_whitespaces": ns.get(4, 1), "escape_whitespaces": ns.get(5, 1)}
    assert flags["name"] == "identity" and flags["add_dummy_prefix"] == 1, flags
    sp_model = spm.SentencePieceProcessor(model_proto=model)
    sp_keep = spm.SentencePieceProcessor(model_proto=with_remove_extra_whitespaces(model, False))
    assert sp_model.get_piece_size() == 512

    lines = [
        "# tok512 golden ids from SentencePiece %s; made by scripts/make_tok_goldens.py (see its docstring)" % spm.__version__,
        "# model llama2c/tok512.model sha256 %s" % hashlib.sha256(model).hexdigest(),
        "# normalizer %s" % " ".join("%s=%s" % kv for kv in flags.items()),
    ]
    for name, text in ENC_CASES:
        a = sp_model.encode(text)
        k = sp_keep.encode(text)
        lines.append("\t".join(["enc", name, hexs(text), ids_str(a), ids_str(k),
                                hexs(sp_model.decode(a)), hexs(sp_keep.decode(k))]))
    for name, ids in DEC_CASES:
        lines.append("\t".join(["dec", name, ids_str(ids), hexs(sp_model.decode(ids)), hexs(sp_keep.decode(ids))]))
    for name, rel in [("moby_dick", "haystack/pg2701_moby_dick.txt"),
                      ("pride_and_prejudice", "haystack/pg1342_pride_and_prejudice.txt")]:
        text = open(os.path.join(fixtures, rel), "rb").read().decode("utf-8")
        for mode, sp in (("model", sp_model), ("keep_ws", sp_keep)):
            ids = sp.encode(text)
            lines.append("\t".join(["long", name, rel, mode, str(len(ids)), fnv1a64(ids), ids_str(ids[:32])]))
    with open(OUT, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d lines)" % (os.path.normpath(OUT), len(lines)))


if __name__ == "__main__":
    main()
