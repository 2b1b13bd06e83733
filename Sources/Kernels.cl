// Loupe's OpenCL C kernels, built once per device with the tiling macros of `ConvTiling`.
//
// Layout everywhere: float32, NCHW, contiguous: element (n, c, h, w) of an [N, C, H, W] tensor
// sits at ((n * C + c) * H + h) * W + w. Weights [O, C/groups, KH, KW] the same way.
// Every kernel guards its own bounds (global sizes are rounded up to the work-group size).
// No kernel uses atomics: every reduction is a gather in a fixed order, so results are
// bit-for-bit repeatable on one device.

#ifndef CONV_TILE
#define CONV_TILE 8          // outputs per work-item (register tile)
#endif
#ifndef CONV_WG_W
#define CONV_WG_W 16         // work-group width (dimension 0: output columns)
#endif
#ifndef CONV_WG_H
#define CONV_WG_H 1          // work-group height (dimension 1: output rows)
#endif
#ifndef CONV_VEC
#define CONV_VEC 1           // columns per work-item, as one vector (1, 2, 4, 8 or 16)
#endif
#ifndef CONV_LOCAL_WEIGHTS
#define CONV_LOCAL_WEIGHTS 0 // stage weight tiles in local memory (devices with real local memory)
#endif

// ============================================================================================
// Fill: x[i] = value for i < n.
__kernel void fill_f32(__global float* x, const float value, const int n) {
    const int i = get_global_id(0);
    if (i < n) x[i] = value;
}

// ============================================================================================
// Peak arithmetic rate: each work-item runs 8 independent float16 multiply-add chains, `iters`
// steps each (8 * 16 * 2 * iters flops per work-item). Explicit vectors reach the SIMD units on
// CPU devices; GPU compilers split them into independent scalar chains. Benchmarks report
// kernel GFLOP/s as a fraction of this.
__kernel void fma_peak(__global float* out, const int iters, const float b) {
    const float16 a = (float16)((float)get_global_id(0) * 1e-7f);
    float16 a0 = a, a1 = a + 1, a2 = a + 2, a3 = a + 3, a4 = a + 4, a5 = a + 5, a6 = a + 6, a7 = a + 7;
    for (int i = 0; i < iters; ++i) {
        a0 = mad(a0, b, 0.5f); a1 = mad(a1, b, 0.5f); a2 = mad(a2, b, 0.5f); a3 = mad(a3, b, 0.5f);
        a4 = mad(a4, b, 0.5f); a5 = mad(a5, b, 0.5f); a6 = mad(a6, b, 0.5f); a7 = mad(a7, b, 0.5f);
    }
    const float16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[get_global_id(0)] = s.s0 + s.s7 + s.sf;
}

// ============================================================================================
// Convolution: forward, backward-data, backward-filter.
//
// Geometry arguments, in this order, in every conv kernel (G_PARAMS):
//   N, C, H, W       input  [N, C, H, W]
//   O, OH, OW        output [N, O, OH, OW]; weight [O, C/G, KH, KW]
//   KH, KW, SH, SW, PT, PL, DH, DW, G
// Output (oh, ow) reads input rows ih = oh*SH - PT + ky*DH and columns iw = ow*SW - PL + kx*DW.
//
// Tiling (no im2col buffer anywhere):
//   - register tile: a work-item owns CONV_TILE channels of one group, so each input vector it
//     loads feeds CONV_TILE multiply-adds;
//   - vector tile: it owns CONV_VEC neighbouring columns as one floatV, loaded with a single
//     vector load where the row is contiguous and in range (explicit SIMD: CPU OpenCL compilers do
//     not vectorize across work-items when kernels have inner loops);
//   - CONV_LOCAL_WEIGHTS: the work-group's weight tile is staged in local memory (devices with
//     real on-chip local memory).

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if CONV_VEC == 1
typedef float floatV;
#define VLOAD(p) (*(p))
#define VSTORE(v, p) (*(p) = (v))
#else
typedef CAT(float, CONV_VEC) floatV;
#define VLOAD(p) CAT(vload, CONV_VEC)(0, p)
#define VSTORE(v, p) CAT(vstore, CONV_VEC)(v, 0, p)
#endif

#define G_PARAMS const int N, const int C, const int H, const int W, \
                 const int O, const int OH, const int OW, \
                 const int KH, const int KW, const int SH, const int SW, \
                 const int PT, const int PL, const int DH, const int DW, const int G

