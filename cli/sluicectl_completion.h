/*
 * sluicectl_completion: `sluicectl completion bash|zsh`, shell completion written from the
 * command table the dispatcher runs (sluicectl.c), so a command or an option added there
 * completes without a second list to keep.
 *
 * What completes: the global options and the first command word; the second word of a group
 * (config, topics, db, reconcile, events, dlq); each command's options (every "-o" and "--name"
 * of its synopsis, and --help), the literal operands of a synopsis ("bash|zsh"), the values of
 * -o (json, table) and of an option whose synopsis lists them ("--status new|replayed|...");
 * files after --config. The zsh script is the bash one under zsh's bashcompinit.
 */
#ifndef SLUICECTL_COMPLETION_H
#define SLUICECTL_COMPLETION_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

/* One command of sluicectl: the row of the table that the dispatcher, the usage text and the
 * completion all read. */
struct ctl_command {
    const char *words;    /* "dlq list": the one or two words that name it */
    const char *synopsis; /* what follows the words: "[--stage STAGE] [-o json|table]" */
    const char *summary;  /* one line or more (indented) for the usage text */
    /* argv[0] is the command's last word; `config` the pipeline file or NULL. The exit code. */
    int (*run)(const char *config, int argc, char **argv);
};

/* The completion script for `shell` ("bash" or "zsh") of the `n` commands and the global
 * options `globals` (getopt_long's table, ended by a zero row) on `out`. -1 for another shell. */
int sluicectl_completion(const char *shell, const struct ctl_command *cmds, size_t n,
                         const struct option *globals, FILE *out);

#endif
