/* test_config.c — config matrices: expansion (counts, order, params), defaults, identity,
 * canonical JSON, and the exact error line for each kind of bad config. */
#include "config.h"
#include "policy.h"
#include "task.h"
#include "support/dk_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dk_zero_sha = "0000000000000000000000000000000000000000000000000000000000000000";
static const char *dk_one_sha = "1000000000000000000000000000000000000000000000000000000000000000";

static dk_config *parse_ok(const char *json) {
    dk_config *c = NULL;
    dk_err e = {{0}};
    dk_status st = dk_config_parse(json, strlen(json), "t.json", NULL, &c, &e);
    ck_assert_msg(st == DK_OK, "unexpected error: %s", e.msg);
    return c;
}

/* ---- expansion ---- */

START_TEST(test_expand_counts_and_params) {
    const char *json = "{\"name\":\"grid\",\"models\":[\"a.gguf\",\"b.gguf\"],"
                       "\"tasks\":[{\"name\":\"passkey\",\"lengths\":[1024,2048],\"depths\":[10,50,90]},"
                       "           {\"name\":\"niah_single_1\",\"length\":1024}],"
                       "\"methods\":[{\"name\":\"dense\"},"
                       "             {\"name\":\"dash\",\"rho\":[0.3,0.5,0.667,0.8],\"ls\":[0.25,0.5]},"
                       "             {\"name\":\"random\",\"rho\":0.5,\"ls\":0.4,\"seed\":[1,2]}],"
                       "\"samples\":10,\"seed\":7,\"threads\":2}";
    dk_config *c = parse_ok(json);
    ck_assert_str_eq(c->name, "grid");
    ck_assert_int_eq(c->n_models, 2);
    ck_assert_int_eq(c->samples, 10);
    ck_assert_int_eq(c->seed, 7);
    ck_assert_int_eq(c->threads, 2);
    /* task points: 2*3 + 1 = 7; method points: 1 + 4*2 + 2 = 11; models 2 */
    ck_assert_int_eq(c->n_cells, 2 * 7 * 11);

    /* order: models > tasks > task grid > methods > method grid, last key fastest */
    ck_assert_str_eq(c->models[c->cells[0].model], "a.gguf");
    ck_assert_str_eq(c->cells[0].task_name, "passkey");
    ck_assert_str_eq(c->cells[0].task_options, "{\"depth\":10,\"length\":1024}");
    ck_assert_str_eq(c->cells[0].method_name, "dense");
    ck_assert_str_eq(c->cells[0].method_params, "{}");
    static const char *dash[8] = {"{\"ls\":0.25,\"recent\":0,\"rho\":0.3,\"sink\":0}",
                                  "{\"ls\":0.5,\"recent\":0,\"rho\":0.3,\"sink\":0}",
                                  "{\"ls\":0.25,\"recent\":0,\"rho\":0.5,\"sink\":0}",
                                  "{\"ls\":0.5,\"recent\":0,\"rho\":0.5,\"sink\":0}",
                                  "{\"ls\":0.25,\"recent\":0,\"rho\":0.667,\"sink\":0}",
                                  "{\"ls\":0.5,\"recent\":0,\"rho\":0.667,\"sink\":0}",
                                  "{\"ls\":0.25,\"recent\":0,\"rho\":0.8,\"sink\":0}",
                                  "{\"ls\":0.5,\"recent\":0,\"rho\":0.8,\"sink\":0}"};
    for (int i = 0; i < 8; i++) {
        ck_assert_str_eq(c->cells[1 + i].method_name, "dash");
        ck_assert_str_eq(c->cells[1 + i].method_params, dash[i]);
    }
    ck_assert_str_eq(c->cells[9].method_params,
                     "{\"ls\":0.4,\"recent\":0,\"rho\":0.5,\"seed\":1,\"sink\":0}");
    ck_assert_str_eq(c->cells[10].method_params,
                     "{\"ls\":0.4,\"recent\":0,\"rho\":0.5,\"seed\":2,\"sink\":0}");
    /* depth varies faster than length: task keys in the order written (lengths, depths) */
    ck_assert_str_eq(c->cells[11].task_options, "{\"depth\":50,\"length\":1024}");
    ck_assert_str_eq(c->cells[33].task_options, "{\"depth\":10,\"length\":2048}");
    ck_assert_str_eq(c->cells[66].task_name, "niah_single_1");
    ck_assert_str_eq(c->cells[66].task_options, "{\"length\":1024}");
    ck_assert_str_eq(c->models[c->cells[77].model], "b.gguf");

    /* every cell distinct: identities pairwise different */
    char(*keys)[65] = calloc(c->n_cells, sizeof *keys);
    for (size_t i = 0; i < c->n_cells; i++) {
        dk_config_identity id;
        dk_err e = {{0}};
        ck_assert_int_eq(
            dk_config_cell_identity(c, &c->cells[i], c->cells[i].model ? dk_one_sha : dk_zero_sha, &id, &e),
            DK_OK);
        memcpy(keys[i], id.key, 65);
        dk_config_identity_free(&id);
        for (size_t j = 0; j < i; j++) ck_assert_str_ne(keys[i], keys[j]);
    }
    free(keys);
    dk_config_free(c);
}
END_TEST

