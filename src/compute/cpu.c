/* compute/cpu.c — CPU feature detection, the EK_ISA cap and the matching
 * oneDNN cap (see cpu.h). */
#include "compute/cpu.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

ek_isa ek_cpu_detect(void) {
    /* __builtin_cpu_supports also checks that the OS saves the wide
     * registers (XSAVE state); the bf16 / AMX bits come from CPUID leaf 7. */
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        return EK_ISA_GENERIC;
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        return EK_ISA_AVX2;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return EK_ISA_AVX512;
    int bf16 = (a >> 5) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return EK_ISA_AVX512;
    int vnni = (c >> 11) & 1, amx = ((d >> 24) & 1) && ((d >> 22) & 1);
    if (!bf16 || !vnni) return EK_ISA_AVX512;
    return amx ? EK_ISA_AMX : EK_ISA_AVX512_BF16;
}
#else
ek_isa ek_cpu_detect(void) { return EK_ISA_GENERIC; }
#endif

int ek_isa_parse(const char *s, ek_isa *out) {
    static const struct { const char *name; ek_isa isa; } names[] = {
        {"generic", EK_ISA_GENERIC}, {"avx2", EK_ISA_AVX2},
        {"avx512", EK_ISA_AVX512_BF16}, {"amx", EK_ISA_AMX},
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].isa;
            return 0;
        }
    return -1;
}

const char *ek_isa_name(ek_isa isa) {
    static const char *names[] = {"generic", "avx2", "avx512", "avx512_bf16", "amx"};
    return (unsigned)isa <= EK_ISA_AMX ? names[isa] : "unknown";
}

ek_isa ek_cpu_level(int *bad_env) {
    ek_isa hw = ek_cpu_detect(), want;
    const char *env = getenv("EK_ISA");
    if (bad_env) *bad_env = 0;
    if (!env || !*env) return hw;
    if (ek_isa_parse(env, &want)) {
        if (bad_env) *bad_env = 1;
        return hw;
    }
    return want < hw ? want : hw;
}

int ek_cpu_cap_dnnl(ek_isa isa) {
    dnnl_cpu_isa_t cap;
    switch (isa) {
    case EK_ISA_GENERIC: cap = dnnl_cpu_isa_sse41; break;
    case EK_ISA_AVX2: cap = dnnl_cpu_isa_avx2; break;
    case EK_ISA_AVX512: cap = dnnl_cpu_isa_avx512_core; break;
    case EK_ISA_AVX512_BF16: cap = dnnl_cpu_isa_avx512_core_bf16; break;
    default: cap = dnnl_cpu_isa_all; break;
    }
    return dnnl_set_max_cpu_isa(cap) == dnnl_success ? 0 : -1;
}

const char *ek_cpu_dnnl_isa(void) {
#if !defined(__x86_64__)
    /* oneDNN's ISA values are x86 names; elsewhere they mean other things
     * (an aarch64 build reported "avx512_mic_4ops"). */
#if defined(__aarch64__)
    return "aarch64";
#else
    return "native";
#endif
#endif
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}
