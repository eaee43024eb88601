/* The tile file of tests/amx_emu.h.  Each thread has its own, as each core
 * has its own tile registers: the kernels configure tiles per call, on the
 * thread that runs it. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amx_emu.h"

#define QB_EMU_TILES 8

/* Palette 1's 64-byte configuration (Intel SDM, LDTILECFG). */
typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} qb_emu_config;

typedef struct {
    bool configured;
    int rows[QB_EMU_TILES], colsb[QB_EMU_TILES];
    uint8_t data[QB_EMU_TILES][16][64];
} qb_emu_state;

static _Thread_local qb_emu_state qb_emu;

static void qb_emu_fail(const char *what, int t) {
    fprintf(stderr, "amx_emu: %s (tile %d)\n", what, t);
    abort();
}

static void qb_emu_check(int t) {
    if (!qb_emu.configured) qb_emu_fail("tile used with no configuration loaded", t);
    if (t < 0 || t >= QB_EMU_TILES || qb_emu.rows[t] == 0) qb_emu_fail("tile not configured", t);
}

void qb_amx_emu_loadconfig(const void *config) {
    qb_emu_config c;
    memcpy(&c, config, sizeof c);
    if (c.palette != 1) qb_emu_fail("palette other than 1", -1);
    memset(&qb_emu, 0, sizeof qb_emu);
    for (int t = 0; t < QB_EMU_TILES; t++) {
        if (c.rows[t] > 16 || c.colsb[t] > 64 || c.colsb[t] % 4) qb_emu_fail("shape beyond palette 1", t);
        qb_emu.rows[t] = c.rows[t];
        qb_emu.colsb[t] = c.colsb[t];
    }
    qb_emu.configured = true;
}

void qb_amx_emu_release(void) { memset(&qb_emu, 0, sizeof qb_emu); }

void qb_amx_emu_zero(int t) {
    qb_emu_check(t);
    memset(qb_emu.data[t], 0, sizeof qb_emu.data[t]);
}

void qb_amx_emu_load(int t, const void *base, size_t stride) {
    qb_emu_check(t);
    for (int r = 0; r < qb_emu.rows[t]; r++)
        memcpy(qb_emu.data[t][r], (const char *)base + (size_t)r * stride, (size_t)qb_emu.colsb[t]);
}

void qb_amx_emu_store(int t, void *base, size_t stride) {
    qb_emu_check(t);
    for (int r = 0; r < qb_emu.rows[t]; r++)
        memcpy((char *)base + (size_t)r * stride, qb_emu.data[t][r], (size_t)qb_emu.colsb[t]);
}

/* C[m][n] += sum over k, j of u8 A[m][4 k + j] * s8 B[k][4 n + j], in int32. */
void qb_amx_emu_dpbusd(int c, int a, int b) {
    qb_emu_check(c), qb_emu_check(a), qb_emu_check(b);
    int M = qb_emu.rows[c], N = qb_emu.colsb[c] / 4, K4 = qb_emu.colsb[a] / 4;
    if (qb_emu.rows[a] != M || qb_emu.rows[b] != K4 || qb_emu.colsb[b] != qb_emu.colsb[c])
        qb_emu_fail("tdpbusd shapes do not fit", c);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            uint32_t sum; /* wraps as the hardware's int32 does */
            memcpy(&sum, &qb_emu.data[c][m][4 * n], 4);
            for (int k = 0; k < K4; k++)
                for (int j = 0; j < 4; j++)
                    sum += (uint32_t)((int32_t)qb_emu.data[a][m][4 * k + j] * (int8_t)qb_emu.data[b][k][4 * n + j]);
            memcpy(&qb_emu.data[c][m][4 * n], &sum, 4);
        }
}
