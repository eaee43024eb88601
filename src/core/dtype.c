#include "core/dtype.h"

#include <string.h>

float qb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qb_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xFF, man = x & 0x7FFFFF;
    if (exp == 0xFF) return (uint16_t)(sign | 0x7C00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 0x1F) return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: still right */
    return (uint16_t)half;
}

float qb_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t qb_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7F800000u) == 0x7F800000u && (x & 0x7FFFFF)) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

static void f32_to_f32(const void *s, float *d, size_t n) { memcpy(d, s, n * sizeof *d); }
static void f16_to_f32(const void *s, float *d, size_t n) {
    const uint16_t *h = s;
    for (size_t i = 0; i < n; i++) d[i] = qb_f16_to_f32(h[i]);
}
static void bf16_to_f32(const void *s, float *d, size_t n) {
    const uint16_t *h = s;
    for (size_t i = 0; i < n; i++) d[i] = qb_bf16_to_f32(h[i]);
}
static void i8_to_f32(const void *s, float *d, size_t n) {
    const int8_t *q = s;
    for (size_t i = 0; i < n; i++) d[i] = q[i];
}
static void u8_to_f32(const void *s, float *d, size_t n) {
    const uint8_t *q = s;
    for (size_t i = 0; i < n; i++) d[i] = q[i];
}

static const qb_dtype_traits traits[QB_DTYPE_COUNT] = {
    [QB_F32] = {.name = "F32", .size = 4, .is_float = true, .exp_mask = 0x7f800000, .to_f32 = f32_to_f32},
    [QB_F16] = {.name = "F16", .size = 2, .is_float = true, .exp_mask = 0x7c00, .to_f32 = f16_to_f32},
    [QB_BF16] = {.name = "BF16", .size = 2, .is_float = true, .exp_mask = 0x7f80, .to_f32 = bf16_to_f32},
    [QB_I8] = {.name = "I8", .size = 1, .is_float = false, .to_f32 = i8_to_f32},
    [QB_U8] = {.name = "U8", .size = 1, .is_float = false, .to_f32 = u8_to_f32},
    [QB_I32] = {.name = "I32", .size = 4, .is_float = false, .to_f32 = NULL},
    [QB_I64] = {.name = "I64", .size = 8, .is_float = false, .to_f32 = NULL},
};

const qb_dtype_traits *qb_dtype_traits_of(qb_dtype t) {
    return (unsigned)t < QB_DTYPE_COUNT ? &traits[t] : NULL;
}

bool qb_dtype_from_name(const char *name, size_t len, qb_dtype *out) {
    for (int t = 0; t < QB_DTYPE_COUNT; t++) {
        if (strlen(traits[t].name) == len && memcmp(traits[t].name, name, len) == 0) {
            *out = (qb_dtype)t;
            return true;
        }
    }
    return false;
}
