/* cli/cmd_embed.c — `ek embed` and `ek tokenize`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"

#define CHUNK 1024 /* inputs read from stdin per ek_embed call */

typedef struct common_opts {
    const char *model;
    int input_jsonl;
    int output_npy;
    int threads;
    int dtype;
    const char *dtype_name; /* as given to --dtype, NULL if not given */
    const char *prompt;
    const char *prompt_name;
    const char *device;     /* --device, NULL if not given */
    ek_embed_options eo;
} common_opts;

static const char *EMBED_HELP =
    "usage: ek embed --model DIR|NAME[@VERSION|@ALIAS] [options] [TEXT...]\n"
    "  With no TEXT, reads stdin: one text per line, or {\"text\": ...} per line.\n"
    "  --pooling MODE        cls|mean|max|mean_sqrt_len_tokens|weightedmean|lasttoken|attention\n"
    "                        (default: the model's 1_Pooling/config.json)\n"
    "  --normalize | --no-normalize   force L2 normalisation on or off\n"
    "                        (default: on when the model has a Normalize module)\n"
    "  --max-length N        tokens per input incl. [CLS]/[SEP] (default: max_seq_length)\n"
    "  --truncate right|left|none     none: an over-long input is an error\n"
    "  --dimensions N        Matryoshka: keep the first N dimensions (renormalised)\n"
    "  --threads N           worker threads (default: all cores)\n"
    "  --dtype f32|bf16|int8 compute precision of the encoder (default f32, exact;\n"
    "                        bf16 / int8 need AVX-512 BF16 / VNNI)\n"
    "  --device SPEC         cpu (default), gpu, auto (a GPU for calls of at least\n"
    "                        gpu.auto_min_tokens tokens) or opencl:PLATFORM:DEVICE\n"
    "  --batch-size N        inputs per forward pass (default 32)\n"
    "  --max-batch-tokens N  tokens per forward pass (default 8192)\n"
    "  --prompt TEXT | --prompt-name NAME   prefix every input (NAME from the model's prompts)\n"
    "  --input text|jsonl    stdin format (default text)\n"
    "  --output jsonl|npy    jsonl: {\"index\", \"embedding\", \"tokens\"} per input;\n"
    "                        npy: a float32 matrix on stdout\n";

static const char *TOKENIZE_HELP =
    "usage: ek tokenize --model DIR|REF [--max-length N] [--truncate right|left|none]\n"
    "                   [--input text|jsonl] [TEXT...]\n"
    "  Prints {\"index\", \"ids\", \"tokens\", \"offsets\"} per input: the ids the model sees\n"
    "  (special tokens included, truncated, no padding); offsets in characters.\n";

/* Parses options shared by embed and tokenize; returns the index of the first
 * text argument, or -1 (usage error printed, *rc set). */