START_TEST(test_defaults_and_duplicates) {
    /* {"name":"dash"} gets the registry defaults; the explicit equal entry is the same cell */
    dk_config *c = parse_ok("{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\",\"length\":512}],"
                            "\"methods\":[{\"name\":\"dash\"},{\"name\":\"dash\",\"rho\":0.667,\"ls\":0.4},"
                            "{\"name\":\"dash\",\"rho\":[0.5,0.667]}],\"samples\":1}");
    ck_assert_int_eq(c->n_cells, 2);
    ck_assert_str_eq(c->cells[0].method_params, "{\"ls\":0.4,\"recent\":0,\"rho\":0.667,\"sink\":0}");
    ck_assert_str_eq(c->cells[1].method_params, "{\"ls\":0.4,\"recent\":0,\"rho\":0.5,\"sink\":0}");
    ck_assert_int_eq(c->seed, 0);
    ck_assert_int_eq(c->threads, 0);
    ck_assert_str_eq(c->name, "t"); /* file name without .json */
    dk_config_free(c);
}
END_TEST

/* Issue 17 finding 5: a 1000 x 998 grid (10^6 cells with two more entries: the documented limit) expands and
 * validates in O(n log n) (the old duplicate scan was quadratic: ~12 minutes here, past the
 * tcase timeout); identical cells are still dropped, the first kept, order preserved. */
START_TEST(test_million_cell_grid) {
    size_t cap = 64 << 10, n = 0;
    char *js = malloc(cap);
    ck_assert_ptr_nonnull(js);
    n += (size_t)snprintf(js + n, cap - n,
                          "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\",\"length\":512}],"
                          "\"methods\":[{\"name\":\"dash\",\"rho\":[");
    for (int i = 0; i < 1000; i++) n += (size_t)snprintf(js + n, cap - n, "%s%g", i ? "," : "", i / 1000.0);
    n += (size_t)snprintf(js + n, cap - n, "],\"ls\":[");
    for (int i = 0; i < 998; i++) n += (size_t)snprintf(js + n, cap - n, "%s%g", i ? "," : "", i / 1000.0);
    n += (size_t)snprintf(
        js + n, cap - n,
        "]},{\"name\":\"dense\"},{\"name\":\"dash\",\"ls\":0.5,\"rho\":0.25}],\"samples\":1}");
    ck_assert_uint_lt(n, cap);
    dk_config *c = parse_ok(js);
    free(js);
    /* 1000 x 998 + dense + a point of the grid again = 10^6 cells before dropping the repeat */
    ck_assert_uint_eq(c->n_cells, 998001);
    ck_assert_str_eq(c->cells[0].method_params, "{\"ls\":0,\"recent\":0,\"rho\":0,\"sink\":0}");
    ck_assert_str_eq(c->cells[1].method_params, "{\"ls\":0.001,\"recent\":0,\"rho\":0,\"sink\":0}");
    ck_assert_str_eq(c->cells[998].method_params, "{\"ls\":0,\"recent\":0,\"rho\":0.001,\"sink\":0}");
    ck_assert_str_eq(c->cells[997999].method_params, "{\"ls\":0.997,\"recent\":0,\"rho\":0.999,\"sink\":0}");
    ck_assert_str_eq(c->cells[998000].method_name, "dense");
    dk_config_free(c);
}
END_TEST

/* ---- identity ---- */