// Lanes i = 0..CONV_VEC-1 of row[start + i*step], 0 where the index leaves [0, n).
inline floatV load_lanes(const __global float* row, const int start, const int step, const int n) {
    if (step == 1 && start >= 0 && start + CONV_VEC <= n) return VLOAD(row + start);
    float t[CONV_VEC];
    for (int i = 0; i < CONV_VEC; ++i) {
        const int j = start + i * step;
        t[i] = (j >= 0 && j < n) ? row[j] : 0.0f;
    }
    return VLOAD(t);
}

// Lanes i of row[(start + i) / step] where start + i is a non-negative multiple of step whose
// quotient is below n, else 0: the output columns a strided convolution's input column i touches.
inline floatV load_lanes_divisible(const __global float* row, const int start, const int step, const int n) {
    if (step == 1) return load_lanes(row, start, 1, n);
    float t[CONV_VEC];
    for (int i = 0; i < CONV_VEC; ++i) {
        const int j = start + i;
        t[i] = (j >= 0 && j % step == 0 && j / step < n) ? row[j / step] : 0.0f;
    }
    return VLOAD(t);
}

// row[start + i] = lane i for the lanes with start + i < n.
inline void store_lanes(__global float* row, const int start, const int n, const floatV v) {
    if (start + CONV_VEC <= n) { VSTORE(v, row + start); return; }
    float t[CONV_VEC];
    VSTORE(v, t);
    for (int i = 0; i < CONV_VEC && start + i < n; ++i) row[start + i] = t[i];
}

inline float sum_lanes(const floatV v) {
    float t[CONV_VEC];
    VSTORE(v, t);
    float s = 0.0f;
    for (int i = 0; i < CONV_VEC; ++i) s += t[i];
    return s;
}

// Forward: y[n, o, oh, ow] = bias[o] + sum_{c in group, ky, kx} x[n, c, ih, iw] * w[o, c, ky, kx].
// global = (ceil(OW / CONV_VEC), OH, N * G * ceil(Og / CONV_TILE)); work-group (CONV_WG_W, CONV_WG_H, 1).
__kernel __attribute__((reqd_work_group_size(CONV_WG_W, CONV_WG_H, 1)))
void conv2d_fwd(__global const float* x, __global const float* w, __global const float* bias,
                const int has_bias, __global float* y, G_PARAMS) {
    const int ow0 = get_global_id(0) * CONV_VEC, oh = get_global_id(1);
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int tiles = (Og + CONV_TILE - 1) / CONV_TILE;
    const int z = get_global_id(2);
    const int tile = z % tiles, g = (z / tiles) % G, n = z / (tiles * G);
    const int o0 = g * Og + tile * CONV_TILE;
    const int valid = ow0 < OW && oh < OH;
    // Rows of the tile past the group's last channel read the last channel's weights and are not stored.
    const int last = g * Og + Og - 1;
    floatV acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = (floatV)(0.0f);
    const int ih0 = oh * SH - PT, iw0 = ow0 * SW - PL;
#if CONV_LOCAL_WEIGHTS
    __local float wt[CONV_TILE * 64];
    const int lid = get_local_id(1) * CONV_WG_W + get_local_id(0);
    const int lsize = CONV_WG_W * CONV_WG_H;
#endif
    for (int c = 0; c < Cg; ++c) {
        const __global float* xc = x + ((size_t)(n * C + g * Cg + c)) * H * W;
#if CONV_LOCAL_WEIGHTS
        // Every work-item reaches every barrier; kernels larger than 64 taps are staged in pieces.
        for (int k0 = 0; k0 < K; k0 += 64) {
            const int kn = min(64, K - k0);
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int i = lid; i < CONV_TILE * kn; i += lsize) {
                const int t = i / kn, k = k0 + i % kn;
                wt[i] = w[((size_t)min(o0 + t, last) * Cg + c) * K + k];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int kk = 0; kk < kn; ++kk) {
                const int ky = (k0 + kk) / KW, kx = (k0 + kk) % KW;
                const int ih = ih0 + ky * DH;
                const floatV v = (valid && ih >= 0 && ih < H) ? load_lanes(xc + ih * W, iw0 + kx * DW, SW, W) : (floatV)(0.0f);
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, (floatV)(wt[t * kn + kk]), acc[t]);
            }
        }
#else
        const __global float* wc = w + (size_t)c * K;
        for (int ky = 0; ky < KH; ++ky) {
            const int ih = ih0 + ky * DH;
            if (!valid || ih < 0 || ih >= H) continue;
            const __global float* row = xc + ih * W;
            for (int kx = 0; kx < KW; ++kx) {
                const floatV v = load_lanes(row, iw0 + kx * DW, SW, W);
                const int k = ky * KW + kx;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, (floatV)(wc[(size_t)min(o0 + t, last) * Cg * K + k]), acc[t]);
            }
        }
