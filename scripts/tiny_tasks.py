"""tiny_tasks.py — long-context task generators for dashkit-tiny (training and held-out eval).

Every sample is a token sequence [BOS] + encode(prompt) + encode(answer) with the answer span
marked.  Because the tokenizer splits on whitespace before BPE (split_by_whitespace, dummy
prefix), encode(prompt + " " + answer) == encode(prompt) + encode(answer) for a prompt that does
not end in whitespace: the tokens are exactly those a user's full prompt string would produce.

Haystacks are real text: spans of the pre-tokenized corpus cut at word boundaries, decoded back to
text.  The TRAIN pool reads datasets/corpora/*-train.txt, the EVAL pool *-heldout.txt.  Needle key
words are split the same way: a word is a held-out key when crc32(word) % 5 == 0.

Formats follow the literature verbatim:
  passkey  (Mohtashami & Jaggi 2023, landmark attention):
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them.
     I will quiz you about the important information there." ... "The pass key is 12345. Remember
     it. 12345 is the pass key." ... "What is the pass key? The pass key is" -> "12345."
  NIAH single / multi-key / multi-value / multi-query (RULER, Hsieh et al. 2024):
    "Some special magic numbers are hidden within the following text. Make sure to memorize it. I
     will quiz you about the numbers afterwards." ... "One of the special magic numbers for <key>
     is: <value>." ... "What is the special magic number for <key> mentioned in the provided text?
     The special magic number for <key> mentioned in the provided text is" -> "<value>."
  variable tracking (RULER vt), copy/repeat warm-up (a random span repeated; loss on the repeat).
"""

import os
import random
import zlib

import numpy as np

PASSKEY_INTRO = ("There is an important info hidden inside a lot of irrelevant text. "
                 "Find it and memorize them. I will quiz you about the important information there.")
PASSKEY_GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_NEEDLE = "The pass key is {k}. Remember it. {k} is the pass key."
PASSKEY_QUESTION = "What is the pass key? The pass key is"

NIAH_INTRO = ("Some special magic numbers are hidden within the following text. Make sure to memorize it. "
              "I will quiz you about the numbers afterwards.")
NIAH_NEEDLE = "One of the special magic numbers for {k} is: {v}."
NIAH_QUESTION = ("What is the special magic number for {k} mentioned in the provided text? "
                 "The special magic number for {k} mentioned in the provided text is")
NIAH_QUESTION_MANY = ("What are all the special magic numbers for {k} mentioned in the provided text? "
                      "The special magic numbers for {k} mentioned in the provided text are")
# RULER asks every NIAH variant in the plural (dashkit's eval/tasks/ruler.c does too); training mixes
# both phrasings (ruler_q=True) so that the model answers either
NIAH_QUESTION_RULER = NIAH_QUESTION_MANY

VT_INTRO = "Memorize and track the chain(s) of variable assignment hidden in the following text."
VT_QUESTION = ("Question: Find all variables that are assigned the value {v} in the text above. "
               "Answer: According to the chain(s) of variables assigned in the text above, "
               "{n} variables are assigned the value {v}, they are:")

# RULER's vt answer prefix (and dashkit's eval/tasks/ruler.c) spells "assgined"; kept verbatim
VT_QUESTION_RULER = ("Question: Find all variables that are assigned the value {v} in the text above. "
                     "Answer: According to the chain(s) of variable assignment in the text above, "
                     "{n} variables are assgined the value {v}, they are:")

COPY_MAX_SPAN = 96

