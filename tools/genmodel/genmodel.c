/* tools/genmodel/genmodel.c — ek-genmodel: writes a deterministic
 * sentence-transformers BERT model directory with RANDOM weights.
 *
 * No pretrained weights can be downloaded where embedkit is built and tested,
 * so the project makes its own models at real shapes (a tiny one and the
 * all-MiniLM-L6-v2 shape) in exactly the layout users download from the
 * Hugging Face hub: config.json, model.safetensors (or shards + index),
 * modules.json, sentence_bert_config.json, config_sentence_transformers.json,
 * 1_Pooling/, optional N_Dense/ and N_Normalize/, and the tokenizer files.
 * sentence-transformers itself loads these directories; the golden vectors in
 * tests/golden/embeddings come from it (tools/ref/make_golden_embeddings.py).
 *
 * Determinism: the same arguments give byte-identical files on every machine.
 * Weights come from xoshiro256** seeded per tensor from (seed, tensor name),
 * and normal deviates are Irwin–Hall sums of uniforms, so only IEEE-exact
 * arithmetic (+, *, sqrt) is used — no libm log/cos whose last bit may differ
 * between C libraries (the reason this is not Box–Muller).  Seeding per tensor
 * name (without the optional "bert." prefix) means the f16, bf16, sharded and
 * prefixed variants of one seed hold the same underlying weights.
 *
 * This file owns: argument parsing, weight generation, the safetensors writer
 * and every JSON file of the generated directory. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---- shapes ------------------------------------------------------------- */

typedef struct shape {
    const char *name;
    int layers, hidden, heads, intermediate, vocab, max_pos, type_vocab;
    int max_seq_length;  /* sentence_bert_config.json default */
} shape;

static const shape SHAPES[] = {
    {"tiny", 2, 32, 4, 64, 30522, 512, 2, 128},
    /* sentence-transformers/all-MiniLM-L6-v2 */
    {"minilm-l6", 6, 384, 12, 1536, 30522, 512, 2, 256},
};

/* ---- options ------------------------------------------------------------ */

enum { DT_F32, DT_F16, DT_BF16 };
static const char *const DT_ST_NAME[] = {"F32", "F16", "BF16"};
static const char *const DT_TORCH_NAME[] = {"float32", "float16", "bfloat16"};
static const int DT_SIZE[] = {4, 2, 2};

/* Pooling modes in the order sentence-transformers concatenates the legacy
 * pooling_mode_* flags (cls, max, mean, mean_sqrt_len, weightedmean,
 * lasttoken) — see _LEGACY_POOLING_MODE_KWARGS in sentence-transformers. */
#define N_POOL 6
static const char *const POOL_NAME[N_POOL] = {
    "cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"};
static const char *const POOL_LEGACY_KEY[N_POOL] = {
    "pooling_mode_cls_token", "pooling_mode_max_tokens",
    "pooling_mode_mean_tokens", "pooling_mode_mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"};

/* Dense activations: our name, and the class path sentence-transformers
 * writes (fullname(module)); it only imports paths starting with "torch.". */
#define N_ACT 3
static const char *const ACT_NAME[N_ACT] = {"tanh", "identity", "relu"};
static const char *const ACT_TORCH[N_ACT] = {
    "torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity",
    "torch.nn.modules.activation.ReLU"};

#define MAX_DENSE 4

typedef struct options {
    const shape *sh;
    uint64_t seed;
    const char *out;
    const char *vocab_dir;
    int dtype;
    int pool[N_POOL];      /* pooling modes in the order given */
    int n_pool;
    int include_prompt;
    int dense_out[MAX_DENSE], dense_act[MAX_DENSE];
    int n_dense;
    int normalize;
    int shards;
    int bert_prefix;
    int max_seq_length;
    int do_lower_case;
    int prompts;
    const char *default_prompt;
    int tokenizer_json;
    int st_v6;             /* write the sentence-transformers >= 6 layout */
} options;

/* ---- errors ------------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((noreturn, format(printf, 1, 2)))
#endif
static void die(const char *fmt, ...);
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ek-genmodel: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%zu bytes)", n);
    return p;
}

/* ---- deterministic random numbers --------------------------------------- */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct rng { uint64_t s[4]; } rng;

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

