/* test_ruler.c — generators: determinism, length in model tokens within 1%, answers present as
 * specified, depth placement, Gutenberg stripping, option errors. Tokens: llama2.c tok512. */
#include "support/dk_test.h"
#include "ruler.h"
#include "task.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dk_tokenizer *g_tok;
static dk_tok_if g_if;
static char g_hay[1024], g_squad[1024];

static int setup_ok(void) {
    char p[1024];
    if (!dk_test_fixture(p, sizeof p, "llama2c/tok512.bin")) return 0;
    if (!dk_test_fixture(g_hay, sizeof g_hay, "haystack/pg1342_pride_and_prejudice.txt")) return 0;
    if (!dk_test_fixture(g_squad, sizeof g_squad, "squad/squad_v2_dev_subset_haystack_small.json")) return 0;
    if (!g_tok) {
        dk_err e;
        ck_assert_int_eq(dk_tokenizer_load_llama2c(p, 512, &g_tok, &e), DK_OK);
        g_if = dk_tok_if_engine(g_tok);
    }
    return 1;
}

static long occ(const char *h, const char *n) {
    long c = 0;
    for (const char *p = h; (p = strstr(p, n)); p++) c++;
    return c;
}

static dk_status gen(const char *task, const char *const *kv, int nkv, int n, dk_sample_set *out, dk_err *e) {
    dk_task_kv a[16];
    int k = 0;
    for (int i = 0; i < nkv; i += 2) a[k++] = (dk_task_kv){kv[i], kv[i + 1]};
    const dk_task *t = dk_task_find(task);
    if (t && dk_task_opt_value(t, NULL, 0, "haystack_file")) a[k++] = (dk_task_kv){"haystack_file", g_hay};
    if (t && dk_task_opt_value(t, NULL, 0, "squad_file")) a[k++] = (dk_task_kv){"squad_file", g_squad};
    return dk_task_load(task, a, k, n, &g_if, out, e);
}

static long ntok(const dk_sample *s) {
    size_t a = strlen(s->context), b = strlen(s->question);
    char *all = malloc(a + b + 1);
    memcpy(all, s->context, a);
    memcpy(all + a, s->question, b + 1);
    long n = dk_tok_count(&g_if, all, a + b, NULL);
    free(all);
    return n;
}

static const char *const all_tasks[] = {"passkey",
                                        "niah_single_1",
                                        "niah_single_2",
                                        "niah_single_3",
                                        "niah_multikey_1",
                                        "niah_multikey_2",
                                        "niah_multikey_3",
                                        "niah_multivalue",
                                        "niah_multiquery",
                                        "vt",
                                        "cwe",
                                        "fwe",
                                        "qa"};

START_TEST(test_determinism_and_length) {
    if (!setup_ok()) return;
    const char *task = all_tasks[_i];
    int cwe = !strcmp(task, "cwe");
    const char *kv[] = {"length", "2000", "seed", "7", "freq_cw", "10"};
    dk_sample_set a, b, c;
    dk_err e = {{0}};
    ck_assert_msg(gen(task, kv, cwe ? 6 : 4, 2, &a, &e) == DK_OK, "%s: %s", task, e.msg);
    ck_assert_int_eq(gen(task, kv, cwe ? 6 : 4, 2, &b, &e), DK_OK);
    const char *kv2[] = {"length", "2000", "seed", "8", "freq_cw", "10"};
    ck_assert_int_eq(gen(task, kv2, cwe ? 6 : 4, 1, &c, &e), DK_OK);
    /* +-1% where the haystack unit is a word or sentence; needle and document haystacks are
     * sized in whole needles (~40 tok512 tokens) / documents */
    long slack = strstr(task, "multikey_2") || strstr(task, "multikey_3") ? 60 : 20;
    ck_assert_int_eq(a.n, 2);
    for (int i = 0; i < a.n; i++) {
        ck_assert_str_eq(a.s[i].context, b.s[i].context);
        ck_assert_str_eq(a.s[i].question, b.s[i].question);
        ck_assert_int_eq(a.s[i].n_answers, b.s[i].n_answers);
        for (int k = 0; k < a.s[i].n_answers; k++) ck_assert_str_eq(a.s[i].answers[k], b.s[i].answers[k]);
        long n = ntok(&a.s[i]);
        ck_assert_int_eq(n, a.s[i].length);
        ck_assert_int_le(n, 2000);
        if (strcmp(task, "qa")) ck_assert_msg(n >= 2000 - slack, "%s: %ld tokens for 2000", task, n);
        ck_assert_int_ge(a.s[i].n_answers, 1);
    }
    ck_assert_str_ne(a.s[0].context, c.s[0].context);
    ck_assert_str_ne(a.s[0].context, a.s[1].context);
    dk_sample_set_free(&a);
    dk_sample_set_free(&b);
    dk_sample_set_free(&c);
}
END_TEST

