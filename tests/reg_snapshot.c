/* tests/reg_snapshot.c — see reg_snapshot.h. */
#include "reg_snapshot.h"

#include <stdio.h>
#include <stdlib.h>

#include "embedkit_registry.h"

/* Versions (status, size, aliases, highest seen), their files, and the
 * blob store and version trees on disk, as one string. */
char *ts_registry_snapshot(const char *home) {
    ek_ctx *ctx;
    ek_registry *reg;
    if (ek_ctx_new(&ctx)) return NULL;
    if (ek_registry_open(ctx, home, NULL, &reg)) fail_msg("%s", ek_ctx_last_error(ctx));
    size_t cap = 1 << 20, n = 0;
    char *s = malloc(cap);
    ek_reg_version *v;
    size_t nv;
    assert_int_equal(ek_registry_list(ctx, reg, NULL, &v, &nv), EK_OK);
    for (size_t i = 0; i < nv; i++) {
        n += (size_t)snprintf(s + n, cap - n, "%s@%lld %s %llu [%s] %lld\n", v[i].name, (long long)v[i].version,
                              v[i].status, (unsigned long long)v[i].total_bytes, v[i].aliases,
                              (long long)v[i].highest_seen);
        ek_reg_file *f;
        size_t nf;
        assert_int_equal(ek_registry_files(ctx, reg, v[i].name, v[i].version, &f, &nf), EK_OK);
        for (size_t k = 0; k < nf; k++)
            n += (size_t)snprintf(s + n, cap - n, "  %s %llu %s\n", f[k].path, (unsigned long long)f[k].size,
                                  f[k].sha256);
        free(f);
    }
    free(v);
    ek_registry_close(reg);
    ek_ctx_free(ctx);
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "cd '%s' && ls -la blobs | sed 1d; find models | sort", home);
    ts_run(cmd, &out, NULL);
    snprintf(s + n, cap - n, "%s", out ? out : "");
    free(out);
    return s;
}