/* One independent stream per (seed, tensor name). */
static void rng_for(rng *r, uint64_t seed, const char *name) {
    uint64_t sm = seed ^ fnv1a64(name);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&sm);
}

/* Uniform in [0, 1) with 53 random bits: exact in double. */
static double rng_uniform(rng *r) {
    return (double)(xoshiro_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Approximately standard normal: (sum of 4 uniforms - 2) * sqrt(3) has mean 0,
 * variance 1 and is bounded by +-3.46 (no wild outliers).  Only additions and
 * multiplications, so every IEEE machine gets the same bits (ISO C mode keeps
 * the compiler from contracting them into FMAs). */
static double rng_normal(rng *r) {
    double s = rng_uniform(r) + rng_uniform(r) + rng_uniform(r) + rng_uniform(r);
    return (s - 2.0) * 1.7320508075688772;
}

/* ---- half-precision conversions (round to nearest, ties to even) --------- */

static uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40); /* NaN */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    int exp = (int)((x >> 23) & 0xFF);
    uint32_t mant = x & 0x7FFFFFu;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00u | (mant ? 0x200u : 0u));
    int e = exp - 127 + 15;               /* f16 biased exponent */
    if (e >= 31) return (uint16_t)(sign | 0x7C00u);  /* overflow: infinity */
    if (e <= 0) {
        /* Subnormal f16: value = q * 2^-24 with q = M * 2^(e-14). */
        int shift = 14 - e;
        if (shift > 24) return sign;      /* below half the smallest subnormal */
        uint32_t m = mant | 0x800000u;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);      /* q == 0x400 is the smallest normal */
    }
    uint32_t q = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;  /* may carry to inf */
    return (uint16_t)(sign | q);
}

/* ---- tensors ------------------------------------------------------------ */

/* A tensor to generate: value = mean + std * N(0, 1), drawn from the stream
 * of (seed, key).  name is what the file stores; key never has "bert.". */
typedef struct tensor {
    char name[192];
    char key[192];
    int ndim;
    int64_t shape[2];
    double mean, std;
} tensor;

typedef struct tensor_list {
    tensor *t;
    int n, cap;
} tensor_list;

static int64_t tensor_numel(const tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void add_tensor(tensor_list *l, const char *prefix, const char *key,
                       int64_t rows, int64_t cols, double mean, double std) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        tensor *nt = realloc(l->t, (size_t)l->cap * sizeof *nt);
        if (!nt) die("out of memory");
        l->t = nt;
    }
    tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", prefix, key);
    snprintf(t->key, sizeof t->key, "%s", key);
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->mean = mean;
    t->std = std;
}

/* Linear layer [out][in] + bias [out], PyTorch layout. */
static void add_linear(tensor_list *l, const char *prefix, const char *base,
                       int out, int in, double wstd, double bstd) {
    char k[160];
    snprintf(k, sizeof k, "%s.weight", base);
    add_tensor(l, prefix, k, out, in, 0.0, wstd);
    snprintf(k, sizeof k, "%s.bias", base);
    add_tensor(l, prefix, k, out, 0, 0.0, bstd);
}

/* LayerNorm: gamma around 1 with noise, beta non-zero, so a loader that
 * swaps or ignores them is caught. */
static void add_layernorm(tensor_list *l, const char *prefix, const char *base, int n) {
    char k[160];
    snprintf(k, sizeof k, "%s.weight", base);
    add_tensor(l, prefix, k, n, 0, 1.0, 0.15);
    snprintf(k, sizeof k, "%s.bias", base);
    add_tensor(l, prefix, k, n, 0, 0.0, 0.1);
}

/* The BertModel tensors, with scales chosen so the forward pass exercises
 * every op: inputs of each layer are LayerNorm outputs (variance ~1), so
 *   - Q and K have std sqrt(2.5/H): per-head scores q.k/sqrt(d) then have a
 *     standard deviation of about 2.5, so softmax rows are clearly
 *     non-uniform without being one-hot;
 *   - V, attention output, FFN in: std 1/sqrt(fan_in), so GELU inputs have
 *     variance ~1 plus a bias and span both signs;
 *   - every bias is non-zero. */
