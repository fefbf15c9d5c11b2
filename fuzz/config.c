/* config.c — fuzz target "config": dk_config_parse on the bytes as a config file's text (the
 * builtin registry), then, when it expands, the identity of up to 64 cells and the canonical
 * JSON of the text. Seeds: configs/ of the repository. */
#include "config.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int dk_fuzz_config(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    dk_fuzz_assert(text != NULL, "config", "out of memory");
    memcpy(text, data, size);
    text[size] = 0;
    dk_config *cfg = NULL;
    dk_err e = {{0}};
    dk_status st = dk_config_parse(text, size, "fuzz.json", NULL, &cfg, &e);
    dk_fuzz_check_err("config", st, &e);
    dk_fuzz_assert((st == DK_OK) == (cfg != NULL), "config", "status and result disagree");
    if (cfg) {
        dk_fuzz_assert(cfg->n_cells >= 1 && cfg->n_models >= 1 && cfg->samples >= 1, "config",
                       "a config that parsed has no cells, models or samples");
        static const char sha[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for (size_t i = 0; i < cfg->n_cells && i < 64; i++) {
            const dk_config_cell *c = &cfg->cells[i];
            dk_fuzz_assert(c->model < cfg->n_models && c->task < cfg->n_tasks && c->method < cfg->n_methods,
                           "config", "cell index out of range");
            dk_config_identity id = {.json = NULL};
            st = dk_config_cell_identity(cfg, c, sha, &id, &e);
            dk_fuzz_check_err("config", st, &e);
            dk_fuzz_assert(st == DK_OK, "config", "identity of an expanded cell failed");
            dk_config_identity_free(&id);
        }
        dk_config_free(cfg);
    }
    free(dk_config_canonical_json(text));
    free(text);
    return 0;
}