START_TEST(test_answers_present) {
    if (!setup_ok()) return;
    dk_err e = {{0}};
    dk_sample_set s;
    const char *kv[] = {"length", "1500"};
    /* passkey: the canonical needle exactly once, the key twice (in the needle) */
    ck_assert_int_eq(gen("passkey", kv, 2, 3, &s, &e), DK_OK);
    for (int i = 0; i < s.n; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "The pass key is %s. Remember it. %s is the pass key.",
                 s.s[i].answers[0], s.s[i].answers[0]);
        ck_assert_int_eq(occ(s.s[i].context, needle), 1);
        ck_assert_int_eq(occ(s.s[i].context, s.s[i].answers[0]), 2);
        ck_assert(!strncmp(s.s[i].context,
                           "There is an important info hidden inside a lot of irrelevant text.", 66));
        ck_assert_str_eq(s.s[i].question, "What is the pass key? The pass key is");
    }
    dk_sample_set_free(&s);
    /* niah: every answer value exactly once, inside RULER's needle sentence */
    static const char *const niah[] = {"niah_single_1",   "niah_single_2",   "niah_single_3",
                                       "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
                                       "niah_multivalue", "niah_multiquery"};
    for (int t = 0; t < 8; t++) {
        ck_assert_msg(gen(niah[t], kv, 2, 2, &s, &e) == DK_OK, "%s", e.msg);
        int want = !strcmp(niah[t], "niah_multivalue") || !strcmp(niah[t], "niah_multiquery") ? 4 : 1;
        for (int i = 0; i < s.n; i++) {
            ck_assert_int_eq(s.s[i].n_answers, want);
            for (int k = 0; k < s.s[i].n_answers; k++) {
                ck_assert_msg(occ(s.s[i].context, s.s[i].answers[k]) == 1, "%s: '%s' not exactly once",
                              niah[t], s.s[i].answers[k]);
                ck_assert_ptr_nonnull(strstr(s.s[i].context, "One of the special magic "));
            }
        }
        dk_sample_set_free(&s);
    }
    /* vt: the value once, every chain variable assigned */
    const char *kvt[] = {"length", "1500", "chains", "2", "hops", "3"};
    ck_assert_int_eq(gen("vt", kvt, 6, 2, &s, &e), DK_OK);
    for (int i = 0; i < s.n; i++) {
        ck_assert_int_eq(s.s[i].n_answers, 4);
        for (int k = 0; k < 4; k++) {
            char a[32];
            snprintf(a, sizeof a, "VAR %s = ", s.s[i].answers[k]);
            ck_assert_int_eq(occ(s.s[i].context, a), 1);
        }
        ck_assert_int_eq(occ(s.s[i].context, "VAR "), 2 * 4 + 2 * 3);
    }
    dk_sample_set_free(&s);
    /* cwe: each common word is an entry exactly freq_cw times */
    const char *kc[] = {"length", "5000"};
    ck_assert_int_eq(gen("cwe", kc, 2, 1, &s, &e), DK_OK);
    for (int k = 0; k < s.s[0].n_answers; k++) {
        long c = 0;
        const char *w = s.s[0].answers[k];
        for (const char *p = s.s[0].context; (p = strstr(p, w)); p++)
            if (p[-1] == ' ' && p[-2] == '.' && (p[strlen(w)] == ' ' || p[strlen(w)] == '\n')) c++;
        ck_assert_int_eq(c, 30);
    }
    dk_sample_set_free(&s);
    /* fwe: the three answers are strictly the most frequent words */
    ck_assert_int_eq(gen("fwe", kv, 2, 1, &s, &e), DK_OK);
    long c0 = occ(s.s[0].context, s.s[0].answers[0]), c1 = occ(s.s[0].context, s.s[0].answers[1]),
         c2 = occ(s.s[0].context, s.s[0].answers[2]);
    ck_assert(c0 > c1 && c1 > c2 && c2 > 0);
    dk_sample_set_free(&s);
    /* qa: the gold document once, its answer somewhere in the context */
    const char *kq[] = {"length", "3000"};
    ck_assert_int_eq(gen("qa", kq, 2, 3, &s, &e), DK_OK);
    for (int i = 0; i < s.n; i++) {
        ck_assert_ptr_nonnull(strstr(s.s[i].context, s.s[i].answers[0]));
        ck_assert_int_eq(s.s[i].metric, DK_METRIC_STRING_MATCH_PART);
        const char *gold = s.s[i].context + s.s[i].needle_pos;
        ck_assert(!strncmp(gold, "Document ", 9));
        const char *body = strchr(gold, '\n') + 1, *end = strstr(body, "\n\n");
        char *doc = strndup(body, (size_t)(end - body));
        ck_assert_int_eq(occ(s.s[i].context, doc), 1);
        free(doc);
    }
    dk_sample_set_free(&s);
}
END_TEST