START_TEST(test_identity) {
    dk_config *c = parse_ok(
        "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\",\"length\":1024,\"depth\":50}],"
        "\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rho\":0.5,\"ls\":0.4}],"
        "\"samples\":10,\"seed\":3}");
    dk_config_identity a, b, d;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[1], dk_zero_sha, &a, &e), DK_OK);
    ck_assert_str_eq(
        a.json, "{\"method\":{\"name\":\"dash\",\"params\":{\"ls\":0.4,\"recent\":0,\"rho\":0.5,\"sink\":0}},"
                "\"model\":\"0000000000000000000000000000000000000000000000000000000000000000\","
                "\"samples\":{\"n\":10,\"seed\":3},"
                "\"task\":{\"name\":\"passkey\",\"options\":{\"depth\":50,\"length\":1024}}}");
    /* key = sha256 of the JSON text, checked with sha256sum(1) */
    char cmd[1024], *out = NULL;
    char path[512];
    dk_test_tmp_path(path, sizeof path, "id.json");
    FILE *f = fopen(path, "w");
    fputs(a.json, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "sha256sum %s", path);
    ck_assert_int_eq(dk_test_run(cmd, 0, &out), 0);
    ck_assert_msg(!strncmp(out, a.key, 64), "sha256sum %s vs %s", out, a.key);
    free(out);

    /* a different model file content gives a different key; same task_key for same task+seed */
    ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[1], dk_one_sha, &b, &e), DK_OK);
    ck_assert_str_ne(a.key, b.key);
    ck_assert_str_eq(a.task_key, b.task_key);
    /* dense cell of the same task shares task_key, not key */
    ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[0], dk_zero_sha, &d, &e), DK_OK);
    ck_assert_str_ne(a.key, d.key);
    ck_assert_str_eq(a.task_key, d.task_key);
    dk_config_identity_free(&a);
    dk_config_identity_free(&b);
    dk_config_identity_free(&d);

    /* other samples count / seed: other cells; seed also changes task_key */
    dk_config *c2 = parse_ok(
        "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\",\"length\":1024,\"depth\":50}],"
        "\"methods\":[{\"name\":\"dash\",\"rho\":0.5,\"ls\":0.4}],\"samples\":11,\"seed\":3}");
    dk_config *c3 = parse_ok(
        "{\"models\":[\"m\"],\"tasks\":[{\"depth\":50,\"length\":1024,\"name\":\"passkey\"}],"
        "\"methods\":[{\"ls\":0.4,\"name\":\"dash\",\"rho\":0.5}],\"samples\":10,\"seed\":4}");
    dk_config *c4 = parse_ok(
        "{\"models\":[\"other/path\"],\"tasks\":[{\"depth\":50.0,\"length\":1024,\"name\":\"passkey\"}],"
        "\"methods\":[{\"ls\":0.40,\"name\":\"dash\",\"rho\":5e-1}],\"samples\":10,\"seed\":3}");
    dk_config_identity x, y, z, w;
    ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[1], dk_zero_sha, &x, &e), DK_OK);
    ck_assert_int_eq(dk_config_cell_identity(c2, &c2->cells[0], dk_zero_sha, &y, &e), DK_OK);
    ck_assert_int_eq(dk_config_cell_identity(c3, &c3->cells[0], dk_zero_sha, &z, &e), DK_OK);
    ck_assert_int_eq(dk_config_cell_identity(c4, &c4->cells[0], dk_zero_sha, &w, &e), DK_OK);
    ck_assert_str_ne(x.key, y.key);
    ck_assert_str_eq(x.task_key, y.task_key);
    ck_assert_str_ne(x.key, z.key);
    ck_assert_str_ne(x.task_key, z.task_key);
    /* key order, number spelling and the model PATH do not matter: content does */
    ck_assert_str_eq(x.key, w.key);
    dk_config_identity_free(&x);
    dk_config_identity_free(&y);
    dk_config_identity_free(&z);
    dk_config_identity_free(&w);

    /* malformed sha */
    ck_assert_int_eq(dk_config_cell_identity(c, &c->cells[0], "abc", &x, &e), DK_ERR_ARG);
    dk_config_free(c);
    dk_config_free(c2);
    dk_config_free(c3);
    dk_config_free(c4);
}
END_TEST

