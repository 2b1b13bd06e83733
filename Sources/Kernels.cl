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
// Peak arithmetic rate: each work-item runs 8 independent multiply-add chains, `iters` steps
// each (16 * iters flops per work-item). The benchmark divides kernel GFLOP/s by this.
__kernel void fma_peak(__global float* out, const int iters, const float b) {
    const float seed = (float)get_global_id(0) * 1e-7f;
    float a0 = seed, a1 = seed + 1, a2 = seed + 2, a3 = seed + 3, a4 = seed + 4, a5 = seed + 5, a6 = seed + 6, a7 = seed + 7;
    for (int i = 0; i < iters; ++i) {
        a0 = mad(a0, b, 0.5f); a1 = mad(a1, b, 0.5f); a2 = mad(a2, b, 0.5f); a3 = mad(a3, b, 0.5f);
        a4 = mad(a4, b, 0.5f); a5 = mad(a5, b, 0.5f); a6 = mad(a6, b, 0.5f); a7 = mad(a7, b, 0.5f);
    }
    out[get_global_id(0)] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// ============================================================================================
// Convolution: forward, backward-data, backward-filter.
//
// Geometry arguments, in this order, in every conv kernel (G_ARGS):
//   N, C, H, W       input  [N, C, H, W]
//   O, OH, OW        output [N, O, OH, OW]; weight [O, C/G, KH, KW]
//   KH, KW, SH, SW, PT, PL, DH, DW, G
// Output (oh, ow) reads input rows ih = oh*SH - PT + ky*DH and columns iw = ow*SW - PL + kx*DW.
//
// Register tiling: a work-item owns CONV_TILE consecutive channels of one group at one spatial
// position and accumulates them in registers, so each input value it loads feeds CONV_TILE
// multiply-adds. Work-items along dimension 0 are neighbouring columns (SIMD lanes on CPUs,
// coalesced loads on GPUs). No im2col buffer exists anywhere.

#define G_PARAMS const int N, const int C, const int H, const int W, \
                 const int O, const int OH, const int OW, \
                 const int KH, const int KW, const int SH, const int SW, \
                 const int PT, const int PL, const int DH, const int DW, const int G

// Forward: y[n, o, oh, ow] = bias[o] + sum_{c in group, ky, kx} x[n, c, ih, iw] * w[o, c, ky, kx].
// global = (OW, OH, N * G * ceil(Og / CONV_TILE)); work-group (CONV_WG_W, CONV_WG_H, 1).
// With CONV_LOCAL_WEIGHTS the group's weight tile for one input channel sits in local memory.
__kernel __attribute__((reqd_work_group_size(CONV_WG_W, CONV_WG_H, 1)))
void conv2d_fwd(__global const float* x, __global const float* w, __global const float* bias,
                const int has_bias, __global float* y, G_PARAMS) {
    const int ow = get_global_id(0), oh = get_global_id(1);
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int tiles = (Og + CONV_TILE - 1) / CONV_TILE;
    const int z = get_global_id(2);
    const int tile = z % tiles, g = (z / tiles) % G, n = z / (tiles * G);
    const int o0 = g * Og + tile * CONV_TILE;
    const int valid = ow < OW && oh < OH;
    // Rows of the tile past the group's last channel read the last channel's weights and are not stored.
    const int last = g * Og + Og - 1;
    float acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = 0.0f;
    const int ih0 = oh * SH - PT, iw0 = ow * SW - PL;
#if CONV_LOCAL_WEIGHTS
    __local float wt[CONV_TILE * 64];
    const int lid = get_local_id(1) * CONV_WG_W + get_local_id(0);
    const int lsize = CONV_WG_W * CONV_WG_H;
#endif
    for (int c = 0; c < Cg; ++c) {
        const __global float* xc = x + ((size_t)(n * C + g * Cg + c)) * H * W;
#if CONV_LOCAL_WEIGHTS
        // Kernels larger than 64 taps (8x8) are staged in pieces of 64.
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
                const int ih = ih0 + ky * DH, iw = iw0 + kx * DW;
                const float v = (valid && ih >= 0 && ih < H && iw >= 0 && iw < W) ? xc[ih * W + iw] : 0.0f;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, wt[t * kn + kk], acc[t]);
            }
        }
#else
        const __global float* wc = w + (size_t)c * K;
        for (int ky = 0; ky < KH; ++ky) {
            const int ih = ih0 + ky * DH;
            if (ih < 0 || ih >= H) continue;
            for (int kx = 0; kx < KW; ++kx) {
                const int iw = iw0 + kx * DW;
                const float v = (valid && iw >= 0 && iw < W) ? xc[ih * W + iw] : 0.0f;
                const int k = ky * KW + kx;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, wc[(size_t)min(o0 + t, last) * Cg * K + k], acc[t]);
            }
        }