/* Sentence end as RULER's punkt is approximated for the essay haystack: the word's last character,
 * after closing quotes/brackets (" ' ” ’ ) ]), is '.', '!' or '?'. */
static int word_ends_sentence(const char *w, const char *e) {
    while (e > w) {
        if (strchr("\"')]", e[-1])) e--;
        else if (e - w >= 3 && !strncmp(e - 3, "\xE2\x80\x9D", 3)) e -= 3;
        else if (e - w >= 3 && !strncmp(e - 3, "\xE2\x80\x99", 3)) e -= 3;
        else break;
    }
    return e > w && strchr(".!?", e[-1]);
}

typedef struct {
    const char *a, *b;
} span;

/* Needle spans ("One of the special magic ... is: VALUE.", value without spaces) in [h0, he), in order. */
static int find_needles(const char *h0, const char *he, span *ns, int max) {
    int n = 0;
    for (const char *p = h0; (p = strstr(p, "One of the special magic ")) && p < he; p++) {
        const char *v = strstr(p, " is: ") + 5, *b = v;
        while (b < he && *b != ' ') b++;
        if (n < max) ns[n] = (span){p, b};
        n++;
    }
    return n;
}

/* Walks the " "-joined words of the haystack region [h0, he) skipping the needles ns[0..n) (as
 * whole words). For needle i: before[i] = haystack sentences before it (a final run of words
 * without an end counts as one), boundary[i] = whether it starts the region, follows a sentence
 * end, or follows only needles after the last haystack word. Returns the haystack's sentences. */
static long sentences_around(const char *h0, const char *he, const span *ns, int n, long *before,
                             int *boundary) {
    long ends = 0;
    int open = 0, k = 0;
    const char *last_word = NULL;
    for (const char *p = h0; p < he;) {
        if (k < n && p == ns[k].a) {
            before[k] = ends + open;
            boundary[k] = !open;
            ck_assert_msg(ns[k].b == he || *ns[k].b == ' ', "needle not followed by a space");
            p = ns[k++].b;
        } else {
            const char *q = memchr(p, ' ', (size_t)(he - p));
            if (!q) q = he;
            ck_assert_msg(q > p, "empty word in the haystack");
            last_word = p;
            if (word_ends_sentence(p, q)) {
                ends++;
                open = 0;
            } else open = 1;
            p = q;
        }
        if (p < he) {
            ck_assert_int_eq(*p, ' ');
            p++;
        }
    }
    ck_assert_int_eq(k, n);
    for (int i = 0; i < n; i++)
        if (!boundary[i] && (!last_word || ns[i].a > last_word)) boundary[i] = 1;
    return ends + open;
}