START_TEST(test_canonical_json) {
    char *s = dk_config_canonical_json(
        "{ \"b\": 1.0, \"a\": [0.5, \"x\\\"y\", true, null, -2], \"c\": {\"z\": 1e-7, \"y\": 0.1} }");
    ck_assert_str_eq(s, "{\"a\":[0.5,\"x\\\"y\",true,null,-2],\"b\":1,\"c\":{\"y\":0.1,\"z\":1e-07}}");
    free(s);
    s = dk_config_canonical_json("[0.667, 1e20, 123456789012]");
    ck_assert_str_eq(s, "[0.667,1e+20,123456789012]");
    free(s);
    ck_assert_ptr_null(dk_config_canonical_json("{bad"));
}
END_TEST

/* ---- bad configs: one exact line each ---- */

typedef struct {
    const char *json;
    dk_status status;
    const char *msg;
} dk_bad_case;

#define OKM "\"models\":[\"m\"]"
#define OKT "\"tasks\":[{\"name\":\"passkey\",\"length\":1024}]"
#define OKD "\"methods\":[{\"name\":\"dense\"}]"

static const dk_bad_case dk_bad[] = {
    /* not JSON */
    {"{\"models\":[\"m\"],\n  \"tasks\": [,]}", DK_ERR_FORMAT, "bad.json: line 2, column 13: invalid JSON"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1} x", DK_ERR_FORMAT,
     "bad.json: line 1, column 102: unexpected text after the JSON object"},
    {"[1,2]", DK_ERR_ARG, "bad.json: expected a JSON object at the top level, got array"},
    /* unknown keys */
    {"{\"modles\":[\"m\"]," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: modles: unknown key (expected one of: name, description, models, tasks, methods, samples, "
     "seed, threads, chat, compute, analyze)"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"chat\":\"chatlm\"}", DK_ERR_ARG,
     "bad.json: chat: chat template 'chatlm' is unknown (auto, none, chatml, llama3, llama2)"},
    {"{\"models\":[\"a.gguf\",{\"path\":\"b.gguf\",\"chat\":\"llama4\"}]," OKT "," OKD ",\"samples\":1}",
     DK_ERR_ARG,
     "bad.json: models[1].chat: chat template 'llama4' is unknown (auto, none, chatml, llama3, llama2)"},
    {"{\"models\":[{\"chat\":\"none\"}]," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: models[0]: missing required key \"path\""},
    {"{\"models\":[{\"path\":\"a.gguf\",\"template\":\"none\"}]," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: models[0].template: unknown key (expected one of: path, chat)"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"chat\":1}", DK_ERR_ARG,
     "bad.json: chat: expected a string (auto, none, chatml, llama3, llama2), got number 1"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\",\"rhoo\":0.5}],\"samples\":1}",
     DK_ERR_ARG,
     "bad.json: methods[1].rhoo: unknown parameter for method \"dash\" (accepted: rho, ls, sink, recent)"},
    {"{" OKM ",\"tasks\":[{\"name\":\"passkey\",\"lenghts\":[1]}]," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: tasks[0].lenghts: unknown option for task \"passkey\" (accepted: length, depth, seed, "
     "max_new_tokens)"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dense\",\"rho\":0.5}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].rho: unknown parameter for method \"dense\" (accepted: none)"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"seed\":1,\"seed\":2}", DK_ERR_ARG,
     "bad.json: seed: duplicate key"},
    {"{" OKM ",\"tasks\":[{\"name\":\"passkey\",\"length\":1,\"lengths\":[2]}]," OKD ",\"samples\":1}",
     DK_ERR_ARG, "bad.json: tasks[0].lengths: \"length\" is given twice"},
    /* wrong types and missing keys */
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"analyze\":{\"rho\":1}}", DK_ERR_ARG,
     "bad.json: analyze.rho: expected a number in [0, 1)"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"analyze\":{\"layers\":1}}", DK_ERR_ARG,
     "bad.json: analyze.layers: unknown key (expected one of: samples, ls, rho)"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"analyze\":true}", DK_ERR_ARG,
     "bad.json: analyze: expected an object {\"samples\", \"ls\", \"rho\"}"},
    {"{" OKM "," OKT "," OKD ",\"samples\":\"ten\"}", DK_ERR_ARG,
     "bad.json: samples: expected an integer in [1, 100000000], got string \"ten\""},
    {"{" OKM "," OKT "," OKD ",\"samples\":2.5}", DK_ERR_ARG,
     "bad.json: samples: expected an integer in [1, 100000000], got number 2.5"},
    {"{" OKM "," OKT "," OKD "}", DK_ERR_ARG, "bad.json: missing required key \"samples\""},
    {"{" OKT "," OKD ",\"samples\":1}", DK_ERR_ARG, "bad.json: missing required key \"models\""},
    {"{\"models\":[3]," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: models[0]: expected a model path (non-empty string), got number 3"},
    {"{\"models\":\"m\"," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: models: expected an array of model paths, got string \"m\""},
    {"{" OKM ",\"tasks\":{\"name\":\"passkey\"}," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: tasks: expected an array of objects, got object"},
    {"{" OKM "," OKT ",\"methods\":[\"dash\"],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0]: expected an object with a \"name\", got string \"dash\""},
    {"{" OKM "," OKT ",\"methods\":[{\"rho\":0.5}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0]: missing required key \"name\""},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash\",\"rho\":\"0.5\"}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].rho: expected a number for rho, got string \"0.5\""},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash\",\"rho\":[0.5,[0.6]]}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].rho[1]: expected a number, string or boolean, got array"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash-tau\",\"tau\":0.1,\"relative\":1}],\"samples\":1}",
     DK_ERR_ARG, "bad.json: methods[0].relative: expected true or false for relative, got number 1"},
    /* empty grids and lists */
    {"{" OKM "," OKT
     ",\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\"},{\"name\":\"dash\",\"rho\":[]}],\"samples\":1}",
     DK_ERR_ARG, "bad.json: methods[2].rho: empty grid []"},
    {"{" OKM ",\"tasks\":[{\"name\":\"passkey\",\"lengths\":[]}]," OKD ",\"samples\":1}", DK_ERR_ARG,
     "bad.json: tasks[0].lengths: empty grid []"},
    {"{\"models\":[]," OKT "," OKD ",\"samples\":1}", DK_ERR_ARG, "bad.json: models: empty list []"},
    {"{" OKM "," OKT ",\"methods\":[],\"samples\":1}", DK_ERR_ARG, "bad.json: methods: empty list []"},
    /* value ranges */
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dense\"},{\"name\":\"dash\"},{\"name\":\"dash\",\"rho\":[0.5,"
                     "1]}],\"samples\":1}",
     DK_ERR_ARG, "bad.json: methods[2].rho[1]: rho = 1 is outside [0,1)"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash\",\"rho\":-0.1}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].rho: rho = -0.1 is outside [0,1)"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash\",\"ls\":[0.4,1.5]}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].ls[1]: ls = 1.5 is outside [0,1]"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash-tau\",\"tau\":-0.5}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].tau: tau = -0.5 must be >= 0"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash-keep\",\"keep\":0}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].keep: expected an integer >= 1 for keep, got number 0"},
    {"{" OKM ",\"tasks\":[{\"name\":\"passkey\",\"length\":1024,\"depths\":[50,120]}]," OKD ",\"samples\":1}",
     DK_ERR_ARG, "bad.json: tasks[0].depths[1]: depth = 120 is outside [0,100]"},
    {"{" OKM "," OKT "," OKD ",\"samples\":0}", DK_ERR_ARG,
     "bad.json: samples: expected an integer in [1, 100000000], got number 0"},
    {"{" OKM "," OKT "," OKD ",\"samples\":1,\"threads\":-1}", DK_ERR_ARG,
     "bad.json: threads: expected an integer in [0, 4096], got number -1"},
    /* checked by the policy table itself (engine/policy.h) */
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dash-tau\",\"ls\":[0.2,0.4]}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0]: dash-tau: tau is required (halt tokens whose score <= tau)"},
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"snapkv\",\"kernel\":[3,4]}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0]: snapkv: kernel = 4 must be odd"},
    /* unknown names */
    {"{" OKM "," OKT ",\"methods\":[{\"name\":\"dahs\"}],\"samples\":1}", DK_ERR_ARG,
     "bad.json: methods[0].name: unknown method \"dahs\" (known: dense, dash, dash-tau, dash-keep, "
     "multistep, random, "
     "inverse, dblock, fastv, snapkv)"},
    {"{" OKM ",\"tasks\":[{\"name\":\"passkey\"},{\"name\":\"paskey\"}]," OKD ",\"samples\":1}", DK_ERR_ARG,
     NULL},
};

