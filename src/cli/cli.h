/* cli/cli.h — the `ek` command line: one file per subcommand, shared option
 * parsing and input reading here.  Every subcommand exits 0 on success and
 * non-zero with a one-line "ek <cmd>: error: ..." on stderr otherwise. */
#ifndef EK_CLI_CLI_H
#define EK_CLI_CLI_H

#include <stdio.h>
#include "embedkit.h"

int ek_cmd_embed(int argc, char **argv);
int ek_cmd_tokenize(int argc, char **argv);
int ek_cmd_info(int argc, char **argv);
int ek_cmd_similarity(int argc, char **argv);
int ek_cmd_search(int argc, char **argv);     /* cli/cmd_search.c */
int ek_cmd_quantize(int argc, char **argv);   /* cli/cmd_search.c */
int ek_cmd_bench(int argc, char **argv);      /* cli/cmd_bench.c: dispatch */
int ek_bench_forward(int argc, char **argv);  /* cli/bench_forward.c */
int ek_bench_search(int argc, char **argv);   /* cli/bench_search.c */
int ek_cmd_models(int argc, char **argv);     /* cli/cmd_models.c */
int ek_bench_versions(int argc, char **argv); /* cli/bench_versions.c */
int ek_cmd_config(int argc, char **argv);     /* cli/cmd_config.c */
int ek_cmd_keys(int argc, char **argv);       /* cli/cmd_keys.c */
int ek_bench_pipeline(int argc, char **argv); /* cli/bench_pipeline.c */
int ek_bench_gpu(int argc, char **argv);      /* cli/bench_gpu.c */
int ek_bench_all(int argc, char **argv);      /* cli/bench_all.c */

/* Prints "ek CMD: error: ..." and returns 1 (or 2 for usage errors). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses a decimal integer in [lo, hi] from an option value. */
int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out);

/* Input: texts from the command line, or stdin one per line (text) or one
 * {"text": ...} object per line (jsonl), read in chunks so memory stays flat. */
typedef struct cli_input {
    int jsonl;
    char **argv_texts;   /* when non-NULL, the texts are these */
    int argv_n, argv_pos;
    FILE *f;
    size_t line_no;
    char *line;
    size_t line_cap;
    /* current chunk */
    char **texts;
    size_t *lens;
    size_t n, cap;
} cli_input;

/* Reads up to max texts into in->texts/lens; returns the count (0 at end),
 * or -1 with an error printed (malformed JSONL names the line). */
long cli_input_next(cli_input *in, const char *cmd, size_t max);
void cli_input_free(cli_input *in);

#endif
