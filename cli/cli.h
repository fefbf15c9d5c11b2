/* cli.h — the dashkit command table. Each subcommand is `int dk_cmd_NAME(int argc, char **argv)`
 * (argv[0] is the subcommand name) returning the process exit status: 0 ok, 1 runtime/input
 * error, 2 usage error. Only cli/ prints to the user and decides exit codes. */
#ifndef DK_CLI_H
#define DK_CLI_H

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} dk_cli_command;

int dk_cmd_info(int argc, char **argv);
int dk_cmd_generate(int argc, char **argv);
int dk_cmd_tokenize(int argc, char **argv);
int dk_cmd_bench(int argc, char **argv);
int dk_cmd_prefill(int argc, char **argv);
int dk_cmd_score(int argc, char **argv);
int dk_cmd_eval(int argc, char **argv);
int dk_cmd_tasks(int argc, char **argv);
int dk_cmd_run(int argc, char **argv);
int dk_cmd_status(int argc, char **argv);
int dk_cmd_merge(int argc, char **argv);
int dk_cmd_slurm(int argc, char **argv);
int dk_cmd_export(int argc, char **argv);
int dk_cmd_report(int argc, char **argv);
int dk_cmd_plot(int argc, char **argv);
int dk_cmd_analyze(int argc, char **argv);
int dk_cmd_logits(int argc, char **argv);
int dk_cmd_perplexity(int argc, char **argv);

#endif
