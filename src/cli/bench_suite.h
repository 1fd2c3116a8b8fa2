/* cli/bench_suite.h — the operation benchmarks `ek bench all` runs besides
 * the ones cli.h declares (forward, search, pipeline, versions, gpu).  Each
 * is reachable as `ek bench all <name> [options]` and prints one JSON object
 * with --json; `ek bench all` runs each in its own child process so every
 * result carries that benchmark's own peak RSS. */
#ifndef EK_CLI_BENCH_SUITE_H
#define EK_CLI_BENCH_SUITE_H

int ek_bench_tokenize(int argc, char **argv); /* cli/bench_tokenize.c */
int ek_bench_embed(int argc, char **argv);    /* cli/bench_embed.c: forward grid, latency by length, model memory */
int ek_bench_ops(int argc, char **argv);      /* cli/bench_ops.c: pooling, normalise, quantize, similarity, top-k */
int ek_bench_model(int argc, char **argv);    /* cli/bench_model.c: load, import, alias, manifest, signatures */

#endif