static void bert_tensors(const shape *sh, const char *prefix, tensor_list *l) {
    const int H = sh->hidden, I = sh->intermediate;
    const double qk = sqrt(2.5 / H), fan_h = 1.0 / sqrt((double)H),
                 fan_i = 1.0 / sqrt((double)I);
    add_tensor(l, prefix, "embeddings.word_embeddings.weight", sh->vocab, H, 0.0, 0.5);
    add_tensor(l, prefix, "embeddings.position_embeddings.weight", sh->max_pos, H, 0.0, 0.3);
    add_tensor(l, prefix, "embeddings.token_type_embeddings.weight", sh->type_vocab, H, 0.0, 0.3);
    add_layernorm(l, prefix, "embeddings.LayerNorm", H);
    for (int i = 0; i < sh->layers; i++) {
        char b[128];
#define LAYER(suffix) (snprintf(b, sizeof b, "encoder.layer.%d.%s", i, suffix), b)
        add_linear(l, prefix, LAYER("attention.self.query"), H, H, qk, 0.1);
        add_linear(l, prefix, LAYER("attention.self.key"), H, H, qk, 0.1);
        add_linear(l, prefix, LAYER("attention.self.value"), H, H, fan_h, 0.1);
        add_linear(l, prefix, LAYER("attention.output.dense"), H, H, fan_h, 0.1);
        add_layernorm(l, prefix, LAYER("attention.output.LayerNorm"), H);
        add_linear(l, prefix, LAYER("intermediate.dense"), I, H, fan_h, 0.2);
        add_linear(l, prefix, LAYER("output.dense"), H, I, fan_i, 0.1);
        add_layernorm(l, prefix, LAYER("output.LayerNorm"), H);
#undef LAYER
    }
    add_linear(l, prefix, "pooler.dense", H, H, fan_h, 0.1);
}

/* ---- files -------------------------------------------------------------- */

static void mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) die("path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", buf, strerror(errno));
}

static const char *join(const char *dir, const char *name) {
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ & 3];
    if (snprintf(p, 4096, "%s/%s", dir, name) >= 4096) die("path too long: %s/%s", dir, name);
    return p;
}

static FILE *open_w(const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot create %s: %s", path, strerror(errno));
    return f;
}

static void close_w(FILE *f, const char *path) {
    if (ferror(f) || fclose(f) != 0) die("write error on %s", path);
}

static void write_text(const char *path, const char *text) {
    FILE *f = open_w(path);
    fputs(text, f);
    close_w(f, path);
}

/* Writes a cJSON tree (pretty-printed, trailing newline) and frees it. */
static void write_json(const char *path, cJSON *j) {
    char *s = cJSON_Print(j);
    if (!s) die("out of memory printing %s", path);
    FILE *f = open_w(path);
    fputs(s, f);
    fputc('\n', f);
    close_w(f, path);
    cJSON_free(s);
    cJSON_Delete(j);
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0, r;
    char *buf = xmalloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) die("out of memory reading %s", path);
            buf = nb;
        }
    }
    if (ferror(f)) die("read error on %s", path);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *data = read_all(from, &n);
    FILE *f = open_w(to);
    if (fwrite(data, 1, n, f) != n) die("write error on %s", to);
    close_w(f, to);
    free(data);
}

/* ---- safetensors -------------------------------------------------------- */

/* Format: u64 little-endian header length N, N bytes of JSON header (padded
 * with spaces so the data starts at a multiple of 8), then the tensors back
 * to back in header order.  safetensors requires the data_offsets to tile the
 * data exactly (no holes), so alignment comes from the sizes: every tensor
 * here has a multiple of 32 elements, hence every offset is 8-aligned, which
 * lets a loader map F32 data in place. */