START_TEST(test_bad_configs) {
    const dk_bad_case *b = &dk_bad[_i];
    dk_config *c = (dk_config *)1;
    dk_err e = {{0}};
    dk_status st = dk_config_parse(b->json, strlen(b->json), "bad.json", NULL, &c, &e);
    ck_assert_msg(st == b->status, "case %d: status %d, want %d (%s)", _i, st, b->status, e.msg);
    ck_assert_ptr_null(c);
    if (b->msg) ck_assert_str_eq(e.msg, b->msg);
    else
        ck_assert_msg(!strncmp(e.msg,
                               "bad.json: tasks[1].name: unknown task \"paskey\" (known: narrativeqa, "
                               "qasper, multifieldqa_en,",
                               92),
                      "got: %s", e.msg);
    ck_assert_msg(!strchr(e.msg, '\n'), "one line");
}
END_TEST

/* The shipped configs parse, and load() reads files: missing file is an IO error naming it. */
START_TEST(test_shipped_configs) {
    const char *files[] = {"configs/quickstart.json", "configs/ablation.json"};
    for (int i = 0; i < 2; i++) {
        dk_config *c = NULL;
        dk_err e = {{0}};
        ck_assert_msg(dk_config_load(files[i], NULL, &c, &e) == DK_OK, "%s: %s", files[i], e.msg);
        ck_assert_int_gt(c->n_cells, 10);
        ck_assert_str_eq(c->path, files[i]);
        dk_config_free(c);
    }
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_config_load("configs/no-such.json", NULL, &c, &e), DK_ERR_IO);
    ck_assert_str_eq(e.msg, "configs/no-such.json: cannot open: No such file or directory");
}
END_TEST