static int parse(const char *cmd, int argc, char **argv, int embed, common_opts *o, int *rc) {
    memset(o, 0, sizeof *o);
    ek_embed_options_init(&o->eo);
    o->threads = -1;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                             \
    do {                                                    \
        if (!v) {                                           \
            *rc = cli_usage(cmd, "%s needs a value", a);    \
            return -1;                                      \
        }                                                   \
        i++;                                                \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(embed ? EMBED_HELP : TOKENIZE_HELP, stdout);
            *rc = 0;
            return -1;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "--model")) {
            NEEDV();
            o->model = v;
        } else if (!strcmp(a, "--input")) {
            NEEDV();
            if (strcmp(v, "text") && strcmp(v, "jsonl")) {
                *rc = cli_usage(cmd, "--input: \"%s\" is not text or jsonl", v);
                return -1;
            }
            o->input_jsonl = !strcmp(v, "jsonl");
        } else if (!strcmp(a, "--max-length")) {
            NEEDV();
            if ((*rc = cli_int(cmd, a, v, 3, 1 << 20, &o->eo.max_length))) return -1;
        } else if (!strcmp(a, "--truncate")) {
            NEEDV();
            if (!strcmp(v, "right")) o->eo.truncate = EK_TRUNCATE_RIGHT;
            else if (!strcmp(v, "left")) o->eo.truncate = EK_TRUNCATE_LEFT;
            else if (!strcmp(v, "none")) o->eo.truncate = EK_TRUNCATE_NONE;
            else {
                *rc = cli_usage(cmd, "--truncate: \"%s\" is not right, left or none", v);
                return -1;
            }
        } else if (embed && !strcmp(a, "--output")) {
            NEEDV();
            if (strcmp(v, "jsonl") && strcmp(v, "npy")) {
                *rc = cli_usage(cmd, "--output: \"%s\" is not jsonl or npy", v);
                return -1;
            }
            o->output_npy = !strcmp(v, "npy");
        } else if (embed && !strcmp(a, "--pooling")) {
            NEEDV();
            o->eo.pooling = ek_pooling_from_name(v);
            if (o->eo.pooling < 0) {
                *rc = cli_usage(cmd, "--pooling: unknown mode \"%s\"", v);
                return -1;
            }
        } else if (embed && !strcmp(a, "--normalize")) {
            o->eo.normalize = 1;
        } else if (embed && !strcmp(a, "--no-normalize")) {
            o->eo.normalize = 0;
        } else if (embed && !strcmp(a, "--dimensions")) {
            NEEDV();
            if ((*rc = cli_int(cmd, a, v, 1, 1 << 20, &o->eo.dimensions))) return -1;
        } else if (!strcmp(a, "--threads")) {
            NEEDV();
            if ((*rc = cli_int(cmd, a, v, 0, 1024, &o->threads))) return -1;
        } else if (embed && !strcmp(a, "--dtype")) {
            NEEDV();
            o->dtype = ek_compute_dtype_from_name(v);
            o->dtype_name = v;
            if (o->dtype < 0) {
                *rc = cli_usage(cmd, "--dtype: \"%s\" is not f32, bf16 or int8", v);
                return -1;
            }
        } else if (embed && !strcmp(a, "--device")) {
            NEEDV();
            o->device = v; /* checked with the configuration */
        } else if (embed && !strcmp(a, "--batch-size")) {
            NEEDV();
            if ((*rc = cli_int(cmd, a, v, 1, 1 << 20, &o->eo.batch_size))) return -1;
        } else if (embed && !strcmp(a, "--max-batch-tokens")) {
            NEEDV();
            if ((*rc = cli_int(cmd, a, v, 1, 1 << 26, &o->eo.max_batch_tokens))) return -1;
        } else if (embed && !strcmp(a, "--prompt")) {
            NEEDV();
            o->prompt = v;
        } else if (embed && !strcmp(a, "--prompt-name")) {
            NEEDV();
            o->prompt_name = v;
        } else if (a[0] == '-' && a[1] == '-') {
            *rc = cli_usage(cmd, "unknown option %s", a);
            return -1;
        } else {
            break;
        }
#undef NEEDV
    }
    if (!o->model) {
        *rc = cli_usage(cmd, "--model DIR is required");
        return -1;
    }
    if (o->prompt && o->prompt_name) {
        *rc = cli_usage(cmd, "--prompt and --prompt-name are exclusive");
        return -1;
    }
    return i;
}

static int open_engine(const char *cmd, const common_opts *o, cli_engine *ce) {
    cli_engine_flags f = {o->model, o->threads, o->dtype_name};
    cli_engine_set device = {"device", o->device, "--device"};
    return cli_engine_open_with(ce, cmd, &f, &device, 1);
}

