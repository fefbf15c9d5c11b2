/* task.c — the task registry: names, options, presets, and loading a task's samples. */
#include "task.h"
#include "longbench.h"
#include "ruler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- registry ---- */

enum { KIND_LONGBENCH = 100 };

#define LB_OPTS                                                                                     \
    {"data", "datasets/longbench/data", "folder holding the official <dataset>.jsonl files"},       \
        {"config", "datasets/longbench/config",                                                     \
         "folder holding dataset2prompt.json and dataset2maxlen.json"},                             \
    {                                                                                               \
        "e", "false",                                                                               \
            "true: LongBench-E (data/<dataset>_e.jsonl, the length-balanced subset of pred.py --e)" \
    }

static const dk_task_opt lb_opts[] = {LB_OPTS, {NULL, NULL, NULL}};

#define GEN_OPTS                                                                                            \
    {"length", "4096", "prompt length in the model's tokens (context + question, no BOS)"},                 \
        {"depth", "random", "target needle depth in percent (0..100) or 'random' (RULER's 40-point grid)"}, \
        {"seed", "42", "PRNG seed (xoshiro256**, one stream per sample)"}, {                                \
        "max_new_tokens", "", "generation budget (default: RULER's tokens_to_generate for the task)"        \
    }

static const dk_task_opt passkey_opts[] = {GEN_OPTS, {NULL, NULL, NULL}};
static const dk_task_opt niah_opts[] = {
    GEN_OPTS,
    {"haystack", "essay",
     "essay (text of haystack_file) | noise (repeated sentences) | needle (distractor needles)"},
    {"haystack_file", "datasets/corpora/mobydick-heldout.txt",
     "plain-text haystack; also the word source for word keys/values"},
    {"key_type", "words", "words | numbers | uuids"},
    {"value_type", "numbers", "words | numbers | uuids"},
    {"keys", "1", "needle keys (extra keys are distractors unless queried)"},
    {"values", "1", "values per key"},
    {"queries", "1", "keys asked for in the question"},
    {NULL, NULL, NULL}};
static const dk_task_opt vt_opts[] = {GEN_OPTS,
                                      {"chains", "1", "variable chains"},
                                      {"hops", "4", "assignments after the first, per chain"},
                                      {NULL, NULL, NULL}};
static const dk_task_opt cwe_opts[] = {
    GEN_OPTS,
    {"haystack_file", "datasets/corpora/mobydick-heldout.txt", "text whose vocabulary supplies the words"},
    {"common", "10", "number of common words (the answers)"},
    {"freq_cw", "30", "repetitions of each common word"},
    {"freq_ucw", "3", "repetitions of each other word"},
    {NULL, NULL, NULL}};
static const dk_task_opt fwe_opts[] = {
    GEN_OPTS, {"alpha", "2.0", "Zipf exponent of the coded-word counts"}, {NULL, NULL, NULL}};
static const dk_task_opt qa_opts[] = {
    GEN_OPTS,
    {"squad_file", "datasets/squad/dev-v2.0.json", "SQuAD-format JSON (answerable questions are used)"},
    {NULL, NULL, NULL}};

#define LB(name, metric, summary) \
    { name, "longbench", metric, summary, lb_opts, KIND_LONGBENCH, NULL }
#define GEN(name, kind, opts, metric, preset, summary) \
    { name, "ruler", metric, summary, opts, kind, preset }