/* Shared contexts (the report's cluster bootstrap): samples over a fixed haystack at one length
 * and depth carry the same context_key; other depths or lengths another; samples whose haystack
 * is itself drawn per sample (needle haystack, qa documents, vt) none. */
START_TEST(test_context_key) {
    if (!setup_ok()) return;
    const char *kv50[] = {"length", "1000", "depth", "50"}, *kv25[] = {"length", "1000", "depth", "25"};
    static const char *const shared[] = {"passkey", "niah_single_2", "niah_single_1"};
    for (int t = 0; t < 3; t++) {
        dk_sample_set a, b;
        dk_err e = {{0}};
        ck_assert_int_eq(gen(shared[t], kv50, 4, 3, &a, &e), DK_OK);
        ck_assert_int_eq(gen(shared[t], kv25, 4, 1, &b, &e), DK_OK);
        for (int i = 0; i < 3; i++) {
            ck_assert_ptr_nonnull(a.s[i].context_key);
            ck_assert_str_eq(a.s[i].context_key, a.s[0].context_key);
        }
        ck_assert_str_ne(b.s[0].context_key, a.s[0].context_key);
        dk_sample_set_free(&a);
        dk_sample_set_free(&b);
    }
    static const char *const own[] = {"niah_multikey_2", "vt", "qa"};
    for (int t = 0; t < 3; t++) {
        dk_sample_set a;
        dk_err e = {{0}};
        ck_assert_msg(gen(own[t], kv50, !strcmp(own[t], "vt") ? 2 : 4, 2, &a, &e) == DK_OK, "%s: %s", own[t],
                      e.msg);
        for (int i = 0; i < a.n; i++) ck_assert_ptr_null(a.s[i].context_key);
        dk_sample_set_free(&a);
    }
}
END_TEST

START_TEST(test_depth) {
    if (!setup_ok()) return;
    static const char *const tasks[] = {"passkey", "niah_single_2", "niah_single_1", "qa"};
    static const char *const depths[] = {"0", "25", "50", "75", "100"};
    for (int t = 0; t < 4; t++)
        for (int d = 0; d < 5; d++) {
            const char *kv[] = {"length", "3000", "depth", depths[d]};
            dk_sample_set s;
            dk_err e = {{0}};
            ck_assert_int_eq(gen(tasks[t], kv, 4, 1, &s, &e), DK_OK);
            const char *c = s.s[0].context;
            /* the haystack region: after the instruction line(s), before the final newline(s) */
            const char *h0 = !strcmp(tasks[t], "qa") ? strstr(c, "Document 1:") : strchr(c, '\n') + 1;
            size_t end = strlen(c);
            while (end > 0 && c[end - 1] == '\n') end--;
            double rel = 100.0 * (double)(c + s.s[0].needle_pos - h0) / (double)(c + end - h0);
            int essay = !strcmp(tasks[t], "niah_single_2");
            if (essay) {
                /* RULER: at sentence boundary int(n_sents * (depth / 100)) of the haystack's sentences */
                span ns[2];
                long before;
                int boundary;
                ck_assert_int_eq(find_needles(h0, c + end, ns, 2), 1);
                ck_assert(ns[0].a == c + s.s[0].needle_pos);
                long n_sents = sentences_around(h0, c + end, ns, 1, &before, &boundary);
                ck_assert_int_gt(n_sents, 20);
                ck_assert_msg(boundary, "depth %s: needle not at a sentence boundary: ...%.60s", depths[d],
                              ns[0].a - 60);
                ck_assert_int_eq(before, (long)floor((double)n_sents * (atof(depths[d]) / 100.0)));
            }
            /* qa moves whole documents, the essay needle up to a sentence */
            double tol = !strcmp(tasks[t], "qa") ? 15.0 : essay ? 10.0 : 2.0;
            ck_assert_msg(fabs(rel - atof(depths[d])) <= tol || (d == 4 && rel > 100 - tol - 5),
                          "%s depth %s: needle at %.2f%%", tasks[t], depths[d], rel);
            ck_assert(s.s[0].depth == atof(depths[d]));
            dk_sample_set_free(&s);
        }
}
END_TEST

