/* AMX tiles emulated in memory, so the AMX kernel files are checked
 * against the scalar reference on any AVX-512 CPU, not only where the tile
 * unit exists (CI's machines may not have it).  CMake builds
 * test_kernels_i8_amx_emu and test_kernels_lowbit_amx_emu with this header
 * forced in front of the two *_amx_avx512.c kernel files (-include): the tile
 * intrinsics become calls into tests/amx_emu.c, and QB_AMX_EMULATED makes
 * qb_i8_amx_enable() say yes.  Speed means nothing there; the emulation
 * checks what the hardware would (a tile used before its configuration or
 * after its release, shapes that do not fit a tdpbusd) and aborts. */
#ifndef QB_TESTS_AMX_EMU_H
#define QB_TESTS_AMX_EMU_H

#include <immintrin.h>
#include <stddef.h>

void qb_amx_emu_loadconfig(const void *config);
void qb_amx_emu_release(void);
void qb_amx_emu_zero(int t);
void qb_amx_emu_load(int t, const void *base, size_t stride);
void qb_amx_emu_store(int t, void *base, size_t stride);
void qb_amx_emu_dpbusd(int c, int a, int b);

#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbusd
#define _tile_loadconfig(config) qb_amx_emu_loadconfig(config)
#define _tile_release() qb_amx_emu_release()
#define _tile_zero(t) qb_amx_emu_zero(t)
#define _tile_loadd(t, base, stride) qb_amx_emu_load(t, base, (size_t)(stride))
#define _tile_stored(t, base, stride) qb_amx_emu_store(t, base, (size_t)(stride))
#define _tile_dpbusd(c, a, b) qb_amx_emu_dpbusd(c, a, b)

#endif
