/* ruler_build.c — the prompt text of a RULER sample (ruler_int.h): its plan (fixed random choices)
 * and a haystack size h into context and question, per kind; ruler.c searches the h that fits. */
#include "ruler_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- prompt builders ---- */

/* Whether a haystack word ends a sentence: its last character, after any closing quotes or
 * brackets (" ' ” ’ ) ]), is '.', '!' or '?'. This approximates nltk's punkt sent_tokenize, which
 * RULER uses; unlike punkt it also ends a sentence after abbreviations such as "Mr." or "St.". */
static int ends_sentence(const char *w, size_t n) {
    for (;;) {
        if (n >= 1 && strchr("\"')]", w[n - 1])) n--;
        else if (n >= 3 && !memcmp(w + n - 3, "\xE2\x80", 2) && (w[n - 1] == '\x9D' || w[n - 1] == '\x99'))
            n -= 3;
        else break;
    }
    return n >= 1 && strchr(".!?", w[n - 1]) != NULL;
}

/* Inserts needles (sorted by depth, stable) into h haystack units produced by unit(i), joined by
 * sep. Where a needle at depth d% goes:
 *   sentences (essay haystack, units are words): as RULER's niah.py, at the sentence boundary
 *     floor(n_sents * (d / 100)), where n_sents counts the haystack's sentences (ends_sentence;
 *     a final run of words without an end is a sentence too): 0 is before the first sentence,
 *     n_sents after the last; needles at the same boundary keep their order;
 *   otherwise (units are whole sentences or needles): at the unit boundary nearest to d% of the
 *     haystack's bytes.
 * Returns the byte offset of the target needle in s, or -1 (s->oom set) when out of memory. */
typedef void (*unit_fn)(const gen_ctx *g, const sample_plan *sp, long i, dk_strbuf *s);