static uint64_t write_safetensors(const char *path, const tensor *t, int n,
                                  int dtype, uint64_t seed) {
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(h, t[i].name);
        cJSON_AddStringToObject(e, "dtype", DT_ST_NAME[dtype]);
        cJSON *shp = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(shp, cJSON_CreateNumber((double)t[i].shape[d]));
        uint64_t bytes = (uint64_t)tensor_numel(&t[i]) * (uint64_t)DT_SIZE[dtype];
        if (off % 8 != 0) die("internal: tensor %s would not be 8-byte aligned", t[i].name);
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *hs = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!hs) die("out of memory");
    size_t hlen = strlen(hs), padded = (hlen + 7) & ~(size_t)7;

    FILE *f = open_w(path);
    unsigned char len8[8];
    for (int b = 0; b < 8; b++) len8[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    fwrite(len8, 1, 8, f);
    fwrite(hs, 1, hlen, f);
    for (size_t i = hlen; i < padded; i++) fputc(' ', f);
    cJSON_free(hs);

    /* Tensor data, generated one tensor at a time and written byte by byte
     * in little-endian order whatever the host's. */
    for (int i = 0; i < n; i++) {
        int64_t cnt = tensor_numel(&t[i]);
        size_t bytes = (size_t)cnt * (size_t)DT_SIZE[dtype];
        unsigned char *buf = xmalloc(bytes);
        rng r;
        rng_for(&r, seed, t[i].key);
        for (int64_t k = 0; k < cnt; k++) {
            float v = (float)(t[i].mean + t[i].std * rng_normal(&r));
            unsigned char *p = buf + (size_t)k * (size_t)DT_SIZE[dtype];
            if (dtype == DT_F32) {
                uint32_t u;
                memcpy(&u, &v, 4);
                for (int b = 0; b < 4; b++) p[b] = (unsigned char)(u >> (8 * b));
            } else {
                uint16_t u = dtype == DT_F16 ? f32_to_f16(v) : f32_to_bf16(v);
                p[0] = (unsigned char)u;
                p[1] = (unsigned char)(u >> 8);
            }
        }
        if (fwrite(buf, 1, bytes, f) != bytes) die("write error on %s", path);
        free(buf);
    }
    close_w(f, path);
    return off;
}

/* The transformer weights: one file, or `shards` files split by tensor count
 * (each shard non-empty) plus model.safetensors.index.json as transformers
 * writes it (metadata.total_size = tensor bytes, weight_map name -> file). */
static void write_bert_weights(const options *o, const tensor_list *l) {
    if (o->shards <= 1) {
        write_safetensors(join(o->out, "model.safetensors"), l->t, l->n, o->dtype, o->seed);
        return;
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(idx, "metadata");
    cJSON *map = cJSON_AddObjectToObject(idx, "weight_map");
    uint64_t total = 0;
    for (int s = 0; s < o->shards; s++) {
        int a = (int)((int64_t)l->n * s / o->shards), b = (int)((int64_t)l->n * (s + 1) / o->shards);
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, o->shards);
        total += write_safetensors(join(o->out, fname), l->t + a, b - a, o->dtype, o->seed);
        for (int i = a; i < b; i++) cJSON_AddStringToObject(map, l->t[i].name, fname);
    }
    /* total_size first in "metadata", as transformers writes it. */
    cJSON_AddNumberToObject(meta, "total_size", (double)total);
    write_json(join(o->out, "model.safetensors.index.json"), idx);
}

/* ---- JSON files --------------------------------------------------------- */

static void write_config(const options *o) {
    const shape *sh = o->sh;
    cJSON *c = cJSON_CreateObject();
    cJSON_AddFalseToObject(c, "add_cross_attention");
    cJSON *arch = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("BertModel"));
    cJSON_AddNumberToObject(c, "attention_probs_dropout_prob", 0.1);
    cJSON_AddNullToObject(c, "bos_token_id");
    cJSON_AddNullToObject(c, "classifier_dropout");
    cJSON_AddStringToObject(c, "dtype", DT_TORCH_NAME[o->dtype]);
    cJSON_AddNullToObject(c, "eos_token_id");
    cJSON_AddStringToObject(c, "hidden_act", "gelu");
    cJSON_AddNumberToObject(c, "hidden_dropout_prob", 0.1);
    cJSON_AddNumberToObject(c, "hidden_size", sh->hidden);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddNumberToObject(c, "intermediate_size", sh->intermediate);
    cJSON_AddFalseToObject(c, "is_decoder");
    cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-12);
    cJSON_AddNumberToObject(c, "max_position_embeddings", sh->max_pos);
    cJSON_AddStringToObject(c, "model_type", "bert");
    cJSON_AddNumberToObject(c, "num_attention_heads", sh->heads);
    cJSON_AddNumberToObject(c, "num_hidden_layers", sh->layers);
    cJSON_AddNumberToObject(c, "pad_token_id", 0);
    cJSON_AddStringToObject(c, "position_embedding_type", "absolute");
    cJSON_AddTrueToObject(c, "tie_word_embeddings");
    cJSON_AddNumberToObject(c, "type_vocab_size", sh->type_vocab);
    cJSON_AddTrueToObject(c, "use_cache");
    cJSON_AddNumberToObject(c, "vocab_size", sh->vocab);
    /* Not a transformers field: tells embedkit (and people) what this is. */
    cJSON *g = cJSON_AddObjectToObject(c, "embedkit_generated");
    cJSON_AddNumberToObject(g, "seed", (double)o->seed);
    cJSON_AddStringToObject(g, "shape", sh->name);
    cJSON_AddStringToObject(g, "note", "random weights generated by ek-genmodel; not a trained model");
    write_json(join(o->out, "config.json"), c);
}