static const dk_task dk_tasks[] = {
    LB("narrativeqa", "qa_f1_score", "LongBench single-doc QA over stories/scripts"),
    LB("qasper", "qa_f1_score", "LongBench single-doc QA over scientific papers"),
    LB("multifieldqa_en", "qa_f1_score", "LongBench single-doc QA, multiple fields"),
    LB("hotpotqa", "qa_f1_score", "LongBench multi-doc QA (HotpotQA)"),
    LB("2wikimqa", "qa_f1_score", "LongBench multi-doc QA (2WikiMultihopQA)"),
    LB("musique", "qa_f1_score", "LongBench multi-doc QA (MuSiQue)"),
    LB("gov_report", "rouge_score", "LongBench summarisation of government reports"),
    LB("qmsum", "rouge_score", "LongBench query-based meeting summarisation"),
    LB("multi_news", "rouge_score", "LongBench multi-news summarisation"),
    LB("trec", "classification_score", "LongBench few-shot question classification"),
    LB("triviaqa", "qa_f1_score", "LongBench few-shot TriviaQA"),
    LB("samsum", "rouge_score", "LongBench few-shot dialogue summarisation"),
    LB("passage_count", "count_score", "LongBench synthetic: count unique passages"),
    LB("passage_retrieval_en", "retrieval_score", "LongBench synthetic: find the paragraph of an abstract"),
    LB("lcc", "code_sim_score", "LongBench code completion"),
    LB("repobench-p", "code_sim_score", "LongBench repository-level code completion"),
    GEN("passkey", DK_RULER_PASSKEY, passkey_opts, "string_match_all", "",
        "canonical passkey retrieval in noise"),
    GEN("niah", DK_RULER_NIAH, niah_opts, "string_match_all", "", "needle in a haystack, all knobs open"),
    GEN("niah_single_1", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=noise",
        "RULER: word key, number value, noise haystack"),
    GEN("niah_single_2", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=essay",
        "RULER: word key, number value, essay haystack"),
    GEN("niah_single_3", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=essay,value_type=uuids",
        "RULER: word key, uuid value, essay haystack"),
    GEN("niah_multikey_1", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=essay,keys=4",
        "RULER: 1 of 4 keys asked, essay haystack"),
    GEN("niah_multikey_2", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=needle",
        "RULER: haystack of distractor needles"),
    GEN("niah_multikey_3", DK_RULER_NIAH, niah_opts, "string_match_all",
        "haystack=needle,key_type=uuids,value_type=uuids",
        "RULER: uuid keys and values among distractor needles"),
    GEN("niah_multivalue", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=essay,values=4",
        "RULER: 4 values for one key"),
    GEN("niah_multiquery", DK_RULER_NIAH, niah_opts, "string_match_all", "haystack=essay,keys=4,queries=4",
        "RULER: 4 keys asked at once"),
    GEN("vt", DK_RULER_VT, vt_opts, "string_match_all", "", "RULER variable tracking (chains x hops)"),
    GEN("cwe", DK_RULER_CWE, cwe_opts, "string_match_all", "", "RULER common words extraction"),
    GEN("fwe", DK_RULER_FWE, fwe_opts, "string_match_all", "",
        "RULER frequent (Zipf) coded words extraction"),
    GEN("qa", DK_RULER_QA, qa_opts, "string_match_part", "",
        "RULER qa_1: SQuAD question among distractor documents"),
};
#define DK_N_TASKS ((int)(sizeof dk_tasks / sizeof dk_tasks[0]))

int dk_task_count(void) { return DK_N_TASKS; }
const dk_task *dk_task_at(int i) { return i >= 0 && i < DK_N_TASKS ? &dk_tasks[i] : NULL; }
const dk_task *dk_task_find(const char *name) {
    for (int i = 0; i < DK_N_TASKS; i++)
        if (!strcmp(dk_tasks[i].name, name)) return &dk_tasks[i];
    return NULL;
}

static const dk_task_opt *opt_find(const dk_task *t, const char *key) {
    for (const dk_task_opt *o = t->opts; o->name; o++)
        if (!strcmp(o->name, key)) return o;
    return NULL;
}

/* Value of key in a "k=v,k=v" preset; copies into buf. */
static const char *preset_value(const char *preset, const char *key, char *buf, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = preset; p && *p;) {
        const char *end = strchr(p, ',');
        size_t L = end ? (size_t)(end - p) : strlen(p);
        if (L > kl && !strncmp(p, key, kl) && p[kl] == '=') {
            snprintf(buf, n, "%.*s", (int)(L - kl - 1), p + kl + 1);
            return buf;
        }
        p = end ? end + 1 : p + L;
    }
    return NULL;
}

const char *dk_task_opt_value(const dk_task *t, const dk_task_kv *kv, int n_kv, const char *key) {
    static __thread char buf[256];
    const dk_task_opt *o = opt_find(t, key);
    if (!o) return NULL;
    for (int i = n_kv - 1; i >= 0; i--)
        if (!strcmp(kv[i].key, key)) return kv[i].val;
    const char *pv = preset_value(t->preset, key, buf, sizeof buf);
    return pv ? pv : o->def;
}

static dk_status parse_long(const char *task, const char *key, const char *v, long lo, long hi, long *out,
                            dk_err *e) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !*v || *end || x < lo || x > hi)
        return dk_fail(e, DK_ERR_ARG, "task %s: option %s: '%s' is not an integer in %ld..%ld", task, key, v,
                       lo, hi);
    *out = x;
    return DK_OK;
}

/* parse_long for an int field (lo..hi within int's range). */
static dk_status parse_int(const char *task, const char *key, const char *v, long lo, long hi, int *out,
                           dk_err *e) {
    long x;
    dk_status st = parse_long(task, key, v, lo, hi, &x, e);
    if (st == DK_OK) *out = (int)x;
    return st;
}

static dk_status parse_double(const char *task, const char *key, const char *v, double lo, double hi,
                              double *out, dk_err *e) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || !*v || *end || !(x >= lo && x <= hi))
        return dk_fail(e, DK_ERR_ARG, "task %s: option %s: '%s' is not a number in %g..%g", task, key, v, lo,
                       hi);
    *out = x;
    return DK_OK;
}