/* The quickstart matrix is what its file says: 2 tasks x 2 lengths x 5 depths x (dense + 6 dash + 2 random + 2 fastv). */
START_TEST(test_quickstart_matrix) {
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_msg(dk_config_load("configs/quickstart.json", NULL, &c, &e) == DK_OK, "%s", e.msg);
    ck_assert_str_eq(c->name, "quickstart");
    ck_assert_int_eq(c->n_models, 1);
    ck_assert_str_eq(c->models[0], "models/dashkit-tiny.gguf");
    ck_assert_int_eq(c->n_cells, 2 * 2 * 5 * 11);
    int n_dash = 0;
    for (size_t i = 0; i < c->n_cells; i++) n_dash += !strcmp(c->cells[i].method_name, "dash");
    ck_assert_int_eq(n_dash, 2 * 2 * 5 * 6);
    dk_config_free(c);
}
END_TEST

/* Custom registry: the config validates against whatever table the caller passes. */
START_TEST(test_custom_registry) {
    static const char *const keys[] = {"alpha", NULL};
    static const dk_config_entry methods[] = {{"mine", keys, "{\"alpha\":2}"}};
    static const dk_config_entry tasks[] = {{"toy", NULL, NULL}};
    dk_config_registry reg = {methods, 1, tasks, 1};
    const char *json = "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"toy\",\"anything\":[1,2]}],"
                       "\"methods\":[{\"name\":\"mine\"}],\"samples\":1}";
    dk_config *c = NULL;
    dk_err e = {{0}};
    ck_assert_int_eq(dk_config_parse(json, strlen(json), "r.json", &reg, &c, &e), DK_OK);
    ck_assert_int_eq(c->n_cells, 2);
    ck_assert_str_eq(c->cells[1].task_options, "{\"anything\":2}");
    ck_assert_str_eq(c->cells[1].method_params, "{\"alpha\":2}");
    dk_config_free(c);
    const char *bad =
        "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"toy\"}],\"methods\":[{\"name\":\"dash\"}],\"samples\":1}";
    ck_assert_int_eq(dk_config_parse(bad, strlen(bad), "r.json", &reg, &c, &e), DK_ERR_ARG);
    ck_assert_str_eq(e.msg, "r.json: methods[0].name: unknown method \"dash\" (known: mine)");
}
END_TEST