TASKS = ("copy", "copy_sym", "passkey", "niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery",
         "vt")


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Corpus:
    """A token stream of one split with its word-boundary positions and key-word list."""

    def __init__(self, sp, split, cache_dir=None):
        d = os.path.join(repo_root(), "datasets", "corpora")
        names = sorted(f for f in os.listdir(d) if f.endswith("-%s.txt" % split))
        if not names:
            raise SystemExit("tiny_tasks: no datasets/corpora/*-%s.txt (run scripts/fetch-corpora.sh)" % split)
        texts = [open(os.path.join(d, n), encoding="utf-8").read() for n in names]
        key = "%08x" % (zlib.crc32("".join(texts).encode()) ^ zlib.crc32(sp.serialized_model_proto()))
        cache = os.path.join(cache_dir, "corpus-%s-%s.npy" % (split, key)) if cache_dir else None
        if cache and os.path.exists(cache):
            self.tokens = np.load(cache)
        else:
            ids = []
            for t in texts:
                for para in t.split("\n"):
                    para = para.strip()
                    if para:
                        ids.extend(sp.encode(para))
            self.tokens = np.asarray(ids, dtype=np.int32)
            if cache:
                os.makedirs(cache_dir, exist_ok=True)
                np.save(cache + ".tmp.npy", self.tokens)
                os.replace(cache + ".tmp.npy", cache)
        wb = np.zeros(sp.get_piece_size(), dtype=bool)
        for i in range(sp.get_piece_size()):
            wb[i] = sp.id_to_piece(i).startswith("\u2581")
        self.wb_pos = np.nonzero(wb[self.tokens])[0]
        import re
        words = {}
        for t in texts:
            for w in re.findall(r"\b[a-z]{4,10}\b", t):
                words[w] = words.get(w, 0) + 1
        good = sorted(w for w, n in words.items() if n >= 3)
        held = [w for w in good if zlib.crc32(w.encode()) % 5 == 0]
        train = [w for w in good if zlib.crc32(w.encode()) % 5 != 0]
        self.key_words = held if split == "heldout" else train
        self.sp = sp

    def span(self, rng, n_tokens):
        """Text of about n_tokens tokens, starting and ending at word boundaries."""
        if n_tokens <= 0:
            return ""
        wb = self.wb_pos
        i = rng.randrange(0, len(wb) - 1)
        start = int(wb[i])
        j = int(np.searchsorted(wb, start + n_tokens))
        if j >= len(wb):
            return self.span(rng, n_tokens)
        end = int(wb[j])
        return self.sp.decode(self.tokens[start:end].tolist())


def _n5(rng):
    return str(rng.randint(10000, 99999)) if rng.random() < 0.5 else str(rng.randint(1, 50000))


def _n7(rng):
    return str(rng.randint(1000000, 9999999))


def _key(rng, corpus):
    w = corpus.key_words
    if rng.random() < 0.5:
        return rng.choice(w)
    return rng.choice(w) + "-" + rng.choice(w)


def _keys(rng, corpus, n):
    ks = []
    while len(ks) < n:
        k = _key(rng, corpus)
        if all(k != o and not k.startswith(o + "-") and not o.startswith(k + "-") for o in ks):
            ks.append(k)
    return ks