static dk_status parse_type(const char *task, const char *key, const char *v, dk_ruler_type *t, dk_err *e) {
    if (!strcmp(v, "words")) *t = DK_RULER_WORDS;
    else if (!strcmp(v, "numbers")) *t = DK_RULER_NUMBERS;
    else if (!strcmp(v, "uuids")) *t = DK_RULER_UUIDS;
    else return dk_fail(e, DK_ERR_ARG, "task %s: option %s: '%s' is not words|numbers|uuids", task, key, v);
    return DK_OK;
}

dk_status dk_task_load(const char *name, const dk_task_kv *kv, int n_kv, int n_samples, const dk_tok_if *tok,
                       dk_sample_set *out, dk_err *e) {
    memset(out, 0, sizeof *out);
    const dk_task *t = dk_task_find(name);
    if (!t) return dk_fail(e, DK_ERR_ARG, "unknown task '%s' (see 'dashkit tasks')", name);
    for (int i = 0; i < n_kv; i++)
        if (!opt_find(t, kv[i].key))
            return dk_fail(e, DK_ERR_ARG, "task %s has no option '%s' (see 'dashkit tasks')", name,
                           kv[i].key);
#define V(k) dk_task_opt_value(t, kv, n_kv, k)
    if (t->kind == KIND_LONGBENCH) {
        const char *ev = V("e");
        int is_e = !strcmp(ev, "true") || !strcmp(ev, "1");
        if (!is_e && strcmp(ev, "false") && strcmp(ev, "0"))
            return dk_fail(e, DK_ERR_ARG, "task %s: option e: '%s' is not true|false", name, ev);
        return (is_e ? dk_longbench_load_e : dk_longbench_load)(V("data"), V("config"), t->name, n_samples,
                                                                out, e);
    }

    dk_ruler_params p;
    dk_ruler_params_default(&p, (dk_ruler_kind)t->kind);
    dk_status st;
    long x;
    if ((st = parse_long(name, "length", V("length"), 16, 1L << 24, &p.length, e))) return st;
    if (strcmp(V("depth"), "random") && (st = parse_double(name, "depth", V("depth"), 0, 100, &p.depth, e)))
        return st;
    if ((st = parse_long(name, "seed", V("seed"), 0, 0x7FFFFFFFFFFFFFFFL, &x, e))) return st;
    p.seed = (uint64_t)x;
    if (*V("max_new_tokens")) {
        if ((st = parse_int(name, "max_new_tokens", V("max_new_tokens"), 1, 1 << 20, &p.tokens_to_generate,
                            e)))
            return st;
    }
    if (opt_find(t, "haystack")) {
        const char *h = V("haystack");
        if (!strcmp(h, "essay")) p.haystack = DK_HAYSTACK_ESSAY;
        else if (!strcmp(h, "noise")) p.haystack = DK_HAYSTACK_NOISE;
        else if (!strcmp(h, "needle")) p.haystack = DK_HAYSTACK_NEEDLE;
        else
            return dk_fail(e, DK_ERR_ARG, "task %s: option haystack: '%s' is not essay|noise|needle", name,
                           h);
        if ((st = parse_type(name, "key_type", V("key_type"), &p.key_type, e))) return st;
        if ((st = parse_type(name, "value_type", V("value_type"), &p.value_type, e))) return st;
        if ((st = parse_int(name, "keys", V("keys"), 1, 256, &p.n_keys, e))) return st;
        if ((st = parse_int(name, "values", V("values"), 1, 256, &p.n_values, e))) return st;
        if ((st = parse_int(name, "queries", V("queries"), 1, 256, &p.n_queries, e))) return st;
    }
    if (opt_find(t, "haystack_file")) p.haystack_path = V("haystack_file");
    if (opt_find(t, "squad_file")) p.squad_path = V("squad_file");
    if (opt_find(t, "chains")) {
        if ((st = parse_int(name, "chains", V("chains"), 1, 64, &p.n_chains, e))) return st;
        if ((st = parse_int(name, "hops", V("hops"), 1, 64, &p.n_hops, e))) return st;
    }
    if (opt_find(t, "common")) {
        if ((st = parse_int(name, "common", V("common"), 1, 1000, &p.n_cw, e))) return st;
        if ((st = parse_int(name, "freq_cw", V("freq_cw"), 2, 100000, &p.freq_cw, e))) return st;
        if ((st = parse_int(name, "freq_ucw", V("freq_ucw"), 1, 100000, &p.freq_ucw, e))) return st;
    }
    if (opt_find(t, "alpha") && (st = parse_double(name, "alpha", V("alpha"), 1.0001, 4, &p.alpha, e)))
        return st;
#undef V
    return dk_ruler_generate(&p, n_samples > 0 ? n_samples : 10, tok, out, e);
}
