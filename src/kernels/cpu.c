/* Which instruction sets this CPU and OS can run, read at run time so one
 * binary serves every level of its architecture.  x86-64: the CPUID
 * feature bits say what the core implements; XGETBV says whether the OS
 * saves the wide registers on a context switch, without which AVX code
 * would corrupt state.  AArch64: the kernel's HWCAP words, which it sets
 * only for features it also supports. */
#include <stdint.h>
#include <strings.h>

#include "kernels/kernels.h"

static const char *const qb_isa_names[QB_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon", "dotprod", "i8mm"};

#if defined(__x86_64__)
#include <cpuid.h>

/* XCR0 bits: SSE and AVX (YMM upper halves) state, then the AVX-512
 * opmask, ZMM upper halves and ZMM16-31 state. */
#define QB_XCR0_AVX 0x06u
#define QB_XCR0_AVX512 0xe6u

/* XGETBV is emitted by hand because the intrinsic needs -mxsave, and this
 * file is compiled for baseline x86-64. */
static uint64_t qb_cpu_xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static bool qb_cpu_bits_set(uint32_t reg, uint32_t bits) { return (reg & bits) == bits; }

static bool qb_cpu_has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    const uint32_t fma = 1u << 12, osxsave = 1u << 27, avx = 1u << 28, f16c = 1u << 29;
    if (!qb_cpu_bits_set(c, fma | osxsave | avx | f16c)) return false;
    if (!qb_cpu_bits_set((uint32_t)qb_cpu_xcr0(), QB_XCR0_AVX)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return qb_cpu_bits_set(b, 1u << 5);
}

/* The AVX-512 tier is F + DQ + BW + VL (the float kernels) and VNNI (the
 * integer kernels that share the tier); BF16 is not required. */
static bool qb_cpu_has_avx512(void) {
    unsigned a, b, c, d;
    if (!qb_cpu_has_avx2()) return false;
    if (!qb_cpu_bits_set((uint32_t)qb_cpu_xcr0(), QB_XCR0_AVX512)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const uint32_t f = 1u << 16, dq = 1u << 17, bw = 1u << 30, vl = 1u << 31;
    const uint32_t vnni = 1u << 11;
    return qb_cpu_bits_set(b, f | dq | bw | vl) && qb_cpu_bits_set(c, vnni);
}

bool qb_isa_supported(qb_isa isa) {
    switch (isa) {
    case QB_ISA_SCALAR: return true;
    case QB_ISA_AVX2: return qb_cpu_has_avx2();
    case QB_ISA_AVX512: return qb_cpu_has_avx512();
    default: return false;
    }
}

bool qb_cpu_amd(void) {
    unsigned a, b, c, d;
    /* the vendor string "AuthenticAMD" in ebx, edx, ecx */
    return __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
}

qb_isa qb_cpu_best_isa(void) {
    if (qb_cpu_has_avx512()) return QB_ISA_AVX512;
    if (qb_cpu_has_avx2()) return QB_ISA_AVX2;
    return QB_ISA_SCALAR;
}

#elif defined(__aarch64__)
#include <sys/auxv.h>

/* Bits of AT_HWCAP and AT_HWCAP2 (Linux arch/arm64/include/uapi/asm/hwcap.h). */
#define QB_HWCAP_ASIMD (1ul << 1)
#define QB_HWCAP_ASIMDDP (1ul << 20)
#define QB_HWCAP2_I8MM (1ul << 13)

/* The levels nest: i8mm is offered only where the dot product is too, as
 * on every core that has it, so a level runs everything below it. */
bool qb_isa_supported(qb_isa isa) {
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    bool neon = hw & QB_HWCAP_ASIMD, dot = neon && (hw & QB_HWCAP_ASIMDDP);
    switch (isa) {
    case QB_ISA_SCALAR: return true;
    case QB_ISA_NEON: return neon;
    case QB_ISA_DOTPROD: return dot;
    case QB_ISA_I8MM: return dot && (hw2 & QB_HWCAP2_I8MM);
    default: return false;
    }
}

qb_isa qb_cpu_best_isa(void) {
    for (qb_isa isa = QB_ISA_I8MM; isa >= QB_ISA_NEON; isa--)
        if (qb_isa_supported(isa)) return isa;
    return QB_ISA_SCALAR;
}

#else
bool qb_isa_supported(qb_isa isa) { return isa == QB_ISA_SCALAR; }

qb_isa qb_cpu_best_isa(void) { return QB_ISA_SCALAR; }
#endif

bool qb_isa_from_name(const char *name, qb_isa *out) {
    if (!name) return false;
    for (int i = 0; i < QB_ISA_COUNT; i++) {
        if (strcasecmp(name, qb_isa_names[i]) == 0) {
            *out = (qb_isa)i;
            return true;
        }
    }
    return false;
}

const char *qb_isa_name(qb_isa isa) { return (unsigned)isa < QB_ISA_COUNT ? qb_isa_names[isa] : "unknown"; }