static void add_module(cJSON *arr, int idx, const char *path, const char *type) {
    cJSON *m = cJSON_CreateObject();
    char name[16];
    snprintf(name, sizeof name, "%d", idx);
    cJSON_AddNumberToObject(m, "idx", idx);
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "path", path);
    cJSON_AddStringToObject(m, "type", type);
    cJSON_AddItemToArray(arr, m);
}

/* modules.json and every module folder after the transformer.  The legacy
 * layout (default) is what hub models such as all-MiniLM-L6-v2 ship:
 * "sentence_transformers.models.X" types, pooling_mode_* flags and no
 * Normalize folder.  --st-format v6 writes what sentence-transformers 6
 * saves: new module paths, "pooling_mode" as a string or list (concatenated
 * in list order), max_seq_length in tokenizer_config.json, a Normalize
 * folder with its own config.json. */
static void write_st_modules(const options *o) {
    const int H = o->sh->hidden;
    cJSON *mods = cJSON_CreateArray();
    add_module(mods, 0, "", o->st_v6 ? "sentence_transformers.base.modules.transformer.Transformer"
                                     : "sentence_transformers.models.Transformer");
    add_module(mods, 1, "1_Pooling", o->st_v6 ? "sentence_transformers.sentence_transformer.modules.pooling.Pooling"
                                              : "sentence_transformers.models.Pooling");

    mkdir_p(join(o->out, "1_Pooling"));
    cJSON *pc = cJSON_CreateObject();
    if (o->st_v6) {
        cJSON_AddNumberToObject(pc, "embedding_dimension", H);
        if (o->n_pool == 1) {
            cJSON_AddStringToObject(pc, "pooling_mode", POOL_NAME[o->pool[0]]);
        } else {
            cJSON *pm = cJSON_AddArrayToObject(pc, "pooling_mode");
            for (int i = 0; i < o->n_pool; i++)
                cJSON_AddItemToArray(pm, cJSON_CreateString(POOL_NAME[o->pool[i]]));
        }
    } else {
        cJSON_AddNumberToObject(pc, "word_embedding_dimension", H);
        for (int m = 0; m < N_POOL; m++) {
            int on = 0;
            for (int i = 0; i < o->n_pool; i++) on |= o->pool[i] == m;
            cJSON_AddBoolToObject(pc, POOL_LEGACY_KEY[m], on);
        }
    }
    cJSON_AddBoolToObject(pc, "include_prompt", o->include_prompt);
    write_json(join(join(o->out, "1_Pooling"), "config.json"), pc);

    int idx = 2, in = H * o->n_pool;
    for (int d = 0; d < o->n_dense; d++, idx++) {
        char dir[64], path[4096];
        snprintf(dir, sizeof dir, "%d_Dense", idx);
        add_module(mods, idx, dir, o->st_v6 ? "sentence_transformers.base.modules.dense.Dense"
                                            : "sentence_transformers.models.Dense");
        snprintf(path, sizeof path, "%s", join(o->out, dir));
        mkdir_p(path);
        cJSON *dc = cJSON_CreateObject();
        cJSON_AddNumberToObject(dc, "in_features", in);
        cJSON_AddNumberToObject(dc, "out_features", o->dense_out[d]);
        cJSON_AddTrueToObject(dc, "bias");
        cJSON_AddStringToObject(dc, "activation_function", ACT_TORCH[o->dense_act[d]]);
        if (o->st_v6) {
            cJSON_AddStringToObject(dc, "module_input_name", "sentence_embedding");
            cJSON_AddStringToObject(dc, "module_output_name", "sentence_embedding");
        }
        write_json(join(path, "config.json"), dc);
        /* Streams keyed by folder name so two Dense layers differ. */
        tensor_list l = {0};
        char key[96];
        snprintf(key, sizeof key, "%s/linear", dir);
        add_linear(&l, "", key, o->dense_out[d], in, 1.0 / sqrt((double)in), 0.1);
        for (int i = 0; i < l.n; i++) snprintf(l.t[i].name, sizeof l.t[i].name, "%s", l.t[i].key + strlen(dir) + 1);
        write_safetensors(join(path, "model.safetensors"), l.t, l.n, o->dtype, o->seed);
        free(l.t);
        in = o->dense_out[d];
    }
    if (o->normalize) {
        char dir[64];
        snprintf(dir, sizeof dir, "%d_Normalize", idx);
        add_module(mods, idx, dir, o->st_v6 ? "sentence_transformers.base.modules.normalize.Normalize"
                                            : "sentence_transformers.models.Normalize");
        /* Legacy: no folder at all, as on the hub (git keeps no empty
         * directories and Normalize has no files); v6 saves a config. */
        if (o->st_v6) {
            mkdir_p(join(o->out, dir));
            cJSON *nc = cJSON_CreateObject();
            cJSON_AddStringToObject(nc, "module_input_name", "sentence_embedding");
            cJSON_AddStringToObject(nc, "module_output_name", "sentence_embedding");
            write_json(join(join(o->out, dir), "config.json"), nc);
        }
    }
    write_json(join(o->out, "modules.json"), mods);

    cJSON *sb = cJSON_CreateObject();
    if (o->st_v6) {
        cJSON_AddStringToObject(sb, "transformer_task", "feature-extraction");
        cJSON *mc = cJSON_AddObjectToObject(sb, "modality_config");
        cJSON *tx = cJSON_AddObjectToObject(mc, "text");
        cJSON_AddStringToObject(tx, "method", "forward");
        cJSON_AddStringToObject(tx, "method_output_name", "last_hidden_state");
        cJSON_AddStringToObject(sb, "module_output_name", "token_embeddings");
        if (o->do_lower_case) cJSON_AddTrueToObject(sb, "do_lower_case");
    } else {
        cJSON_AddNumberToObject(sb, "max_seq_length", o->max_seq_length);
        cJSON_AddBoolToObject(sb, "do_lower_case", o->do_lower_case);
    }
    write_json(join(o->out, "sentence_bert_config.json"), sb);

    cJSON *cs = cJSON_CreateObject();
    cJSON_AddStringToObject(cs, "model_type", "SentenceTransformer");
    cJSON *pr = cJSON_AddObjectToObject(cs, "prompts");
    if (o->prompts) {
        cJSON_AddStringToObject(pr, "query", "query: ");
        cJSON_AddStringToObject(pr, "passage", "passage: ");
    }
    if (o->default_prompt) cJSON_AddStringToObject(cs, "default_prompt_name", o->default_prompt);
    else cJSON_AddNullToObject(cs, "default_prompt_name");
    cJSON_AddStringToObject(cs, "similarity_fn_name", "cosine");
    write_json(join(o->out, "config_sentence_transformers.json"), cs);
}