START_TEST(test_depth_multikey_sentences) {
    if (!setup_ok()) return;
    /* niah_multikey_1: 4 needles (1 target at the depth, 3 distractors at random depths), each at a
     * sentence boundary */
    static const char *const depths[] = {"0", "50", "100", NULL};
    for (int d = 0; d < 4; d++) {
        const char *kv[] = {"length", "3000", "depth", depths[d]};
        dk_sample_set s;
        dk_err e = {{0}};
        ck_assert_int_eq(gen("niah_multikey_1", kv, depths[d] ? 4 : 2, 3, &s, &e), DK_OK);
        for (int i = 0; i < s.n; i++) {
            const char *c = s.s[i].context, *h0 = strchr(c, '\n') + 1;
            size_t end = strlen(c);
            while (end > 0 && c[end - 1] == '\n') end--;
            span ns[8];
            long before[8];
            int boundary[8], target = -1;
            ck_assert_int_eq(find_needles(h0, c + end, ns, 8), 4);
            long n_sents = sentences_around(h0, c + end, ns, 4, before, boundary);
            long want = (long)floor((double)n_sents * (s.s[i].depth / 100.0));
            for (int k = 0; k < 4; k++) {
                ck_assert_msg(boundary[k],
                              "depth %s sample %d needle %d not at a sentence boundary: ...%.60s",
                              depths[d] ? depths[d] : "random", i, k, ns[k].a - 60);
                if (ns[k].a == c + s.s[i].needle_pos) target = k;
                int on_grid = 0; /* every needle's depth is one of RULER's 40 evenly spaced ones */
                for (int j = 0; j < 40; j++)
                    if (before[k] == (long)floor((double)n_sents * (round(100.0 * j / 39.0) / 100.0)))
                        on_grid = 1;
                ck_assert_msg(on_grid, "needle %d after %ld of %ld sentences", k, before[k], n_sents);
                if (k) ck_assert_int_ge(before[k], before[k - 1]);
            }
            ck_assert_int_ge(target, 0);
            ck_assert_int_eq(before[target], want);
        }
        dk_sample_set_free(&s);
    }
}
END_TEST

START_TEST(test_haystack_and_errors) {
    if (!setup_ok()) return;
    char *txt;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_ruler_read_haystack(g_hay, &txt, &e), DK_OK);
    ck_assert_ptr_null(strstr(txt, "*** START OF"));
    ck_assert_ptr_null(strstr(txt, "*** END OF"));
    ck_assert_ptr_null(strstr(txt, "Project Gutenberg License"));
    ck_assert_ptr_null(strchr(txt, '\r'));
    ck_assert((unsigned char)txt[0] != 0xEF);
    ck_assert_ptr_nonnull(strstr(txt, "It is a truth universally acknowledged"));
    free(txt);
    dk_sample_set s = {0};
    const char *bad1[] = {"depth", "150"};
    ck_assert_int_eq(gen("passkey", bad1, 2, 1, &s, &e), DK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "depth"));
    const char *bad2[] = {"colour", "blue"};
    ck_assert_int_eq(gen("niah", bad2, 2, 1, &s, &e), DK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "'colour'"));
    const char *bad3[] = {"length", "20"};
    ck_assert_int_eq(gen("niah", bad3, 2, 1, &s, &e), DK_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(e.msg, "too small"));
    const char *bad4[] = {"length", "100000"};
    ck_assert_int_eq(gen("qa", bad4, 2, 1, &s, &e), DK_ERR_ARG);
    ck_assert_int_eq(s.n, 0);
    const char *bad5[] = {"key_type", "emoji"};
    ck_assert_int_eq(gen("niah", bad5, 2, 1, &s, &e), DK_ERR_ARG);
    ck_assert_int_eq(dk_task_load("nope", NULL, 0, 1, &g_if, &s, &e), DK_ERR_ARG);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ruler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_determinism_and_length, 0, (int)(sizeof all_tasks / sizeof all_tasks[0]));
    tcase_add_test(tc, test_answers_present);
    tcase_add_test(tc, test_depth);
    tcase_add_test(tc, test_context_key);
    tcase_add_test(tc, test_depth_multikey_sentences);
    tcase_add_test(tc, test_haystack_and_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return dk_test_main(suite()); }
