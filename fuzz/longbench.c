/* longbench.c — fuzz target "longbench": dk_longbench_load_file on a JSONL file, then every
 * sample's prompt built with the byte tokenizer and LongBench's middle truncation.
 *
 * Input: byte 0 = dataset (low 4 bits, index into the list below) and n_max (bits 4-5: 0 = all,
 * else 1..3); then either "TEMPLATE\0JSONL" (the prompt template up to the first NUL byte) or,
 * with no NUL byte, JSONL alone with the template "{context}Q: {input}". Seeds: fuzz/seeds.sh. */
#include "fuzz.h"
#include "longbench.h"

#include <stdlib.h>
#include <string.h>

static const char *const datasets[] = {"hotpotqa",   "trec",           "passage_count",
                                       "lcc",        "samsum",         "passage_retrieval_en",
                                       "gov_report", "no_such_dataset"};
#define N_DATASETS (sizeof datasets / sizeof datasets[0])

int dk_fuzz_longbench(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *dataset = datasets[(data[0] & 15) % N_DATASETS];
    int n_max = data[0] >> 4 & 3;
    data++, size--;
    const uint8_t *nul = memchr(data, 0, size);
    char *tmpl;
    if (nul) {
        size_t k = (size_t)(nul - data);
        tmpl = malloc(k + 1);
        dk_fuzz_assert(tmpl != NULL, "longbench", "out of memory");
        memcpy(tmpl, data, k + 1);
        data += k + 1, size -= k + 1;
    } else {
        tmpl = strdup("{context}Q: {input}");
    }
    dk_sample_set set = {0};
    dk_err e = {{0}};
    dk_status st = dk_longbench_load_file(dk_fuzz_file(data, size), dataset, tmpl, 16, n_max, &set, &e);
    dk_fuzz_check_err("longbench", st, &e);
    dk_fuzz_assert(st == DK_OK || (set.n == 0 && set.s == NULL), "longbench", "a failed load left samples");
    dk_fuzz_assert(n_max == 0 || set.n <= n_max, "longbench", "more samples than n_max");
    dk_tok_if tok = dk_tok_if_bytes();
    for (int i = 0; i < set.n; i++) {
        const dk_sample *s = &set.s[i];
        dk_fuzz_assert(s->context && s->question && s->n_answers >= 1, "longbench",
                       "sample without prompt or answers");
        dk_prompt p = {0};
        st = dk_sample_build_prompt(s, &tok, 64, 1, &p, &e);
        dk_fuzz_check_err("longbench", st, &e);
        if (st == DK_OK) {
            dk_fuzz_assert(p.n <= 64 + 1 && p.n_context <= p.n && p.n + p.n_dropped == p.n_full, "longbench",
                           "prompt truncation broke its sizes");
            dk_prompt_free(&p);
        }
    }
    dk_sample_set_free(&set);
    free(tmpl);
    return 0;
}