static void write_tokenizer(const options *o) {
    copy_file(join(o->vocab_dir, "vocab.txt"), join(o->out, "vocab.txt"));
    if (o->st_v6) {
        /* sentence-transformers 6 keeps max_seq_length here. */
        char *txt = read_all(join(o->vocab_dir, "tokenizer_config.json"), NULL);
        cJSON *tc = cJSON_Parse(txt);
        free(txt);
        if (!tc) die("%s/tokenizer_config.json: not valid JSON", o->vocab_dir);
        cJSON_DeleteItemFromObject(tc, "model_max_length");
        cJSON_AddNumberToObject(tc, "model_max_length", o->max_seq_length);
        write_json(join(o->out, "tokenizer_config.json"), tc);
    } else {
        copy_file(join(o->vocab_dir, "tokenizer_config.json"), join(o->out, "tokenizer_config.json"));
    }
    if (o->tokenizer_json) {
        copy_file(join(o->vocab_dir, "tokenizer.json"), join(o->out, "tokenizer.json"));
        copy_file(join(o->vocab_dir, "special_tokens_map.json"), join(o->out, "special_tokens_map.json"));
    }
}

static void write_readme(const options *o, int argc, char **argv) {
    size_t cap = 4096, n = 0;
    for (int i = 1; i < argc; i++) cap += strlen(argv[i]) + 1;
    char *buf = xmalloc(cap);
    n += (size_t)snprintf(buf, cap,
        "# Generated model (RANDOM weights)\n\n"
        "Made by embedkit's `ek-genmodel` (shape %s, seed %llu). The weights are\n"
        "pseudo-random, not trained: embeddings from this model carry no meaning.\n"
        "It exists to test and try embedkit at a real model's shape and layout;\n"
        "sentence-transformers loads it like any downloaded model.\n\n"
        "Command:\n\n    ek-genmodel",
        o->sh->name, (unsigned long long)o->seed);
    /* Paths left out, so the same model reads the same wherever it was made. */
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--out") || !strcmp(argv[i], "--vocab-dir")) && i + 1 < argc) {
            n += (size_t)snprintf(buf + n, cap - n, " %s ...", argv[i]);
            i++;
            continue;
        }
        n += (size_t)snprintf(buf + n, cap - n, " %s", argv[i]);
    }
    snprintf(buf + n, cap - n, "\n");
    write_text(join(o->out, "README.md"), buf);
    free(buf);
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f) {
    fputs(
        "usage: ek-genmodel --out DIR --vocab-dir DIR [options]\n"
        "Writes a sentence-transformers BERT model with RANDOM weights (deterministic).\n"
        "  --shape tiny|minilm-l6      model shape (default tiny)\n"
        "  --seed N                    weight seed (default 42)\n"
        "  --dtype f32|f16|bf16        stored weight type (default f32)\n"
        "  --pooling MODE[,MODE...]    cls, mean, max, mean_sqrt_len_tokens,\n"
        "                              weightedmean, lasttoken (default mean)\n"
        "  --no-include-prompt         pooling excludes prompt tokens\n"
        "  --dense OUT:ACT             add a Dense layer (ACT: tanh|identity|relu);\n"
        "                              repeatable, up to 4\n"
        "  --normalize|--no-normalize  add a Normalize module (default on)\n"
        "  --shards N                  split weights over N files + index\n"
        "  --bert-prefix               tensor names start with \"bert.\"\n"
        "  --max-seq-length N          default 128 (tiny), 256 (minilm-l6)\n"
        "  --do-lower-case             sentence_bert_config do_lower_case true\n"
        "  --prompts                   prompts {query: \"query: \", passage: \"passage: \"}\n"
        "  --default-prompt NAME       default_prompt_name\n"
        "  --no-tokenizer-json         only vocab.txt + tokenizer_config.json\n"
        "  --st-format legacy|v6       module file layout (default legacy, as hub\n"
        "                              models ship; v6 = sentence-transformers 6 saves)\n",
        f);
}

