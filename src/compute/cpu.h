/* compute/cpu.h — which instruction sets this CPU offers and which the
 * compute layer may use: detection at run time, the EK_ISA cap, and the
 * matching cap on oneDNN.
 *
 * Levels are ordered; a kernel for level L runs on any CPU whose level is
 * >= L.  EK_ISA=avx2|avx512|amx lowers the level (never raises it) for
 * device-specific benchmarks and tests.  Our own kernels take the level as
 * an argument, so two models in one process may differ; oneDNN's cap is
 * process-wide and only takes effect before oneDNN's first primitive (see
 * ek_cpu_cap_dnnl). */
#ifndef EK_COMPUTE_CPU_H
#define EK_COMPUTE_CPU_H

typedef enum ek_isa {
    EK_ISA_GENERIC = 0,     /* portable C (any x86-64, aarch64) */
    EK_ISA_AVX2 = 1,        /* AVX2 + FMA */
    EK_ISA_AVX512 = 2,      /* AVX-512 F/BW/VL/DQ */
    EK_ISA_AVX512_BF16 = 3, /* + AVX512_BF16 and VNNI (bf16 / int8 dot products) */
    EK_ISA_AMX = 4          /* + AMX tiles (bf16 / int8) */
} ek_isa;

/* What the CPU (and OS) supports. */
ek_isa ek_cpu_detect(void);
/* Parses EK_ISA's value: "avx2", "avx512" (AVX-512 with BF16/VNNI when
 * present), "amx", "generic".  Returns 0, or -1 if unknown. */
int ek_isa_parse(const char *s, ek_isa *out);
const char *ek_isa_name(ek_isa isa);
/* min(ek_cpu_detect(), the EK_ISA environment variable if set and valid).
 * *bad_env (may be NULL) is set to 1 when EK_ISA is set but not valid. */
ek_isa ek_cpu_level(int *bad_env);
/* Caps oneDNN's kernels at level isa (dnnl_set_max_cpu_isa).  Process-wide,
 * and refused by oneDNN once it has created a primitive: returns 0 when the
 * cap took effect, -1 when it was too late (oneDNN keeps its earlier
 * choice; see ek_cpu_dnnl_isa for what it runs). */
int ek_cpu_cap_dnnl(ek_isa isa);
/* The instruction set oneDNN's kernels use, as oneDNN names it
 * ("avx512_core_bf16"...). */
const char *ek_cpu_dnnl_isa(void);

#endif