static void npy_header(FILE *f, size_t rows, int cols) {
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }", rows, cols);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    uint16_t hl = (uint16_t)(n + pad + 1);
    unsigned char le[2] = {(unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(le, 1, 2, f);
    fwrite(dict, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
}

int ek_cmd_embed(int argc, char **argv) {
    const char *cmd = "embed";
    common_opts o;
    int rc = 0;
    int first = parse(cmd, argc, argv, 1, &o, &rc);
    if (first < 0) return rc;
    cli_engine ce;
    if ((rc = open_engine(cmd, &o, &ce))) return rc;
    const ek_model *m = ce.model;
    if (o.prompt_name) {
        o.eo.prompt = ek_model_prompt(m, o.prompt_name);
        if (!o.eo.prompt) {
            rc = cli_fail(cmd, "--prompt-name: the model has no prompt \"%s\" (config_sentence_transformers.json)",
                          o.prompt_name);
            goto out;
        }
    } else if (o.prompt) {
        o.eo.prompt = o.prompt;
    } else if (ek_model_default_prompt_name(m)) {
        o.eo.prompt = ek_model_prompt(m, ek_model_default_prompt_name(m));
    }
    int dim = ek_embed_dim(m, &o.eo);
    cli_input in;
    memset(&in, 0, sizeof in);
    in.jsonl = o.input_jsonl;
    in.f = stdin;
    if (first < argc) {
        in.argv_texts = argv + first;
        in.argv_n = argc - first;
    }
    float *emb = NULL, *all = NULL;
    int32_t *counts = malloc(sizeof *counts * CHUNK);
    size_t index = 0, all_cap = 0;
    if (!counts) {
        rc = cli_fail(cmd, "out of memory");
        goto out_in;
    }
    emb = malloc(sizeof *emb * (size_t)dim * CHUNK);
    if (!emb) {
        rc = cli_fail(cmd, "out of memory");
        goto out_in;
    }
    for (;;) {
        long n = cli_input_next(&in, cmd, CHUNK);
        if (n < 0) {
            rc = 1;
            break;
        }
        if (n == 0) break;
        o.eo.index_base = index;
        ek_cmd c;
        ek_cmd_embed_batch(&c, CLI_MODEL_NAME, (const char *const *)in.texts, in.lens, (size_t)n, emb,
                           (size_t)dim * CHUNK);
        c.u.embed.opts = &o.eo;
        c.u.embed.token_counts = counts;
        if (cli_engine_run(&ce, cmd, &c)) {
            rc = 1;
            break;
        }
        if (o.output_npy) {
            /* The row count is only known at the end: keep the rows. */
            if ((index + (size_t)n) * (size_t)dim > all_cap) {
                size_t nc = ((index + (size_t)n) * (size_t)dim) * 2;
                float *na = realloc(all, sizeof *na * nc);
                if (!na) {
                    rc = cli_fail(cmd, "out of memory holding %zu embeddings for --output npy", index + (size_t)n);
                    break;
                }
                all = na;
                all_cap = nc;
            }
            memcpy(all + index * (size_t)dim, emb, sizeof *emb * (size_t)n * (size_t)dim);
        } else {
            for (long i = 0; i < n; i++) {
                printf("{\"index\":%zu,\"embedding\":[", index + (size_t)i);
                const float *v = emb + (size_t)i * (size_t)dim;
                for (int d = 0; d < dim; d++) printf(d ? ",%.9g" : "%.9g", (double)v[d]);
                printf("],\"tokens\":%d}\n", counts[i]);
            }
        }
        index += (size_t)n;
    }
    if (!rc && o.output_npy) {
        npy_header(stdout, index, dim);
        if (index) fwrite(all, sizeof *all, index * (size_t)dim, stdout);
    }
    if (!rc && fflush(stdout) != 0) rc = cli_fail(cmd, "writing stdout failed");
out_in:
    free(all);
    free(emb);
    free(counts);
    cli_input_free(&in);
out:
    cli_engine_close(&ce);
    return rc;
}

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

int ek_cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize";
    common_opts o;
    int rc = 0;
    int first = parse(cmd, argc, argv, 0, &o, &rc);
    if (first < 0) return rc;
    cli_engine ce;
    if ((rc = open_engine(cmd, &o, &ce))) return rc;
    const ek_model *m = ce.model;
    cli_input in;
    memset(&in, 0, sizeof in);
    in.jsonl = o.input_jsonl;
    in.f = stdin;
    if (first < argc) {
        in.argv_texts = argv + first;
        in.argv_n = argc - first;
    }
    ek_encoding enc;
    memset(&enc, 0, sizeof enc);
    ek_tokenize_options to = {o.eo.max_length, o.eo.truncate};
    size_t index = 0;
    for (;;) {
        long n = cli_input_next(&in, cmd, CHUNK);
        if (n <= 0) {
            rc = n < 0;
            break;
        }
        for (long i = 0; i < n && !rc; i++, index++) {
            ek_cmd c;
            ek_cmd_init(&c, EK_CMD_TOKENIZE, CLI_MODEL_NAME);
            c.u.tokenize.text = in.texts[i];
            c.u.tokenize.len = in.lens[i];
            c.u.tokenize.opts = &to;
            c.u.tokenize.enc = &enc;
            ek_cmd_ctx cx;
            ek_cmd_ctx_init(&cx, ce.ctx);
            if (ek_engine_execute(ce.eng, &c, &cx)) {
                rc = cli_fail(cmd, "input %zu: %s", index, ek_ctx_last_error(ce.ctx));
                break;
            }
            printf("{\"index\":%zu,\"ids\":[", index);
            for (size_t k = 0; k < enc.n; k++) printf(k ? ",%d" : "%d", enc.ids[k]);
            printf("],\"tokens\":[");
            for (size_t k = 0; k < enc.n; k++) {
                if (k) putchar(',');
                const char *t = ek_model_token(m, enc.ids[k]);
                json_string(stdout, t ? t : "");
            }
            printf("],\"offsets\":[");
            for (size_t k = 0; k < enc.n; k++)
                printf(k ? ",[%d,%d]" : "[%d,%d]", enc.offsets[2 * k], enc.offsets[2 * k + 1]);
            printf("]}\n");
        }
        if (rc) break;
    }
    if (!rc && fflush(stdout) != 0) rc = cli_fail(cmd, "writing stdout failed");
    ek_encoding_free(&enc);
    cli_input_free(&in);
    cli_engine_close(&ce);
    return rc;
}