static long emit_with_needles(const gen_ctx *g, const sample_plan *sp, long h, unit_fn unit, const char *sep,
                              int sentences, dk_strbuf *s) {
    int n = sp->n_needles;
    int order[256];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by depth, stable */
        for (int j = i; j > 0 && sp->nd_depth[order[j - 1]] > sp->nd_depth[order[j]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    dk_strbuf hs = {0};
    size_t *off = malloc((size_t)(h + 1) *
                         sizeof(size_t)); /* (h + 1) byte offset of unit i in hs; off[h] = hs.n */
    long *cut = sentences ? malloc((size_t)(h + 1) * sizeof(long))
                          : NULL; /* (n_sents + 1) unit index after sentence j - 1 */
    if (!off || (sentences && !cut)) {
        free(off);
        free(cut);
        s->oom = 1;
        return -1;
    }
    dk_strbuf_adds(&hs, "");
    for (long i = 0; i < h; i++) {
        if (i) dk_strbuf_adds(&hs, sep);
        off[i] = hs.n;
        unit(g, sp, i, &hs);
    }
    off[h] = hs.n;
    if (hs.oom) {
        free(off);
        free(cut);
        free(hs.s);
        s->oom = 1;
        return -1;
    }
    long n_sents = 0;
    if (cut) {
        cut[0] = 0;
        for (long i = 0; i < h; i++) {
            size_t a = off[i], b = i + 1 < h ? off[i + 1] - strlen(sep) : hs.n;
            if (i == h - 1 || ends_sentence(hs.s + a, b - a)) cut[++n_sents] = i + 1;
        }
    }
    long tpos = -1, prev = 0;
    int first = 1;
    for (int k = 0; k < n; k++) {
        double depth = sp->nd_depth[order[k]];
        long lo;
        if (cut) {
            long j = (long)floor((double)n_sents * (depth / 100.0));
            lo = cut[j < 0 ? 0 : j > n_sents ? n_sents : j];
        } else {
            double target = depth / 100.0 * (double)hs.n;
            lo = 0;
            long hi = h; /* first boundary >= target, or the previous one when nearer */
            while (lo < hi) {
                long mid = (lo + hi) / 2;
                if ((double)off[mid] < target) lo = mid + 1;
                else hi = mid;
            }
            if (lo > 0 && target - (double)off[lo - 1] < (double)off[lo] - target) lo--;
        }
        if (lo < prev) lo = prev;
        if (lo > prev) { /* units prev..lo-1 */
            if (!first) dk_strbuf_adds(s, sep);
            size_t a = off[prev], b = lo < h ? off[lo] - strlen(sep) : hs.n;
            dk_strbuf_add(s, hs.s + a, b - a);
            first = 0;
        }
        if (!first) dk_strbuf_adds(s, sep);
        first = 0;
        if (order[k] == sp->target) tpos = (long)s->n;
        dk_strbuf_adds(s, sp->needle[order[k]]);
        prev = lo;
    }
    if (prev < h) {
        if (!first) dk_strbuf_adds(s, sep);
        dk_strbuf_add(s, hs.s + off[prev], hs.n - off[prev]);
    }
    free(off);
    free(cut);
    free(hs.s);
    return tpos;
}

static void unit_noise(const gen_ctx *g, const sample_plan *sp, long i, dk_strbuf *s) {
    (void)g;
    (void)sp;
    static const char *const sent[5] = {"The grass is green.", "The sky is blue.", "The sun is yellow.",
                                        "Here we go.", "There and back again."};
    dk_strbuf_adds(s, sent[i % 5]);
}

static void unit_essay(const gen_ctx *g, const sample_plan *sp, long i, dk_strbuf *s) {
    (void)sp;
    dk_strbuf_adds(s, g->essay.w[i % g->essay.n]);
}

static void unit_needle(const gen_ctx *g, const sample_plan *sp, long i, dk_strbuf *s) {
    /* distractor needle i: key and value drawn from a stream private to (sample, i) */
    rng_t r;
    rng_seed(&r, sp->shuffle_seed, (uint64_t)i + 1);
    char k[128], v[128];
    for (int tries = 0; tries < 1000; tries++) { /* neither part may repeat a real needle's */
        rand_value(&r, g->p->key_type, &g->vocab, k, sizeof k);
        rand_value(&r, g->p->value_type, &g->vocab, v, sizeof v);
        int clash = 0;
        for (int j = 0; j < sp->n_needles; j++)
            if (strstr(sp->needle[j], k) || strstr(sp->needle[j], v)) clash = 1;
        for (int j = 0; j < sp->n_ans; j++)
            if (strstr(v, sp->ans[j]) || strstr(k, sp->ans[j])) clash = 1;
        if (!clash) break;
    }
    dk_strbuf_addf(s, "One of the special magic %s for %s is: %s.", type_plural(g->p->value_type), k, v);
}

static void unit_none(const gen_ctx *g, const sample_plan *sp, long i, dk_strbuf *s) {
    (void)g;
    (void)sp;
    (void)i;
    (void)s;
}

/* build, one function per generator kind: context c and question q for haystack size h; each
 * returns the target needle's offset in c, or -1. */
/* build for DK_RULER_PASSKEY. */
static long build_passkey(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    long tpos = -1;
    dk_strbuf_adds(c, "There is an important info hidden inside a lot of irrelevant text. Find it and "
                      "memorize them. I will quiz you about the important information there.\n");
    long at = llround(sp->nd_depth[0] / 100.0 * (double)h);
    for (long i = 0; i < at; i++) {
        if (i) dk_strbuf_adds(c, " ");
        unit_noise(g, sp, i, c);
    }
    dk_strbuf_adds(c, "\n");
    tpos = (long)c->n;
    dk_strbuf_adds(c, sp->needle[0]);
    dk_strbuf_adds(c, "\n");
    for (long i = at; i < h; i++) {
        if (i > at) dk_strbuf_adds(c, " ");
        unit_noise(g, sp, i, c);
    }
    dk_strbuf_adds(c, "\n");
    dk_strbuf_adds(q, "What is the pass key? The pass key is");
    return tpos;
}

/* build for DK_RULER_NIAH. */
static long build_niah(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    const dk_ruler_params *p = g->p;
    long tpos = -1;
    const char *V = sp->vtype;
    dk_strbuf_addf(c,
                   "Some special magic %s are hidden within the following text. Make sure to "
                   "memorize it. I will quiz you about the %s afterwards.\n",
                   V, V);
    size_t base = c->n;
    unit_fn u = p->haystack == DK_HAYSTACK_ESSAY   ? unit_essay
                : p->haystack == DK_HAYSTACK_NOISE ? unit_noise
                                                   : unit_needle;
    long t = emit_with_needles(g, sp, h, u, " ", p->haystack == DK_HAYSTACK_ESSAY, c);
    tpos = t >= 0 ? t : -1;
    (void)base;
    dk_strbuf_adds(c, "\n");
    dk_strbuf_addf(q,
                   "What are all the special magic %s for %s mentioned in the provided text? "
                   "The special magic %s for %s mentioned in the provided text are",
                   V, sp->query, V, sp->query);
    return tpos;
}

/* build for DK_RULER_VT. */
static long build_vt(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    const dk_ruler_params *p = g->p;
    long tpos = -1;
    dk_strbuf_adds(
        c, "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n");
    /* statements at sorted fractional positions among h noise blocks, joined by "\n" */
    int k = 0, first = 1;
    for (long i = 0; i <= h; i++) {
        while (k < sp->n_stmt && (long)floor(sp->st_pos[k] * (double)h) <= i) {
            if (!first) dk_strbuf_adds(c, "\n");
            first = 0;
            if (k == sp->target) tpos = (long)c->n;
            dk_strbuf_adds(c, sp->stmt[k++]);
        }
        if (i == h) break;
        if (!first) dk_strbuf_adds(c, i % 5 ? " " : "\n");
        first = 0;
        unit_noise(g, sp, i, c);
    }
    dk_strbuf_adds(c, "\n");
    /* RULER's answer prefix spells "assgined"; kept for comparability */
    dk_strbuf_addf(q,
                   "Question: Find all variables that are assigned the value %s in the text above. "
                   "Answer: According to the chain(s) of variable assignment in the text above, %d "
                   "variables are assgined the value %s, they are: ",
                   sp->query, p->n_hops + 1, sp->query);
    return tpos;
}

/* build for DK_RULER_CWE. */
static long build_cwe(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    const dk_ruler_params *p = g->p;
    dk_strbuf_adds(c, "Below is a numbered list of words. In these words, some appear more often than "
                      "others. Memorize the ones that appear most often.\n");
    long n = (long)p->n_cw * p->freq_cw + h;          /* h uncommon entries, freq_ucw per word */
    int *idx = malloc((size_t)(n + 1) * sizeof(int)); /* word index per list entry */
    if (!idx) {
        c->oom = 1;
        return -1;
    }
    long m = 0;
    for (int w = 0; w < p->n_cw; w++)
        for (int r = 0; r < p->freq_cw; r++) idx[m++] = w;
    for (long j = 0; j < h; j++) idx[m++] = p->n_cw + (int)(j / p->freq_ucw);
    rng_t r;
    rng_seed(&r, sp->shuffle_seed, (uint64_t)h);
    rng_shuffle(&r, idx, n);
    for (long i = 0; i < n; i++) dk_strbuf_addf(c, "%s%ld. %s", i ? " " : "", i + 1, sp->coded.w[idx[i]]);
    free(idx);
    dk_strbuf_adds(c, "\n");
    dk_strbuf_addf(q,
                   "Question: What are the %d most common words in the above list? Answer: The top %d "
                   "words that appear most often in the list are:",
                   p->n_cw, p->n_cw);
    return -1;
}

/* build for DK_RULER_FWE. */
static long build_fwe(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    const dk_ruler_params *p = g->p;
    dk_strbuf_adds(c, "Read the following coded text and track the frequency of each coded word. Find the "
                      "three most frequently appeared coded words. ");
    /* Zipf counts: word r (1-based) appears floor(h / r^alpha) times */
    long n = 0;
    for (int r = 1; r <= sp->coded.n; r++) n += (long)floor((double)h / pow(r, p->alpha));
    int *idx = malloc((size_t)(n + 1) * sizeof(int));
    if (!idx) {
        c->oom = 1;
        return -1;
    }
    long m = 0;
    for (int r = 1; r <= sp->coded.n; r++) {
        long k = (long)floor((double)h / pow(r, p->alpha));
        for (long t = 0; t < k; t++) idx[m++] = r - 1;
    }
    rng_t rr;
    rng_seed(&rr, sp->shuffle_seed, (uint64_t)h);
    rng_shuffle(&rr, idx, n);
    for (long i = 0; i < n; i++) {
        if (i) dk_strbuf_adds(c, i % 10 ? " " : " .... ");
        dk_strbuf_adds(c, sp->coded.w[idx[i]]);
    }
    free(idx);
    dk_strbuf_adds(c, "\n");
    dk_strbuf_adds(q, "Question: Do not provide any explanation. Please ignore the dots '....'. What are the "
                      "three most frequently appeared words in the above coded text? Answer: According to "
                      "the coded text above, the three most frequently appeared words are:");
    return -1;
}

/* build for DK_RULER_QA. */
static long build_qa(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    long tpos = -1;
    static const char instr[] = "Answer the question based on the given documents. Only give me "
                                "the answer and do not output any other words.";
    dk_strbuf_addf(c, "%s\n\nThe following are given documents.\n\n", instr);
    int gold = g->qas[sp->qa_idx].doc;
    long at = llround(sp->nd_depth[0] / 100.0 * (double)h), d = 0, num = 1;
    for (long i = 0; i <= h; i++) {
        if (i == at) {
            if (num > 1) dk_strbuf_adds(c, "\n\n");
            tpos = (long)c->n;
            dk_strbuf_addf(c, "Document %ld:\n", num++);
            dk_strbuf_adds(c, g->docs[gold]);
        }
        if (i == h) break;
        while (sp->doc_perm[d] == gold) d++;
        if (num > 1) dk_strbuf_adds(c, "\n\n");
        dk_strbuf_addf(c, "Document %ld:\n", num++);
        dk_strbuf_adds(c, g->docs[sp->doc_perm[d++]]);
    }
    dk_strbuf_adds(c, "\n\n");
    dk_strbuf_addf(q, "%s\n\nQuestion: %s Answer:", instr, g->qas[sp->qa_idx].q);
    return tpos;
}

/* Builds context and question for haystack size h; returns the target needle offset or -1. */
long ruler_build(const gen_ctx *g, sample_plan *sp, long h, dk_strbuf *c, dk_strbuf *q) {
    const dk_ruler_params *p = g->p;
    c->n = 0;
    q->n = 0;
    dk_strbuf_adds(c, "");
    dk_strbuf_adds(q, "");
    switch (p->kind) {
    case DK_RULER_PASSKEY: return build_passkey(g, sp, h, c, q);
    case DK_RULER_NIAH: return build_niah(g, sp, h, c, q);
    case DK_RULER_VT: return build_vt(g, sp, h, c, q);
    case DK_RULER_CWE: return build_cwe(g, sp, h, c, q);
    case DK_RULER_FWE: return build_fwe(g, sp, h, c, q);
    case DK_RULER_QA: return build_qa(g, sp, h, c, q);
    }
    (void)unit_none;
    return -1;
}