class TaskGen:
    """Builds samples.  `length` is the target total token count; a sample whose fixed text is
    longer than `length` gets no filler."""

    def __init__(self, sp, corpus, joiner=None):
        self.sp = sp
        self.corpus = corpus
        self.joiner = joiner  # None: random " " or "\n" per sample; else fixed
        self.bos = sp.bos_id()

    def _ntok(self, text):
        return len(self.sp.encode(text)) if text else 0

    def _haystack(self, rng, segments, length, garbage=False):
        """segments: list of (fixed text or None for a filler slot, weight).  Filler slots share
        the token budget left over by the fixed segments, split by `weight`."""
        fixed = sum(self._ntok(s) for s, _ in segments if s is not None) + 3
        budget = max(0, length - fixed)
        out = []
        for s, w in segments:
            if s is not None:
                out.append(s)
                continue
            n = int(round(budget * w))
            if n <= 0:
                continue
            if garbage:
                g = PASSKEY_GARBAGE
                reps = max(1, n // max(1, self._ntok(g)))
                out.append(" ".join([g] * reps))
            else:
                out.append(self.corpus.span(rng, n))
        return out

    def _finish(self, rng, parts, answer, task):
        j = self.joiner if self.joiner is not None else (" " if rng.random() < 0.5 else "\n")
        prompt = j.join(p for p in parts if p)
        p_ids = self.sp.encode(prompt)
        a_ids = self.sp.encode(answer)
        toks = [self.bos] + p_ids + a_ids
        a0 = 1 + len(p_ids)
        return {"task": task, "tokens": toks, "ans": (a0, a0 + len(a_ids)), "spans": [(a0, a0 + len(a_ids))],
                "answer": answer, "prompt": prompt}

    def _append_qa(self, sample, question, answer):
        """Appends a further question and its answer (training only: more answer tokens per
        haystack).  Joined by a space: encode(a + " " + q) == encode(a) + encode(q)."""
        toks = sample["tokens"] + self.sp.encode(question)
        a_ids = self.sp.encode(answer)
        sample["spans"].append((len(toks), len(toks) + len(a_ids)))
        sample["tokens"] = toks + a_ids

    @staticmethod
    def _depth_weights(depth):
        return depth, 1.0 - depth

    def passkey(self, rng, length, depth=None, garbage=None):
        k = _n5(rng)
        depth = rng.random() if depth is None else depth
        if garbage is None:
            garbage = rng.random() < 0.1
        a, b = self._depth_weights(depth)
        parts = self._haystack(rng, [(PASSKEY_INTRO, 0), (None, a), (PASSKEY_NEEDLE.format(k=k), 0),
                                     (None, b), (PASSKEY_QUESTION, 0)], length, garbage)
        return self._finish(rng, parts, k + ".", "passkey")

    def _niah(self, rng, length, needles, question, answer, task):
        """needles: list of sentences placed at random depths in the haystack."""
        depths = sorted(rng.random() for _ in needles)
        order = list(range(len(needles)))
        rng.shuffle(order)
        segs = [(NIAH_INTRO, 0)]
        prev = 0.0
        for d, i in zip(depths, order):
            segs.append((None, d - prev))
            segs.append((needles[i], 0))
            prev = d
        segs.append((None, 1.0 - prev))
        segs.append((question, 0))
        parts = self._haystack(rng, segs, length)
        # answer order for multi-value follows order of appearance
        return self._finish(rng, parts, answer(order), task)

    def niah_single(self, rng, length, depth=None, ruler_q=False):
        k = _keys(rng, self.corpus, 1)[0]
        v = _n7(rng)
        question = (NIAH_QUESTION_RULER if ruler_q else NIAH_QUESTION).format(k=k)
        if depth is not None:
            a, b = self._depth_weights(depth)
            parts = self._haystack(rng, [(NIAH_INTRO, 0), (None, a), (NIAH_NEEDLE.format(k=k, v=v), 0),
                                         (None, b), (question, 0)], length)
            return self._finish(rng, parts, v + ".", "niah_single")
        return self._niah(rng, length, [NIAH_NEEDLE.format(k=k, v=v)], question,
                          lambda order: v + ".", "niah_single")

    def niah_multikey(self, rng, length, n_keys=4, n_questions=1, ruler_q=False):
        """n_questions > 1 (training only) asks for further keys after the first answer, each a
        different key: more key-selection signal per haystack."""
        ks = _keys(rng, self.corpus, n_keys)
        vs = [_n7(rng) for _ in ks]
        q0 = rng.randrange(n_keys)
        qs = [q0] + rng.sample([i for i in range(n_keys) if i != q0], n_questions - 1)
        fmt = NIAH_QUESTION_RULER if ruler_q else NIAH_QUESTION
        needles = [NIAH_NEEDLE.format(k=k, v=v) for k, v in zip(ks, vs)]
        s = self._niah(rng, length, needles, fmt.format(k=ks[qs[0]]),
                       lambda order: vs[qs[0]] + ".", "niah_multikey")
        for q in qs[1:]:
            self._append_qa(s, fmt.format(k=ks[q]), vs[q] + ".")
        return s

    def niah_multivalue(self, rng, length, n_values=4):
        k = _keys(rng, self.corpus, 1)[0]
        vs = [_n7(rng) for _ in range(n_values)]
        needles = [NIAH_NEEDLE.format(k=k, v=v) for v in vs]
        return self._niah(rng, length, needles, NIAH_QUESTION_MANY.format(k=k),
                          lambda order: ", ".join(vs[i] for i in order) + ".", "niah_multivalue")

    def niah_multiquery(self, rng, length, n_queries=None):
        n = n_queries or rng.randint(2, 4)
        ks = _keys(rng, self.corpus, n)
        vs = [_n7(rng) for _ in ks]
        needles = [NIAH_NEEDLE.format(k=k, v=v) for k, v in zip(ks, vs)]
        kq = ", ".join(ks[:-1]) + " and " + ks[-1]
        return self._niah(rng, length, needles, NIAH_QUESTION_MANY.format(k=kq),
                          lambda order: ", ".join(vs) + ".", "niah_multiquery")

    def vt(self, rng, length, hops=None, ruler=False, noise=False, trail=False):
        """Variable tracking, one chain of `hops` assignments after the first.
        ruler=False: the original training format ("VAR X = 12345." statements, a 1-50000 or
        5-digit value, VT_QUESTION).  ruler=True: RULER's format as dashkit's eval/tasks/ruler.c writes
        it ("VAR X = 12345" statements without a period, a 5-digit value 10000-99999, RULER's
        question with its "assgined" spelling, statements joined by newlines); noise=True: the
        haystack is the repeated "The grass is green. ..." sentences (dashkit's vt default);
        trail=True: the prompt ends in RULER's trailing space ("they are: ", a lone U+2581
        token) and the answer's first piece loses its space, as a model sees it when dashkit
        feeds RULER's prompt verbatim."""
        hops = hops or rng.randint(2, 4)
        names = []  # a list, not a set: a set's order of strings changes with PYTHONHASHSEED
        while len(names) < hops + 1:
            n = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))
            if n not in names:
                names.append(n)
        v = str(rng.randint(10000, 99999)) if ruler else _n5(rng)
        end = "" if ruler else "."
        stmts = ["VAR %s = %s%s" % (names[0], v, end)] + ["VAR %s = VAR %s%s" % (names[i + 1], names[i], end)
                                                         for i in range(hops)]
        segs = [(VT_INTRO, 0)]
        depths = sorted(rng.random() for _ in stmts)
        prev = 0.0
        for d, s in zip(depths, stmts):
            segs.append((None, d - prev))
            segs.append((s, 0))
            prev = d
        segs.append((None, 1.0 - prev))
        q = (VT_QUESTION_RULER if ruler else VT_QUESTION).format(v=v, n=hops + 1)
        segs.append((q, 0))
        parts = self._haystack(rng, segs, length, garbage=noise)
        answer = " ".join(names)
        if not trail:
            return self._finish(rng, parts, answer + ("" if ruler else "."), "vt")
        s = self._finish(rng, parts, answer, "vt")
        # "...they are: " + answer: the prompt's last token is a lone U+2581, the answer's first
        # piece has no space of its own (the tokens dashkit's engine sees, then generates)
        toks = s["tokens"][:s["ans"][0]] + [self.sp.piece_to_id("\u2581")]
        a = self.sp.encode(answer)
        first = self.sp.id_to_piece(a[0])
        assert first.startswith("\u2581"), first
        rest = first[1:]  # "" when the name starts with a byte-fallback letter ("\u2581", "<0x58>", ...)
        rid = self.sp.piece_to_id(rest) if rest else None
        head = ([] if not rest else [rid] if rid != self.sp.unk_id()
                else [self.sp.piece_to_id("<0x%02X>" % b) for b in rest.encode()])
        a0 = len(toks)
        toks = toks + head + a[1:]
        s.update(tokens=toks, ans=(a0, len(toks)), spans=[(a0, len(toks))], prompt=s["prompt"] + " ")
        return s

    def copy(self, rng, length):
        """A random span S of real text, later repeated: [BOS] P S G S with P, G other random
        text; |S| uniform in [n/4, n/2] (at most COPY_MAX_SPAN, so that copy tokens do not
        dominate the answer-token loss at long lengths) and |P|+|G| the rest, so the repeat distance varies (a
        fixed distance would teach a positional shortcut instead of induction).  Loss on the
        repeat (its first token excluded)."""
        n = max(8, length - 1)
        half = min(COPY_MAX_SPAN, rng.randint(max(4, n // 4), max(4, n // 2)))
        extra = max(0, n - 2 * half)
        pre = rng.randint(0, extra)

        def run(k):
            if k <= 0:
                return []
            i = int(self.corpus.wb_pos[rng.randrange(0, len(self.corpus.wb_pos) - 1)])
            r = self.corpus.tokens[i:i + k].tolist()
            return r if len(r) == k else run(k)
        span = run(half)
        toks = [self.bos] + run(pre) + span + run(extra - pre) + span
        a0 = len(toks) - half
        return {"task": "copy", "tokens": toks, "ans": (a0 + 1, len(toks)), "answer": None, "prompt": None}

    def copy_sym(self, rng, length, kind=None):
        """Induction on rare tokens: a list of random 5-letter capital names or 5-7 digit numbers
        (the symbols of vt and NIAH answers, which a plain copy of real text never repeats),
        embedded in real text and repeated later: [BOS] P S G S.  Loss on the repeat (its first
        token excluded).  The model trained without it (step 6402) copies these lists at 6.7 % per
        token (scripts/eval_tiny.py --tasks copy_sym --lengths 1024 --per-token).
        kind: "names" or "numbers" only; None: either, at random."""
        if kind == "names" or (kind is None and rng.random() < 0.5):
            words = lambda n: ["".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(5))  # noqa: E731
                               for _ in range(n)]
        else:
            words = lambda n: [str(rng.randint(10 ** (d - 1), 10 ** d - 1))  # noqa: E731
                               for d in [rng.randint(5, 7) for _ in range(n)]]
        n = max(2, min(12, length // 24))
        sym = " ".join(words(rng.randint(2, n)))
        k = self._ntok(sym)
        extra = max(0, length - 2 * k - 2)
        pre = rng.randint(0, extra)
        j = self.joiner if self.joiner is not None else (" " if rng.random() < 0.5 else "\n")
        head = j.join(x for x in (self.corpus.span(rng, pre), sym, self.corpus.span(rng, extra - pre)) if x)
        p_ids = self.sp.encode(head)
        s_ids = self.sp.encode(sym)
        toks = [self.bos] + p_ids + s_ids
        a0 = len(toks) - len(s_ids)
        return {"task": "copy_sym", "tokens": toks, "ans": (a0 + 1, len(toks)), "spans": [(a0 + 1, len(toks))],
                "answer": sym, "prompt": head}

    def make(self, rng, task, length, **kw):
        return getattr(self, task)(rng, length, **kw)