#endif
    }
    if (!valid) return;
    for (int t = 0; t < CONV_TILE; ++t) {
        const int o = o0 + t;
        if (o > last) break;
        y[(((size_t)n * O + o) * OH + oh) * OW + ow] = acc[t] + (has_bias ? bias[o] : 0.0f);
    }
}

// Backward-data, as a gather: dx[n, c, h, w] = sum_{o in group, ky, kx} dy[n, o, oh, ow] * w[o, c, ky, kx]
// over the (oh, ow) with oh*SH = h + PT - ky*DH and ow*SW = w + PL - kx*DW exactly.
// global = (W, H, N * G * ceil(Cg / CONV_TILE)); each work-item owns CONV_TILE input channels.
__kernel __attribute__((reqd_work_group_size(CONV_WG_W, CONV_WG_H, 1)))
void conv2d_bwd_data(__global const float* dy, __global const float* w, __global float* dx, G_PARAMS) {
    const int iw = get_global_id(0), ih = get_global_id(1);
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int tiles = (Cg + CONV_TILE - 1) / CONV_TILE;
    const int z = get_global_id(2);
    const int tile = z % tiles, g = (z / tiles) % G, n = z / (tiles * G);
    const int c0 = tile * CONV_TILE;   // channel within the group
    if (iw >= W || ih >= H) return;
    float acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = 0.0f;
    for (int o = g * Og; o < g * Og + Og; ++o) {
        const __global float* dyo = dy + ((size_t)n * O + o) * OH * OW;
        const __global float* wo = w + (size_t)o * Cg * K;
        for (int ky = 0; ky < KH; ++ky) {
            const int ty = ih + PT - ky * DH;
            if (ty < 0 || ty % SH != 0 || ty / SH >= OH) continue;
            const int oh = ty / SH;
            for (int kx = 0; kx < KW; ++kx) {
                const int tx = iw + PL - kx * DW;
                if (tx < 0 || tx % SW != 0 || tx / SW >= OW) continue;
                const float v = dyo[oh * OW + tx / SW];
                const int k = ky * KW + kx;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, wo[(size_t)min(c0 + t, Cg - 1) * K + k], acc[t]);
            }
        }
    }
    for (int t = 0; t < CONV_TILE; ++t) {
        const int c = c0 + t;
        if (c >= Cg) break;
        dx[(((size_t)n * C + g * Cg + c) * H + ih) * W + iw] = acc[t];
    }
}

// Backward-filter: dw[o, c, ky, kx] = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, c, ih, iw].
// global = (Cg * KH * KW, G * ceil(Og / CONV_TILE)); each work-item owns one (c, ky, kx) and
// CONV_TILE output channels, and sums over the whole batch and output plane in a fixed order
// (deterministic: no atomics, no split across work-items).
__kernel void conv2d_bwd_filter(__global const float* x, __global const float* dy, __global float* dw, G_PARAMS) {
    const int Og = O / G, Cg = C / G, K = KH * KW;
    const int e = get_global_id(0);
    const int tiles = (Og + CONV_TILE - 1) / CONV_TILE;
    const int tile = get_global_id(1) % tiles, g = get_global_id(1) / tiles;
    if (e >= Cg * K || g >= G) return;
    const int c = e / K, ky = (e % K) / KW, kx = e % KW;
    const int o0 = g * Og + tile * CONV_TILE, last = g * Og + Og - 1;
    float acc[CONV_TILE];
    for (int t = 0; t < CONV_TILE; ++t) acc[t] = 0.0f;
    for (int n = 0; n < N; ++n) {
        const __global float* xc = x + ((size_t)n * C + g * Cg + c) * H * W;
        const __global float* dyn = dy + (size_t)n * O * OH * OW;
        for (int oh = 0; oh < OH; ++oh) {
            const int ih = oh * SH - PT + ky * DH;
            if (ih < 0 || ih >= H) continue;
            for (int ow = 0; ow < OW; ++ow) {
                const int iw = ow * SW - PL + kx * DW;
                const float v = (iw >= 0 && iw < W) ? xc[ih * W + iw] : 0.0f;
                const int p = oh * OW + ow;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, dyn[(size_t)min(o0 + t, last) * OH * OW + p], acc[t]);
            }
        }
    }
    for (int t = 0; t < CONV_TILE; ++t) {
        const int o = o0 + t;
        if (o > last) break;
        dw[((size_t)o * Cg + c) * K + ky * KW + kx] = acc[t];
    }
}

// ==== Non-convolution kernels ====
