/* main.c — `dashkit <command> [options]`: git-style dispatch over the command table. */
#include "cli.h"
#include "cli_util.h"
#include "blas.h"
#include <stdio.h>
#include <string.h>

static const dk_cli_command dk_commands[] = {
    {"info", dk_cmd_info, "print a model's hyper-parameters and metadata"},
    {"generate", dk_cmd_generate, "greedy text generation"},
    {"tokenize", dk_cmd_tokenize, "encode text to token ids (or --decode ids)"},
    {"bench", dk_cmd_bench, "measure sgemm peak and prefill throughput (dense and halting)"},
    {"prefill", dk_cmd_prefill, "prefill a context with a halting method vs dense, per-layer report"},
    {"logits", dk_cmd_logits, "write the logits of every position (dense or halting) to a file"},
    {"perplexity", dk_cmd_perplexity, "perplexity as llama-perplexity, KL/top-1 vs base logits"},
    {"score", dk_cmd_score, "score prediction/answer cases with the LongBench/RULER metrics"},
    {"eval", dk_cmd_eval, "run one task with one method and print scores"},
    {"tasks", dk_cmd_tasks, "list tasks, their options and metrics"},
    {"run", dk_cmd_run, "run a config matrix into the SQLite store (resumable)"},
    {"status", dk_cmd_status, "show runs and cells by state in a store (or per shard in a shard folder)"},
    {"merge", dk_cmd_merge, "unite shard stores (run --shard) into one store"},
    {"slurm", dk_cmd_slurm, "run a config as a Slurm job array of shards, merged at the end"},
    {"export", dk_cmd_export, "export a store's results as CSV or JSON"},
    {"report", dk_cmd_report, "write figures, tables and report.md from a store"},
    {"plot", dk_cmd_plot, "draw one figure from a store"},
    {"analyze", dk_cmd_analyze, "stability vs redundancy: delta, received attention, attention recall"},
};
#define DK_N_COMMANDS (sizeof dk_commands / sizeof dk_commands[0])

static void dk_print_usage(FILE *f) {
    fprintf(f, "usage: dashkit <command> [options]\n\n"
               "DASH (Delta Attention Selective Halting) research toolkit.\n\ncommands:\n");
    for (size_t i = 0; i < DK_N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", dk_commands[i].name, dk_commands[i].summary);
    fprintf(f, "\n'dashkit <command> --help' lists a command's options.\n");
}

int main(int argc, char **argv) {
    dk_blas_init(); /* may re-exec with OPENBLAS_CORETYPE fixed; before any BLAS call */
    if (argc < 2) {
        dk_print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        dk_print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < DK_N_COMMANDS; i++) {
        if (strcmp(argv[1], dk_commands[i].name) != 0) continue;
        return dk_commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "dashkit: unknown command '%s' (see 'dashkit --help')\n", dk_cli_esc(argv[1]));
    return 2;
}