static long parse_long(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("%s: expected an integer in [%ld, %ld], got \"%s\"", opt, lo, hi, s);
    return v;
}

static void parse_pooling(options *o, const char *s) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    o->n_pool = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int m = -1;
        for (int i = 0; i < N_POOL; i++)
            if (strcmp(tok, POOL_NAME[i]) == 0) m = i;
        if (m < 0) die("--pooling: unknown mode \"%s\"", tok);
        for (int i = 0; i < o->n_pool; i++)
            if (o->pool[i] == m) die("--pooling: mode \"%s\" given twice", tok);
        o->pool[o->n_pool++] = m;
    }
    if (o->n_pool == 0) die("--pooling: no mode given");
}

static void parse_dense(options *o, const char *s) {
    if (o->n_dense == MAX_DENSE) die("--dense: at most %d layers", MAX_DENSE);
    const char *colon = strchr(s, ':');
    if (!colon) die("--dense: expected OUT:ACT, got \"%s\"", s);
    char num[32];
    snprintf(num, sizeof num, "%.*s", (int)(colon - s), s);
    int act = -1;
    for (int i = 0; i < N_ACT; i++)
        if (strcmp(colon + 1, ACT_NAME[i]) == 0) act = i;
    if (act < 0) die("--dense: unknown activation \"%s\" (tanh, identity, relu)", colon + 1);
    o->dense_out[o->n_dense] = (int)parse_long("--dense", num, 1, 65536);
    o->dense_act[o->n_dense++] = act;
}