#endif
    }
    if (!valid) return;
    for (int t = 0; t < CONV_TILE; ++t) {
        const int o = o0 + t;
        if (o > last) break;
        store_lanes(y + (((size_t)n * O + o) * OH + oh) * OW, ow0, OW, acc[t] + (floatV)(has_bias ? bias[o] : 0.0f));
    }
}

// Backward-data, as a gather: dx[n, c, h, w] = sum_{o in group, ky, kx} dy[n, o, oh, ow] * w[o, c, ky, kx]
// over the (oh, ow) with oh*SH = h + PT - ky*DH and ow*SW = w + PL - kx*DW exactly.
// global = (ceil(W / CONV_VEC), H, N * G * ceil(Cg / CONV_TILE)); each work-item owns CONV_TILE
// input channels and CONV_VEC columns.
__kernel __attribute__((reqd_work_group_size(CONV_WG_W, CONV_WG_H, 1)))
void conv2d_bwd_data(__global const float* dy, __global const float* w, __global float* dx, G_PARAMS) {
    const int iw0 = get_global_id(0) * CONV_VEC, ih = get_global_id(1);
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int tiles = (Cg + CONV_TILE - 1) / CONV_TILE;
    const int z = get_global_id(2);
    const int tile = z % tiles, g = (z / tiles) % G, n = z / (tiles * G);
    const int c0 = tile * CONV_TILE;   // channel within the group
    if (iw0 >= W || ih >= H) return;
    floatV acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = (floatV)(0.0f);
    for (int o = g * Og; o < g * Og + Og; ++o) {
        const __global float* dyo = dy + ((size_t)n * O + o) * OH * OW;
        const __global float* wo = w + (size_t)o * Cg * K;
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = ih + PT - ky * DH;
            if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
            const __global float* row = dyo + (ty / SH) * OW;
            for (int kx = 0; kx < KW; ++kx) {
                const floatV v = load_lanes_divisible(row, iw0 + PL - kx * DW, SW, OW);
                const int k = ky * KW + kx;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, (floatV)(wo[(size_t)min(c0 + t, Cg - 1) * K + k]), acc[t]);
            }
        }
    }
    for (int t = 0; t < CONV_TILE; ++t) {
        const int c = c0 + t;
        if (c >= Cg) break;
        store_lanes(dx + (((size_t)n * C + g * Cg + c) * H + ih) * W, iw0, W, acc[t]);
    }
}

// Backward-filter: dw[o, c, ky, kx] = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, c, ih, iw].
// global = (Cg * KH * KW, G * ceil(Og / CONV_TILE)); each work-item owns one (c, ky, kx) and
// CONV_TILE output channels and sums the whole batch and output plane itself, CONV_VEC columns
// at a time, in a fixed order (deterministic: no atomics, no split across work-items).
__kernel void conv2d_bwd_filter(__global const float* x, __global const float* dy, __global float* dw, G_PARAMS) {
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int e = get_global_id(0);
    const int tiles = (Og + CONV_TILE - 1) / CONV_TILE;
    const int tile = get_global_id(1) % tiles, g = get_global_id(1) / tiles;
    if (e >= Cg * K || g >= G) return;
    const int c = e / K, ky = (e % K) / KW, kx = e % KW;
    const int o0 = g * Og + tile * CONV_TILE, last = g * Og + Og - 1;
    floatV acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = (floatV)(0.0f);
    for (int n = 0; n < N; ++n) {
        const __global float* xc = x + ((size_t)n * C + g * Cg + c) * H * W;
        const __global float* dyn = dy + (size_t)n * O * OH * OW;
        for (int oh = 0; oh < OH; ++oh) {
            const int ih = oh * SH - PT + ky * DH;
            if (ih < 0 || ih >= H) continue;
            for (int ow0 = 0; ow0 < OW; ow0 += CONV_VEC) {
                // Lanes past OW multiply a zero output gradient.
                const floatV v = load_lanes(xc + ih * W, ow0 * SW - PL + kx * DW, SW, W);
                for (int t = 0; t < CONV_TILE; ++t)
                    acc[t] = mad(v, load_lanes(dyn + ((size_t)min(o0 + t, last) * OH + oh) * OW, ow0, 1, OW), acc[t]);
            }
        }
    }
    for (int t = 0; t < CONV_TILE; ++t) {
        const int o = o0 + t;
        if (o > last) break;
        dw[((size_t)o * Cg + c) * K + ky * KW + kx] = sum_lanes(acc[t]);
    }
}

// ==== Non-convolution kernels ====