/* The default registry is the tasks module's own: every task there, with its option names. */
START_TEST(test_builtin_registry_is_task_registry) {
    const dk_config_registry *reg = dk_config_registry_builtin();
    ck_assert_int_eq(reg->n_tasks, dk_task_count());
    for (int i = 0; i < dk_task_count(); i++) {
        const dk_task *t = dk_task_at(i);
        ck_assert_str_eq(reg->tasks[i].name, t->name);
        size_t k = 0;
        for (; t->opts[k].name; k++) ck_assert_str_eq(reg->tasks[i].keys[k], t->opts[k].name);
        ck_assert_ptr_null(reg->tasks[i].keys[k]);
    }
    dk_config *c = parse_ok(
        "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"niah_multikey_1\",\"length\":2048,"
        "\"depth\":\"random\",\"haystack\":\"noise\",\"keys\":[2,4]},{\"name\":\"hotpotqa\","
        "\"data\":\"lb/"
        "data\"}],\"methods\":[{\"name\":\"snapkv\",\"window\":16,\"layer\":-1}],\"samples\":1}");
    ck_assert_int_eq(c->n_cells, 3);
    ck_assert_str_eq(c->cells[1].task_options,
                     "{\"depth\":\"random\",\"haystack\":\"noise\",\"keys\":4,\"length\":2048}");
    ck_assert_str_eq(c->cells[2].task_options, "{\"data\":\"lb/data\"}");
    ck_assert_str_eq(
        c->cells[0].method_params,
        "{\"kernel\":5,\"layer\":-1,\"ls\":0.4,\"recent\":0,\"rho\":0.667,\"sink\":0,\"window\":16}");
    dk_config_free(c);
}
END_TEST

/* The default method registry is the halting policy table: every policy in table order, the
 * names of its accepted parameters, and every default it declares (checked on the cell a bare
 * {"name": P} expands to). */
START_TEST(test_builtin_registry_is_policy_table) {
    const dk_config_registry *reg = dk_config_registry_builtin();
    ck_assert_int_eq(reg->n_methods, dk_policy_count());
    for (int i = 0; i < dk_policy_count(); i++) {
        const dk_policy *p = dk_policy_at(i);
        ck_assert_str_eq(reg->methods[i].name, p->name);
        size_t k = 0;
        for (; p->params[k] != DK_POLICY_PARAM_COUNT; k++)
            ck_assert_str_eq(reg->methods[i].keys[k], dk_policy_param_info(p->params[k])->name);
        ck_assert_ptr_null(reg->methods[i].keys[k]);
        if (p->kind == DK_POLICY_DASH_TAU || p->kind == DK_POLICY_DASH_KEEP) continue; /* need tau / keep */
        char json[256];
        snprintf(json, sizeof json,
                 "{\"models\":[\"m\"],\"tasks\":[{\"name\":\"passkey\"}],"
                 "\"methods\":[{\"name\":\"%s\"}],\"samples\":1}",
                 p->name);
        dk_config *c = parse_ok(json);
        ck_assert_int_eq(c->n_cells, 1);
        dk_policy_params def;
        dk_policy_params_default(&def);
        size_t n_keys = 0;
        for (const char *q = c->cells[0].method_params; *q; q++) n_keys += *q == ':';
        ck_assert_uint_eq(n_keys, k); /* every accepted parameter has a default here */
        for (size_t j = 0; j < k; j++) {
            const dk_policy_param *d = dk_policy_param_info(p->params[j]);
            char want[64];
            if (d->type == DK_POLICY_PARAM_BOOL)
                snprintf(want, sizeof want, "\"%s\":%s", d->name, d->def ? "true" : "false");
            else
                snprintf(want, sizeof want, "\"%s\":%.10g", d->name,
                         dk_policy_params_get(&def, p->params[j]));
            ck_assert_msg(strstr(c->cells[0].method_params, want), "%s: %s lacks %s", p->name,
                          c->cells[0].method_params, want);
        }
        dk_config_free(c);
    }
}
END_TEST

static Suite *config_suite(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_expand_counts_and_params);
    tcase_add_test(tc, test_defaults_and_duplicates);
    tcase_add_test(tc, test_identity);
    tcase_add_test(tc, test_canonical_json);
    tcase_add_loop_test(tc, test_bad_configs, 0, (int)(sizeof dk_bad / sizeof dk_bad[0]));
    tcase_add_test(tc, test_shipped_configs);
    tcase_add_test(tc, test_quickstart_matrix);
    tcase_add_test(tc, test_custom_registry);
    tcase_add_test(tc, test_builtin_registry_is_policy_table);
    tcase_add_test(tc, test_builtin_registry_is_task_registry);
    suite_add_tcase(s, tc);
    TCase *big = tcase_create("config-big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_million_cell_grid);
    suite_add_tcase(s, big);
    return s;
}

int main(void) { return dk_test_main(config_suite()); }