static void check_out_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;  /* created later */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            closedir(d);
            die("%s exists and is not empty; remove it first", dir);
        }
    }
    closedir(d);
}

int main(int argc, char **argv) {
    options o;
    memset(&o, 0, sizeof o);
    o.sh = &SHAPES[0];
    o.seed = 42;
    o.dtype = DT_F32;
    o.pool[0] = 2;  /* mean */
    o.n_pool = 1;
    o.include_prompt = 1;
    o.normalize = 1;
    o.shards = 1;
    o.tokenizer_json = 1;
    o.max_seq_length = -1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEED_ARG() (i + 1 < argc ? argv[++i] : (die("%s needs an argument", a), ""))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--shape")) {
            const char *v = NEED_ARG();
            o.sh = NULL;
            for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++)
                if (!strcmp(v, SHAPES[k].name)) o.sh = &SHAPES[k];
            if (!o.sh) die("--shape: unknown shape \"%s\" (tiny, minilm-l6)", v);
        }
        else if (!strcmp(a, "--seed")) {
            const char *v = NEED_ARG();
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-') die("--seed: expected a non-negative integer, got \"%s\"", v);
            o.seed = s;
        }
        else if (!strcmp(a, "--out")) o.out = NEED_ARG();
        else if (!strcmp(a, "--vocab-dir")) o.vocab_dir = NEED_ARG();
        else if (!strcmp(a, "--dtype")) {
            const char *v = NEED_ARG();
            if (!strcmp(v, "f32")) o.dtype = DT_F32;
            else if (!strcmp(v, "f16")) o.dtype = DT_F16;
            else if (!strcmp(v, "bf16")) o.dtype = DT_BF16;
            else die("--dtype: expected f32, f16 or bf16, got \"%s\"", v);
        }
        else if (!strcmp(a, "--pooling")) parse_pooling(&o, NEED_ARG());
        else if (!strcmp(a, "--no-include-prompt")) o.include_prompt = 0;
        else if (!strcmp(a, "--dense")) parse_dense(&o, NEED_ARG());
        else if (!strcmp(a, "--normalize")) o.normalize = 1;
        else if (!strcmp(a, "--no-normalize")) o.normalize = 0;
        else if (!strcmp(a, "--shards")) o.shards = (int)parse_long(a, NEED_ARG(), 1, 64);
        else if (!strcmp(a, "--bert-prefix")) o.bert_prefix = 1;
        else if (!strcmp(a, "--max-seq-length")) o.max_seq_length = (int)parse_long(a, NEED_ARG(), 1, 1 << 20);
        else if (!strcmp(a, "--do-lower-case")) o.do_lower_case = 1;
        else if (!strcmp(a, "--prompts")) o.prompts = 1;
        else if (!strcmp(a, "--default-prompt")) o.default_prompt = NEED_ARG();
        else if (!strcmp(a, "--no-tokenizer-json")) o.tokenizer_json = 0;
        else if (!strcmp(a, "--st-format")) {
            const char *v = NEED_ARG();
            if (!strcmp(v, "legacy")) o.st_v6 = 0;
            else if (!strcmp(v, "v6")) o.st_v6 = 1;
            else die("--st-format: expected legacy or v6, got \"%s\"", v);
        }
        else { usage(stderr); die("unknown argument \"%s\"", a); }
#undef NEED_ARG
    }
    if (!o.out || !o.vocab_dir) { usage(stderr); die("--out and --vocab-dir are required"); }
    if (o.max_seq_length < 0) o.max_seq_length = o.sh->max_seq_length;
    if (o.default_prompt && (!o.prompts || (strcmp(o.default_prompt, "query") && strcmp(o.default_prompt, "passage"))))
        die("--default-prompt needs --prompts and a name among query, passage");

    check_out_dir(o.out);
    mkdir_p(o.out);

    tensor_list l = {0};
    bert_tensors(o.sh, o.bert_prefix ? "bert." : "", &l);
    if (o.shards > l.n) die("--shards: more shards than tensors (%d)", l.n);
    write_config(&o);
    write_bert_weights(&o, &l);
    write_st_modules(&o);
    write_tokenizer(&o);
    write_readme(&o, argc, argv);
    free(l.t);
    return 0;
}
