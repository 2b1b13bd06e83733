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
// Phase decomposition for SW > 1: a work-item owns the CONV_VEC columns w = p + SW*(b*CONV_VEC + j)
// of one phase p, so for each kx either every lane meets an output column or none does, and the
// output columns they meet are contiguous (one vector load). SW = 1 is the single phase p = 0.
// global = (SW * ceil(ceil(W / SW) / CONV_VEC), H, N * G * ceil(Cg / CONV_TILE)).
__kernel __attribute__((reqd_work_group_size(CONV_WG_W, CONV_WG_H, 1)))
void conv2d_bwd_data(__global const float* dy, __global const float* w, __global float* dx, G_PARAMS) {
    const int q = get_global_id(0), ih = get_global_id(1);
    const int p = q % SW, j0 = (q / SW) * CONV_VEC;   // phase, first column index within the phase
    const int iw0 = p + SW * j0;
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
                // Lane j meets output column (iw0 + SW*j + PL - kx*DW) / SW when the numerator divides.
                const int tx = iw0 + PL - kx * DW;
                if (((tx % SW) + SW) % SW != 0) continue;
                const floatV v = load_lanes(row, tx / SW, 1, OW);   // tx is a multiple of SW here
                const int k = ky * KW + kx;
                for (int t = 0; t < CONV_TILE; ++t) acc[t] = mad(v, (floatV)(wo[(size_t)min(c0 + t, Cg - 1) * K + k]), acc[t]);
            }
        }
    }
    for (int t = 0; t < CONV_TILE; ++t) {
        const int c = c0 + t;
        if (c >= Cg) break;
        __global float* out = dx + (((size_t)n * C + g * Cg + c) * H + ih) * W;
        if (SW == 1) {
            store_lanes(out, iw0, W, acc[t]);
        } else {
            float lanes[CONV_VEC];
            VSTORE(acc[t], lanes);
            for (int i = 0; i < CONV_VEC && iw0 + SW * i < W; ++i) out[iw0 + SW * i] = lanes[i];
        }
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

// ReLU backward rules (ReLUBackwardRule), shared by activation_bwd and the fused conv epilogues:
// 0 standard g*[z>0], 1 guided g*[z>0]*[g>0], 2 deconvnet g*[g>0]. The mask z may be the ReLU's
// output instead of its input: max(z, 0) > 0 exactly where z > 0.
#define RELU_STANDARD 0
#define RELU_GUIDED 1
#define RELU_DECONVNET 2

inline bool relu_gate_open(const int rule, const float z, const float g) {
    return rule == RELU_DECONVNET ? g > 0.0f : (z > 0.0f && (rule == RELU_STANDARD || g > 0.0f));
}

// Epilogues of conv_gemm_<M>x<NV>: CONV_EPI_RELU applies max(0, .) (fused conv + bias + ReLU);
// CONV_EPI_MASK + rule gates each output by the ReLU backward rule with the mask tensor (fused
// conv backward-data + ReLU backward: the mask is the ReLU output that fed the convolution).
#define CONV_EPI_NONE 0
#define CONV_EPI_RELU 1
#define CONV_EPI_MASK 2

// ============================================================================================
// Fast convolutions (issue 7): implicit GEMM on a padded flat grid, register-blocked.
//
// Stride-1 convolutions only (any kernel, dilation, padding, groups); others use the kernels above.
// The input is first copied into a zero-padded buffer `xp` [N, C, plane] whose rows have the
// padded width Wp = W + PL + PR. Output pixel (oh, ow) is computed at the flat position
// q = oh * Wp + ow, and tap (ky, kx) reads xp at q + ky*DH*Wp + kx*DW, so for every tap a run of
// 16 neighbouring q is one contiguous (unaligned) float16 load, with no bounds checks in the inner
// loop: columns ow >= OW are computed on the pad and never stored (waste (Wp - OW) / Wp).
// `plane` leaves room past the last row so the last tile's loads stay inside the buffer.
//
//   conv_gemm_<M>x<NV>: a work-item owns M output channels x NV float16 vectors of q (16*NV
//   pixels): M*NV accumulators in registers (24 of AVX-512's 32 for 8x3), and per tap loads NV
//   input vectors and M weights, which `conv_gemm_pack` lays out contiguously:
//   wp[((g * RB + rb) * Red * K + r * K + k) * M + m] for output row rb*M + m, reduction channel r.
//   Backward-data is the same kernel on the padded output gradient with the weights transposed
//   (channel roles swapped) and rotated by 180 degrees (flip = 1): a transposed implicit GEMM.
//   The epilogue adds the bias, then applies `epilogue` (CONV_EPI_*): ReLU for fused conv + bias +
//   ReLU, or the ReLU-backward gate with `mask` (same layout as y) for fused backward-data.
//
//   conv_gemm_filter_<MO>x<TK>: backward-filter as split-K GEMM. dy is laid on the same Wp grid
//   (zeros in the pad columns), so dw[o, c, k] = sum_{n, q} dyp[n, o, q] * xp[n, c, q + off(k)].
//   A work-item owns MO output channels x TK consecutive taps of one input channel and one slice s
//   of the (n, q-vector) range; slices write partial sums, reduced in fixed order by
//   conv_gemm_filter_reduce (no atomics, deterministic).

// ============================================================================================
// Strided convolutions as stride-1 ones (space-to-depth): with stride S, tap i = S a + py reads
// row S (oy + a) + py of the padded input, so splitting the input into its S x S phases
//   xs[n, ph * C + c, u, v] = x[n, c, S u + py - PT, S v + px - PL]   (ph = py * PW + px, 0 outside x)
// and the weights the same way
//   ws[o, ph * C + c, a, b] = w[o, c, S a + py, S b + px]           (0 past the kernel)
// gives y = the stride-1, unpadded convolution of xs with ws (kernel ceil(KH / S) x ceil(KW / S)),
// which the GEMM or Winograd kernels compute. Only phases py < min(S, KH), px < min(S, KW) exist.
// Backward-data runs the stride-1 backward-data into dxs, then s2d_input_bwd gathers it back:
// every input element lies in exactly one phase, or in none (rows past U or V: gradient 0).
__kernel void s2d_input(__global const float* x, __global float* xs, const int C, const int H, const int W, const int S,
                        const int PH, const int PW, const int PT, const int PL, const int U, const int V, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int v = i % V, u = (i / V) % U, ch = (i / (U * V)) % (PH * PW * C), nb = i / (U * V * PH * PW * C);
    const int ph = ch / C, c = ch - ph * C, py = ph / PW, px = ph - py * PW;
    const int r = S * u + py - PT, q = S * v + px - PL;
    xs[i] = (r >= 0 && r < H && q >= 0 && q < W) ? x[(((size_t)nb * C + c) * H + r) * W + q] : 0.0f;
}

__kernel void s2d_input_bwd(__global const float* dxs, __global float* dx, const int C, const int H, const int W, const int S,
                            const int PH, const int PW, const int PT, const int PL, const int U, const int V, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int q = i % W, r = (i / W) % H, c = (i / (H * W)) % C, nb = i / (H * W * C);
    const int ry = r + PT, rx = q + PL;
    const int u = ry / S, py = ry - u * S, v = rx / S, px = rx - v * S;
    dx[i] = (py < PH && px < PW && u < U && v < V)
        ? dxs[(((size_t)nb * PH * PW * C + (py * PW + px) * C + c) * U + u) * V + v] : 0.0f;
}

__kernel void s2d_weights(__global const float* w, __global float* ws, const int C, const int KH, const int KW, const int S,
                          const int PH, const int PW, const int KA, const int KB, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int b = i % KB, a = (i / KB) % KA, ch = (i / (KA * KB)) % (PH * PW * C), o = i / (KA * KB * PH * PW * C);
    const int ph = ch / C, c = ch - ph * C, py = ph / PW, px = ph - py * PW;
    const int ky = S * a + py, kx = S * b + px;
    ws[i] = (ky < KH && kx < KW) ? w[(((size_t)o * C + c) * KH + ky) * KW + kx] : 0.0f;
}

// ============================================================================================
// Fully connected layers for a few rows (the batch of an explanation or a synthesis step): the
// weight matrix [O, I] is streamed once per DENSE_NB rows instead of being packed for the
// convolution GEMMs. Launched with local size 1: each work-item is one loop over explicit
// float16 vectors (PoCL then vectorizes nothing across work-items).
#define DENSE_NB 8

inline float dense_sum16(const float16 v) {
    const float8 a = v.lo + v.hi;
    const float4 b = a.lo + a.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}

// y[n, o] = bias[o] + sum_i x[n, i] w[o, i]; one work-item per output o. global = (O).
__kernel void dense_rows_fwd(__global const float* x, __global const float* w, __global const float* bias, const int has_bias,
                             __global float* y, const int N, const int I, const int O) {
    const int o = get_global_id(0);
    if (o >= O) return;
    const __global float* wr = w + (size_t)o * I;
    const int I16 = I / 16 * 16;
    for (int n0 = 0; n0 < N; n0 += DENSE_NB) {
        const int nb = min(DENSE_NB, N - n0);
        const __global float* xb = x + (size_t)n0 * I;
        float16 acc[DENSE_NB];
        _Pragma("unroll") for (int j = 0; j < DENSE_NB; ++j) acc[j] = (float16)(0.0f);
        for (int i = 0; i < I16; i += 16) {
            const float16 wv = vload16(0, wr + i);
            _Pragma("unroll") for (int j = 0; j < DENSE_NB; ++j)
                if (j < nb) acc[j] = fma(vload16(0, xb + (size_t)j * I + i), wv, acc[j]);
        }
        for (int j = 0; j < nb; ++j) {
            float s = dense_sum16(acc[j]);
            for (int i = I16; i < I; ++i) s = fma(xb[(size_t)j * I + i], wr[i], s);
            y[(size_t)(n0 + j) * O + o] = s + (has_bias ? bias[o] : 0.0f);
        }
    }
}

// dx[n, i] = sum_o dy[n, o] w[o, i]; one work-item per 32 consecutive inputs, walking down the
// weight's columns. global = (ceil(I / 32)).
__kernel void dense_rows_bwd_data(__global const float* dy, __global const float* w, __global float* dx,
                                  const int N, const int I, const int O) {
    const int i0 = get_global_id(0) * 32;
    if (i0 >= I) return;
    for (int n0 = 0; n0 < N; n0 += DENSE_NB) {
        const int nb = min(DENSE_NB, N - n0);
        const __global float* db = dy + (size_t)n0 * O;
        if (i0 + 32 <= I) {
            float16 a0[DENSE_NB], a1[DENSE_NB];
            _Pragma("unroll") for (int j = 0; j < DENSE_NB; ++j) { a0[j] = (float16)(0.0f); a1[j] = (float16)(0.0f); }
            for (int o = 0; o < O; ++o) {
                const __global float* wr = w + (size_t)o * I + i0;
                const float16 w0 = vload16(0, wr), w1 = vload16(0, wr + 16);
                _Pragma("unroll") for (int j = 0; j < DENSE_NB; ++j) {
                    if (j < nb) {
                        const float16 d = (float16)(db[(size_t)j * O + o]);
                        a0[j] = fma(d, w0, a0[j]);
                        a1[j] = fma(d, w1, a1[j]);
                    }
                }
            }
            for (int j = 0; j < nb; ++j) {
                vstore16(a0[j], 0, dx + (size_t)(n0 + j) * I + i0);
                vstore16(a1[j], 0, dx + (size_t)(n0 + j) * I + i0 + 16);
            }
        } else {
            for (int j = 0; j < nb; ++j) {
                for (int i = i0; i < I; ++i) {
                    float s = 0.0f;
                    for (int o = 0; o < O; ++o) s = fma(db[(size_t)j * O + o], w[(size_t)o * I + i], s);
                    dx[(size_t)(n0 + j) * I + i] = s;
                }
            }
        }
    }
}

// xp[(n * C + c) * plane + r * Wp + s] = x[n, c, r - PT, s - PL], 0 outside x and past Hp rows.
// global = (plane, N * C).
__kernel void conv_gemm_pad(__global const float* x, __global float* xp, const int NC, const int H, const int W,
                            const int Wp, const int PT, const int PL, const int plane) {
    const int i = get_global_id(0), nc = get_global_id(1);
    if (i >= plane || nc >= NC) return;
    const int r = i / Wp - PT, s = i % Wp - PL;
    xp[(size_t)nc * plane + i] = (r >= 0 && r < H && s >= 0 && s < W) ? x[((size_t)nc * H + r) * W + s] : 0.0f;
}

// Packs weights [G*Og, Cg, K] for conv_gemm_<M>x<NV>. flip = 0: rows are output channels, the
// reduction runs over input channels. flip = 1 (backward-data): rows are input channels, the
// reduction runs over output channels, taps reversed. Rows past the group's last are zero.
// A work-item writes the K * M contiguous values of one reduction channel r of one row block
// (no index arithmetic per element). global = (Red, G * RB).
__kernel void conv_gemm_pack(__global const float* w, __global float* wp, const int Og, const int Cg, const int K,
                             const int G, const int M, const int flip) {
    const int Rows = flip ? Cg : Og, Red = flip ? Og : Cg;
    const int RB = (Rows + M - 1) / M;
    const int r = get_global_id(0), b = get_global_id(1);
    if (r >= Red || b >= G * RB) return;
    const int g = b / RB, rb = b - g * RB;
    __global float* out = wp + ((size_t)b * Red + r) * K * M;
    for (int m = 0; m < M; ++m) {
        const int row = rb * M + m;
        if (row >= Rows) {
            for (int k = 0; k < K; ++k) out[k * M + m] = 0.0f;
        } else if (flip) {
            const __global float* src = w + ((size_t)(g * Og + r) * Cg + row) * K;
            for (int k = 0; k < K; ++k) out[k * M + m] = src[K - 1 - k];
        } else {
            const __global float* src = w + ((size_t)(g * Og + row) * Cg + r) * K;
            for (int k = 0; k < K; ++k) out[k * M + m] = src[k];
        }
    }
}

// y[n, g*Rows + row, oh, ow] = bias + sum_{r, k} wp[.., r, k, m] * xp[n, g*Red + r, q + off(k)].
// global = (ceil(OH*Wp / (16*NV)), G * ceil(Rows / M), N).
#define CONV_GEMM(M, NV)                                                                                         \
__kernel void conv_gemm_##M##x##NV(__global const float* xp, __global const float* wp, __global const float* bias, \
        const int has_bias, const int epilogue, __global const float* mask, __global float* y, const int Red, const int Cin, const int Rows,     \
        const int Cout, const int G, const int KH, const int KW, const int DH, const int DW, const int Wp,        \
        const int plane, const int OH, const int OW) {                                                            \
    const int q0 = get_global_id(0) * (16 * NV);                                                                  \
    const int RB = (Rows + M - 1) / M;                                                                            \
    const int rb = get_global_id(1) % RB, g = get_global_id(1) / RB, n = get_global_id(2);                        \
    if (q0 >= OH * Wp || g >= G) return;                                                                          \
    float16 acc[M * NV];                                                                                          \
    _Pragma("unroll") for (int i = 0; i < M * NV; ++i) acc[i] = (float16)(0.0f);                                  \
    const __global float* xb = xp + ((size_t)n * Cin + g * Red) * plane + q0;                                     \
    const __global float* wb = wp + (size_t)(g * RB + rb) * Red * KH * KW * M;                                    \
    for (int r = 0; r < Red; ++r) {                                                                               \
        for (int ky = 0; ky < KH; ++ky) {                                                                         \
            const __global float* xr = xb + ky * DH * Wp;                                                         \
            for (int kx = 0; kx < KW; ++kx) {                                                                     \
                float16 v[NV];                                                                                    \
                _Pragma("unroll") for (int j = 0; j < NV; ++j) v[j] = vload16(0, xr + kx * DW + 16 * j);          \
                _Pragma("unroll") for (int m = 0; m < M; ++m) {                                                   \
                    const float16 wv = (float16)(wb[m]);                                                          \
                    _Pragma("unroll") for (int j = 0; j < NV; ++j) acc[m * NV + j] = mad(v[j], wv, acc[m * NV + j]); \
                }                                                                                                 \
                wb += M;                                                                                          \
            }                                                                                                     \
        }                                                                                                         \
        xb += plane;                                                                                              \
    }                                                                                                             \
    /* Output offset of each lane within a plane, -1 for pad columns and rows past OH: one division per item. */ \
    int dst[16 * NV];                                                                                             \
    int oh = q0 / Wp, ow = q0 % Wp;                                                                               \
    for (int i = 0; i < 16 * NV; ++i) {                                                                           \
        dst[i] = (oh < OH && ow < OW) ? oh * OW + ow : -1;                                                        \
        if (++ow == Wp) { ow = 0; ++oh; }                                                                         \
    }                                                                                                             \
    _Pragma("unroll") for (int m = 0; m < M; ++m) {                                                               \
        const int row = rb * M + m;                                                                               \
        if (row >= Rows) break;                                                                                   \
        const float b = has_bias ? bias[g * Rows + row] : 0.0f;                                                   \
        const size_t base = ((size_t)n * Cout + g * Rows + row) * OH * OW;                                       \
        _Pragma("unroll") for (int j = 0; j < NV; ++j) {                                                          \
            float t[16];                                                                                          \
            vstore16(acc[m * NV + j] + (float16)(b), 0, t);                                                       \
            for (int i = 0; i < 16; ++i) {                                                                        \
                const int d = dst[16 * j + i];                                                                    \
                if (d < 0) continue;                                                                              \
                float v = t[i];                                                                                   \
                if (epilogue == CONV_EPI_RELU) v = fmax(v, 0.0f);                                                 \
                else if (epilogue >= CONV_EPI_MASK && !relu_gate_open(epilogue - CONV_EPI_MASK, mask[base + d], v)) v = 0.0f; \
                y[base + d] = v;                                                                                  \
            }                                                                                                     \
        }                                                                                                         \
    }                                                                                                             \
}
CONV_GEMM(8, 3)
CONV_GEMM(12, 2)
CONV_GEMM(6, 4)
CONV_GEMM(4, 2)

// Partial dw of slice s: part[((s * G + g) * Og + o) * Cg * K + c * K + k]. dyp [N, O, dplane] has
// the Wp grid with zero pad columns. Slice s covers vector steps [s*per, min((s+1)*per, N*QV)) of
// the combined (n, q-vector) range, QV = dplane / 16. global = (Cg * ceil(K / TK), G * ceil(Og / MO), S).
#define CONV_GEMM_FILTER(MO, TK)                                                                                 \
__kernel void conv_gemm_filter_##MO##x##TK(__global const float* xp, __global const float* dyp, __global float* part, \
        const int N, const int C, const int O, const int G, const int KH, const int KW, const int DH, const int DW, \
        const int Wp, const int plane, const int dplane, const int per) {                                         \
    const int Og = O / G, Cg = C / G, K = KH * KW, KB = (K + TK - 1) / TK, OB = (Og + MO - 1) / MO;              \
    const int c = get_global_id(0) / KB, k0 = (get_global_id(0) % KB) * TK;                                       \
    const int ob = get_global_id(1) % OB, g = get_global_id(1) / OB, s = get_global_id(2);                        \
    if (c >= Cg || g >= G) return;                                                                                \
    const int QV = dplane / 16;                                                                                   \
    int off[TK];                                                                                                  \
    _Pragma("unroll") for (int t = 0; t < TK; ++t) {                                                              \
        const int k = min(k0 + t, K - 1);                                                                         \
        off[t] = (k / KW) * DH * Wp + (k % KW) * DW;                                                              \
    }                                                                                                             \
    int orow[MO];                                                                                                 \
    _Pragma("unroll") for (int m = 0; m < MO; ++m) orow[m] = g * Og + min(ob * MO + m, Og - 1);                  \
    float16 acc[MO * TK];                                                                                         \
    _Pragma("unroll") for (int i = 0; i < MO * TK; ++i) acc[i] = (float16)(0.0f);                                \
    const int end = min((s + 1) * per, N * QV);                                                                   \
    for (int e = s * per; e < end; ++e) {                                                                         \
        const int n = e / QV, q = (e % QV) * 16;                                                                  \
        const __global float* xr = xp + ((size_t)n * C + g * Cg + c) * plane + q;                                 \
        const __global float* dr = dyp + (size_t)n * O * dplane + q;                                              \
        float16 xv[TK];                                                                                           \
        _Pragma("unroll") for (int t = 0; t < TK; ++t) xv[t] = vload16(0, xr + off[t]);                           \
        _Pragma("unroll") for (int m = 0; m < MO; ++m) {                                                          \
            const float16 d = vload16(0, dr + (size_t)orow[m] * dplane);                                          \
            _Pragma("unroll") for (int t = 0; t < TK; ++t) acc[m * TK + t] = mad(d, xv[t], acc[m * TK + t]);      \
        }                                                                                                         \
    }                                                                                                             \
    _Pragma("unroll") for (int m = 0; m < MO; ++m) {                                                              \
        const int o = ob * MO + m;                                                                                \
        if (o >= Og) break;                                                                                       \
        _Pragma("unroll") for (int t = 0; t < TK; ++t) {                                                          \
            if (k0 + t >= K) break;                                                                               \
            const float16 a = acc[m * TK + t];                                                                    \
            const float8 h8 = a.lo + a.hi; const float4 h4 = h8.lo + h8.hi; const float2 h2 = h4.lo + h4.hi;      \
            part[(((size_t)s * G + g) * Og + o) * Cg * K + c * K + k0 + t] = h2.x + h2.y;                         \
        }                                                                                                         \
    }                                                                                                             \
}
CONV_GEMM_FILTER(8, 3)
CONV_GEMM_FILTER(4, 3)
CONV_GEMM_FILTER(6, 4)

// dw[i] = sum over s = 0..S-1, in order, of part[s * count + i].
__kernel void conv_gemm_filter_reduce(__global const float* part, __global float* dw, const int count, const int S) {
    const int i = get_global_id(0);
    if (i >= count) return;
    float sum = 0.0f;
    for (int s = 0; s < S; ++s) sum += part[(size_t)s * count + i];
    dw[i] = sum;
}
// --------------------------------------------------------------------------------------------
// GPU-like tile set: conv_tiled_<RM>x<RN>, implicit GEMM staged through local memory, any geometry.
//
//   y[n, g*Og + o, p] = bias + sum_k A[o, k] * B[k, p],  A = w[g*Og + o] viewed as [Og, K = Cg*KH*KW],
//   B[k = (c, ky, kx), p = (n, oh, ow)] = x[n, g*Cg + c, oh*SH - PT + ky*DH, ow*SW - PL + kx*DW] (0 outside).
//
// A work-group computes a 64 (output channels) x 64 (pixels) tile of y; each of its
// (64/RN) x (64/RM) work-items owns RM x RN of it in registers. Per step of 16 along k the group
// stages As[16][64] (weights, read as float4 along k) and Bs[16][64] (the im2col gather, one
// pixel column per work-item, neighbouring work-items on neighbouring pixels) in local memory,
// then every work-item reads float4 runs of both. The sum runs over k in order: deterministic.
// Backward-data (stride 1) is this kernel on the output gradient with the weights transposed and
// rotated (conv_gemm_pack with M = 1, flip = 1) and pads (extent - pad). The epilogue is the GEMM
// kernels' (CONV_EPI_*). global = (ceil(N*OH*OW / 64) * 64/RN, G * ceil(Og / 64) * 64/RM).
#define CONV_TILE 64
#define CONV_TILE_K 16
#define CONV_TILED(RM, RN)                                                                                       \
__kernel __attribute__((reqd_work_group_size(CONV_TILE / RN, CONV_TILE / RM, 1)))                                \
void conv_tiled_##RM##x##RN(__global const float* x, __global const float* w, __global const float* bias,        \
        const int has_bias, const int epilogue, __global const float* mask, __global float* y,                   \
        const int N, const int C, const int H, const int W, const int O, const int OH, const int OW,             \
        const int KH, const int KW, const int SH, const int SW, const int PT, const int PL, const int DH,         \
        const int DW, const int G) {                                                                              \
    const int TX = CONV_TILE / RN, L = TX * (CONV_TILE / RM);                                                    \
    const int tx = get_local_id(0), ty = get_local_id(1), lid = ty * TX + tx;                                    \
    const int Og = O / G, Cg = C / G, KK = KH * KW, K = Cg * KK, P = N * OH * OW, plane = OH * OW;              \
    const int MB = (Og + CONV_TILE - 1) / CONV_TILE;                                                             \
    const int p0 = get_group_id(0) * CONV_TILE, g = get_group_id(1) / MB, m0 = (get_group_id(1) % MB) * CONV_TILE; \
    __local float As[CONV_TILE_K][CONV_TILE];                                                                    \
    __local float Bs[CONV_TILE_K][CONV_TILE];                                                                    \
    /* L is a multiple of 64, so this work-item always gathers the same pixel column of B. */                    \
    const int pc = lid % CONV_TILE, p = p0 + pc;                                                                 \
    const int pn = p / plane, poh = (p % plane) / OW, pow_ = p % OW;                                             \
    const int ih0 = poh * SH - PT, iw0 = pow_ * SW - PL;                                                         \
    const __global float* xb = x + ((size_t)pn * C + g * Cg) * H * W;                                            \
    float acc[RM][RN];                                                                                            \
    _Pragma("unroll") for (int i = 0; i < RM; ++i) _Pragma("unroll") for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f; \
    for (int k0 = 0; k0 < K; k0 += CONV_TILE_K) {                                                                \
        for (int f = lid; f < CONV_TILE * CONV_TILE_K / 4; f += L) {                                             \
            const int m = f / (CONV_TILE_K / 4), kq = (f % (CONV_TILE_K / 4)) * 4, o = m0 + m, k = k0 + kq;      \
            float4 v = (float4)(0.0f);                                                                            \
            if (o < Og) {                                                                                         \
                const __global float* wr = w + (size_t)(g * Og + o) * K + k;                                     \
                if (k + 3 < K) v = vload4(0, wr);                                                                 \
                else if (k < K) {                                                                                 \
                    v.x = wr[0];                                                                                  \
                    if (k + 1 < K) v.y = wr[1];                                                                   \
                    if (k + 2 < K) v.z = wr[2];                                                                   \
                }                                                                                                 \
            }                                                                                                     \
            As[kq][m] = v.x; As[kq + 1][m] = v.y; As[kq + 2][m] = v.z; As[kq + 3][m] = v.w;                     \
        }                                                                                                         \
        for (int kk = lid / CONV_TILE; kk < CONV_TILE_K; kk += L / CONV_TILE) {                                  \
            const int k = k0 + kk;                                                                                \
            float v = 0.0f;                                                                                       \
            if (k < K && p < P) {                                                                                 \
                const int c = k / KK, t = k % KK;                                                                 \
                const int ih = ih0 + (t / KW) * DH, iw = iw0 + (t % KW) * DW;                                    \
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = xb[((size_t)c * H + ih) * W + iw];               \
            }                                                                                                     \
            Bs[kk][pc] = v;                                                                                       \
        }                                                                                                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                             \
        _Pragma("unroll") for (int kk = 0; kk < CONV_TILE_K; ++kk) {                                             \
            float a[RM], b[RN];                                                                                   \
            _Pragma("unroll") for (int i = 0; i < RM; i += 4) vstore4(vload4(0, &As[kk][ty * RM + i]), 0, a + i); \
            _Pragma("unroll") for (int j = 0; j < RN; j += 4) vstore4(vload4(0, &Bs[kk][tx * RN + j]), 0, b + j); \
            _Pragma("unroll") for (int i = 0; i < RM; ++i)                                                        \
                _Pragma("unroll") for (int j = 0; j < RN; ++j) acc[i][j] = mad(a[i], b[j], acc[i][j]);            \
        }                                                                                                         \
        barrier(CLK_LOCAL_MEM_FENCE);                                                                             \
    }                                                                                                             \
    _Pragma("unroll") for (int j = 0; j < RN; ++j) {                                                              \
        const int q = p0 + tx * RN + j;                                                                           \
        if (q >= P) break;                                                                                        \
        const int qn = q / plane, qr = q % plane;                                                                 \
        _Pragma("unroll") for (int i = 0; i < RM; ++i) {                                                          \
            const int o = m0 + ty * RM + i;                                                                       \
            if (o >= Og) break;                                                                                   \
            const size_t d = ((size_t)qn * O + g * Og + o) * plane + qr;                                          \
            float v = acc[i][j] + (has_bias ? bias[g * Og + o] : 0.0f);                                          \
            if (epilogue == CONV_EPI_RELU) v = fmax(v, 0.0f);                                                     \
            else if (epilogue >= CONV_EPI_MASK && !relu_gate_open(epilogue - CONV_EPI_MASK, mask[d], v)) v = 0.0f; \
            y[d] = v;                                                                                             \
        }                                                                                                         \
    }                                                                                                             \
}
CONV_TILED(4, 4)
CONV_TILED(8, 4)
CONV_TILED(8, 8)
// --------------------------------------------------------------------------------------------
// Winograd F(2x2, 3x3) (Lavin & Gray 2016): 3x3 kernels, stride 1, dilation 1, one group.
// Each 2x2 output tile t = (n, th, tw) reads the 4x4 input patch d at (2*th - PT, 2*tw - PL):
//   V = B^T d B (input transform), U = G w G^T (weight transform), M = U .* V summed over the
//   input channels, one GEMM per position (16 of them), and Y = A^T M A (output transform), with
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1]: 16 multiplies per tile and channel pair instead of 36.
// Layouts: V [16, C, Tp] and M [16, O, Tp] with the tile count T padded to Tp (a multiple of 48,
// zero tiles past T); U [16, OB, C, 8]: 8 output channels contiguous per (position, block, c).

// Patches read in [N, C, H, W] directly, zero outside it (pads PT, PL on the top and left; the
// bottom and right follow from TH, TW). A work-item transforms 16 consecutive tiles of one
// channel as float16 vectors (one lane per tile) and stores each position as one vector.
// global = (Tp / 16, C).
__kernel void wino_input_transform(__global const float* in, __global float* v, const int N, const int C, const int H,
                                   const int W, const int PT, const int PL, const int TH, const int TW, const int Tp) {
    const int t0 = get_global_id(0) * 16, c = get_global_id(1);
    if (t0 >= Tp || c >= C) return;
    const int tiles = TH * TW, live = N * tiles;
    float d[16][16];   // [patch position][tile]
    int n = t0 / tiles, th = (t0 % tiles) / TW, tw = t0 % TW;
    for (int k = 0; k < 16; ++k) {
        const bool on = t0 + k < live;
        const __global float* xc = in + ((size_t)(on ? n : 0) * C + c) * H * W;
        const int r0 = 2 * th - PT, s0 = 2 * tw - PL;
        if (on && r0 >= 0 && r0 + 4 <= H && s0 >= 0 && s0 + 4 <= W) {
            for (int i = 0; i < 4; ++i) for (int j = 0; j < 4; ++j) d[i * 4 + j][k] = xc[(r0 + i) * W + s0 + j];
        } else {
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) {
                    const int r = r0 + i, q = s0 + j;
                    d[i * 4 + j][k] = on && r >= 0 && r < H && q >= 0 && q < W ? xc[r * W + q] : 0.0f;
                }
        }
        if (++tw == TW) { tw = 0; if (++th == TH) { th = 0; ++n; } }
    }
    float16 x[16];
    for (int p = 0; p < 16; ++p) x[p] = vload16(0, d[p]);
    float16 b[16];   // B^T d
    for (int j = 0; j < 4; ++j) {
        b[j] = x[j] - x[8 + j];
        b[4 + j] = x[4 + j] + x[8 + j];
        b[8 + j] = x[8 + j] - x[4 + j];
        b[12 + j] = x[4 + j] - x[12 + j];
    }
    __global float* out = v + (size_t)c * Tp + t0;
    const size_t stride = (size_t)C * Tp;
    for (int i = 0; i < 4; ++i) {   // (B^T d) B
        const float16 r0 = b[4 * i], r1 = b[4 * i + 1], r2 = b[4 * i + 2], r3 = b[4 * i + 3];
        vstore16(r0 - r2, 0, out + (4 * i) * stride);
        vstore16(r1 + r2, 0, out + (4 * i + 1) * stride);
        vstore16(r2 - r1, 0, out + (4 * i + 2) * stride);
        vstore16(r1 - r3, 0, out + (4 * i + 3) * stride);
    }
}

// w [O, C, 3, 3] -> U [16, OB, C, 8]. flip = 1: w is [C, O, 3, 3] and is read transposed and
// rotated by 180 degrees (the backward-data weights). Neighbouring work-items take neighbouring
// input channels, so reads and writes both stay within a few cache lines. global = (C, OB * 8).
__kernel void wino_weight_transform(__global const float* w, __global float* u, const int O, const int C, const int flip) {
    const int c = get_global_id(0), o = get_global_id(1), OB = (O + 7) / 8;
    if (c >= C || o >= OB * 8) return;
    const int m = o % 8, ob = o / 8;
    float g[3][3];
    for (int i = 0; i < 9; ++i) {
        const float v = flip ? w[((size_t)c * O + o) * 9 + 8 - i] : w[((size_t)o * C + c) * 9 + i];
        g[i / 3][i % 3] = o < O ? v : 0.0f;
    }
    float a[4][3];   // G g
    for (int j = 0; j < 3; ++j) {
        a[0][j] = g[0][j];
        a[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        a[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        a[3][j] = g[2][j];
    }
    for (int i = 0; i < 4; ++i) {   // (G g) G^T
        const float r[4] = {a[i][0], 0.5f * (a[i][0] + a[i][1] + a[i][2]), 0.5f * (a[i][0] - a[i][1] + a[i][2]), a[i][2]};
        for (int j = 0; j < 4; ++j) u[((size_t)((i * 4 + j) * OB + ob) * C + c) * 8 + m] = r[j];
    }
}

// M[pos, o, t] = sum_c U[pos, o, c] V[pos, c, t]: a work-item owns 8 channels x 48 tiles (three
// float16, the conv_gemm_8x3 register block). global = (Tp / 48, OB, 16).
__kernel void wino_gemm(__global const float* u, __global const float* v, __global float* mo, const int O, const int C,
                        const int Tp) {
    const int t0 = get_global_id(0) * 48, ob = get_global_id(1), pos = get_global_id(2), OB = (O + 7) / 8;
    if (t0 >= Tp || ob >= OB) return;
    float16 acc[24];
    _Pragma("unroll") for (int i = 0; i < 24; ++i) acc[i] = (float16)(0.0f);
    const __global float* vr = v + (size_t)pos * C * Tp + t0;
    const __global float* ur = u + (size_t)(pos * OB + ob) * C * 8;
    for (int c = 0; c < C; ++c) {
        const float16 v0 = vload16(0, vr), v1 = vload16(0, vr + 16), v2 = vload16(0, vr + 32);
        _Pragma("unroll") for (int m = 0; m < 8; ++m) {
            const float16 wv = (float16)(ur[m]);
            acc[3 * m] = mad(v0, wv, acc[3 * m]);
            acc[3 * m + 1] = mad(v1, wv, acc[3 * m + 1]);
            acc[3 * m + 2] = mad(v2, wv, acc[3 * m + 2]);
        }
        vr += Tp;
        ur += 8;
    }
    _Pragma("unroll") for (int m = 0; m < 8; ++m) {
        const int o = ob * 8 + m;
        if (o >= O) break;
        __global float* out = mo + ((size_t)pos * O + o) * Tp + t0;
        vstore16(acc[3 * m], 0, out);
        vstore16(acc[3 * m + 1], 0, out + 16);
        vstore16(acc[3 * m + 2], 0, out + 32);
    }
}

// y[n, o, 2*th + i, 2*tw + j] = (A^T M A)[i, j] + bias[o], then the epilogue (CONV_EPI_*; the mask
// has y's layout). A work-item transforms 16 consecutive tiles of one channel as float16 vectors.
// global = (Tp / 16, O).
__kernel void wino_output_transform(__global const float* mo, __global const float* bias, const int has_bias,
                                    const int epilogue, __global const float* mask, __global float* y, const int N,
                                    const int O, const int OH, const int OW, const int TH, const int TW, const int Tp) {
    const int t0 = get_global_id(0) * 16, o = get_global_id(1), tiles = TH * TW;
    if (t0 >= N * tiles || o >= O) return;
    float16 m[16];
    for (int p = 0; p < 16; ++p) m[p] = vload16(0, mo + ((size_t)p * O + o) * Tp + t0);
    float16 a[8];   // A^T M
    for (int j = 0; j < 4; ++j) {
        a[j] = m[j] + m[4 + j] + m[8 + j];
        a[4 + j] = m[4 + j] - m[8 + j] - m[12 + j];
    }
    const float16 b = (float16)(has_bias ? bias[o] : 0.0f);
    float r[4][16];   // (A^T M) A: [2*i + j][tile]
    vstore16(a[0] + a[1] + a[2] + b, 0, r[0]);
    vstore16(a[1] - a[2] - a[3] + b, 0, r[1]);
    vstore16(a[4] + a[5] + a[6] + b, 0, r[2]);
    vstore16(a[5] - a[6] - a[7] + b, 0, r[3]);
    int n = t0 / tiles, th = (t0 % tiles) / TW, tw = t0 % TW;
    for (int k = 0; k < 16 && t0 + k < N * tiles; ++k) {
        for (int i = 0; i < 2; ++i) {
            const int oh = 2 * th + i;
            for (int j = 0; j < 2; ++j) {
                const int ow = 2 * tw + j;
                if (oh >= OH || ow >= OW) continue;
                const size_t d = (((size_t)n * O + o) * OH + oh) * OW + ow;
                float val = r[2 * i + j][k];
                if (epilogue == CONV_EPI_RELU) val = fmax(val, 0.0f);
                else if (epilogue >= CONV_EPI_MASK && !relu_gate_open(epilogue - CONV_EPI_MASK, mask[d], val)) val = 0.0f;
                y[d] = val;
            }
        }
        if (++tw == TW) { tw = 0; if (++th == TH) { th = 0; ++n; } }
    }
}

// ==== end of fast convolutions (issue 7) ====

// ==== Non-convolution kernels ====

// ============================================================================================
// Work-group reductions. One work-group of L work-items (L a power of two) reduces one channel,
// row or image. Work-item l first folds elements l, l + L, l + 2L, ... in that order; then the
// group folds its L partials in a fixed binary tree in local memory:
//
//   scratch [ p0 ... p(L/2-1) | p(L/2) ... p(L-1) ]  ->  p_i = p_i (+) p_(i+L/2)  ->  ...  ->  scratch[0]
//
// so a result depends only on L, never on scheduling. Every work-item of the group must call
// work_group_reduce (it holds barriers); all of them get the result.
#define REDUCE_SUM 0
#define REDUCE_MAX 1

inline float reduce_combine(const int op, const float a, const float b) {
    return op == REDUCE_MAX ? fmax(a, b) : a + b;
}

inline float work_group_reduce(__local float* scratch, const float partial, const int op) {
    const int lid = get_local_id(0);
    scratch[lid] = partial;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int width = get_local_size(0) / 2; width > 0; width >>= 1) {
        if (lid < width) scratch[lid] = reduce_combine(op, scratch[lid], scratch[lid + width]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float result = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); // the next reduction may overwrite scratch
    return result;
}

// Element i of a stack of H x W planes as (plane, y, x).
inline int3 plane_position(const int i, const int H, const int W) {
    const int plane = i / (H * W), r = i - plane * H * W;
    return (int3)(plane, r / W, r - (r / W) * W);
}

// ============================================================================================
// Elementwise and data movement: one work-item per element i < n of flat NCHW tensors; `plane`
// is H * W (1 for [N, C] rows), so element i lies in channel (i / plane) % C.

// out = alpha * x + beta * y.
__kernel void axpby_f32(const float alpha, __global const float* x, const float beta, __global const float* y,
                        __global float* out, const int n) {
    const int i = get_global_id(0);
    if (i < n) out[i] = alpha * x[i] + beta * y[i];
}

// out[n, c, p] = in[n, c, p] + bias[c].
__kernel void bias_add(__global const float* in, __global const float* bias, __global float* out,
                       const int C, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i < n) out[i] = in[i] + bias[(i / plane) % C];
}

// Flat index of the j-th element (j < N * plane, image-major) of channel c in [N, C, plane].
inline int channel_element(const int c, const int j, const int C, const int plane) {
    const int n = j / plane;
    return (n * C + c) * plane + (j - n * plane);
}

// out[c] = sum over n, p of in[n, c, p]; work-group c, reduction order as above.
__kernel void channel_sum(__global const float* in, __global float* out, const int N, const int C, const int plane,
                          __local float* scratch) {
    const int c = get_group_id(0);
    float partial = 0.0f;
    for (int j = get_local_id(0); j < N * plane; j += get_local_size(0)) partial += in[channel_element(c, j, C, plane)];
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    if (get_local_id(0) == 0) out[c] = total;
}

// dst[b, dst_offset + k, p] = src[b, src_offset + k, p] for k < channels; one item per copied element
// (b, k, p) of [N, channels, plane].
__kernel void copy_channels(__global const float* src, const int src_channels, const int src_offset,
                            __global float* dst, const int dst_channels, const int dst_offset,
                            const int channels, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int block = channels * plane;
    const int b = i / block, r = i - b * block;
    dst[(b * dst_channels + dst_offset) * plane + r] = src[(b * src_channels + src_offset) * plane + r];
}

// Transpose of an R x C matrix: out[c, r] = in[r, c], one work-item per output element i = c * R + r,
// so dimension 0 runs along the output's columns r: neighbouring work-items write neighbouring
// elements (their reads are C apart).
__kernel void transpose2d(__global const float* in, __global float* out, const int R, const int C, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = i / R, r = i - c * R;
    out[i] = in[r * C + c];
}

// Activations. ReLU is leaky ReLU with slope 0, whose closed side is exactly 0 (even for an
// infinite value). Backward rules: RELU_* near the top of this file; leaky ReLU always uses 0.

inline float leaky_gate(const bool open, const float v, const float slope) {
    return open ? v : (slope == 0.0f ? 0.0f : slope * v);
}

__kernel void activation_fwd(__global const float* in, __global float* out, const float slope, const int n) {
    const int i = get_global_id(0);
    if (i < n) out[i] = leaky_gate(in[i] > 0.0f, in[i], slope);
}

__kernel void activation_bwd(__global const float* in, __global const float* dy, __global float* dx,
                             const float slope, const int rule, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = dy[i];
    dx[i] = leaky_gate(relu_gate_open(rule, in[i], g), g, slope);
}

// Clamp: out = min(max(x, lo), hi); the gradient passes where lo <= x <= hi.
__kernel void clamp_fwd(__global const float* in, __global float* out, const float lo, const float hi, const int n) {
    const int i = get_global_id(0);
    if (i < n) out[i] = fmin(fmax(in[i], lo), hi);
}

__kernel void clamp_bwd(__global const float* in, __global const float* dy, __global float* dx,
                        const float lo, const float hi, const int n) {
    const int i = get_global_id(0);
    if (i < n) dx[i] = (in[i] >= lo && in[i] <= hi) ? dy[i] : 0.0f;
}

// Cyclic shift of each H x W plane: out[y, x] = in[(y - shift_h) mod H, (x - shift_w) mod W], with
// shift_h in [0, H) and shift_w in [0, W) (the host reduces them).
__kernel void roll_planes(__global const float* in, __global float* out, const int H, const int W,
                          const int shift_h, const int shift_w, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int plane = e.x, y = e.y, x = e.z;
    out[i] = in[plane * H * W + ((y - shift_h + H) % H) * W + (x - shift_w + W) % W];
}

// ============================================================================================
// Pooling. An [N, C, H, W] input pools to [N, C, OH, OW]; output (oy, ox) has the taps
//   (iy, ix) = (oy * stride_h - pad_top + ky * dilation_h, ox * stride_w - pad_left + kx * dilation_w),
//   0 <= ky < kernel_h, 0 <= kx < kernel_w, scanned row-major; taps outside the input are padding.
// Forward: one work-item per output element. Backward: one work-item per input element, gathering
// from the windows that have a tap on it (pool_window_of_tap), in increasing output order.
// Switches: int32 index iy * W + ix of a window's maximum within its input plane.
#define POOL_GEOMETRY const int H, const int W, const int OH, const int OW, \
                      const int kernel_h, const int kernel_w, const int stride_h, const int stride_w, \
                      const int dilation_h, const int dilation_w, \
                      const int pad_top, const int pad_left, const int pad_bottom, const int pad_right

// Along one axis: the output whose tap `tap` reads input i, or -1 when there is none.
inline int pool_window_of_tap(const int i, const int tap, const int pad, const int stride, const int dilation,
                              const int out_len) {
    const int t = i + pad - tap * dilation;
    if (t < 0 || t % stride != 0 || t / stride >= out_len) return -1;
    return t / stride;
}

// Along one axis: the average-pool divisor's factor for output o. With count_include_pad, the
// window clipped to the padded input (PyTorch's rule, also in ceil mode); else its in-input taps.
inline int avg_pool_extent(const int o, const int n, const int size, const int stride, const int pad_begin,
                           const int pad_end, const int count_include_pad) {
    const int start = o * stride - pad_begin;
    return count_include_pad ? min(start + size, n + pad_end) - start : min(start + size, n) - max(start, 0);
}

__kernel void max_pool2d_fwd(__global const float* in, __global float* out, __global int* switches, POOL_GEOMETRY,
                             const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, OH, OW);
    const int plane = e.x, oy = e.y, ox = e.z;
    __global const float* x = in + plane * H * W;
    float best = -INFINITY;
    int arg = -1;
    for (int ky = 0; ky < kernel_h; ++ky) {
        const int iy = oy * stride_h - pad_top + ky * dilation_h;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < kernel_w; ++kx) {
            const int ix = ox * stride_w - pad_left + kx * dilation_w;
            if (ix < 0 || ix >= W) continue;
            // Strictly greater: a tie keeps the first maximum of the row-major scan.
            if (x[iy * W + ix] > best) { best = x[iy * W + ix]; arg = iy * W + ix; }
        }
    }
    out[i] = best;
    switches[i] = arg;
}

// dx[p] = sum of dy[o] over the windows o that cover p and whose switch is p.
__kernel void max_pool2d_bwd(__global const float* dy, __global const int* switches, __global float* dx, POOL_GEOMETRY,
                             const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int plane = e.x, iy = e.y, ix = e.z;
    const int base = plane * OH * OW;
    float sum = 0.0f;
    for (int ky = kernel_h - 1; ky >= 0; --ky) {
        const int oy = pool_window_of_tap(iy, ky, pad_top, stride_h, dilation_h, OH);
        if (oy < 0) continue;
        for (int kx = kernel_w - 1; kx >= 0; --kx) {
            const int ox = pool_window_of_tap(ix, kx, pad_left, stride_w, dilation_w, OW);
            if (ox >= 0 && switches[base + oy * OW + ox] == iy * W + ix) sum += dy[base + oy * OW + ox];
        }
    }
    dx[i] = sum;
}

// The same for disjoint windows (stride = kernel, no dilation, no padding: VGG's 2x2 pools): one
// work-item per window writes its inputs (the last row and column of windows also write the
// uncovered inputs past them, as zeros). global = (OW, N * C * OH).
__kernel void max_pool2d_bwd_disjoint(__global const float* dy, __global const int* switches, __global float* dx,
                                      const int H, const int W, const int OH, const int OW, const int kernel_h,
                                      const int kernel_w, const int rows) {
    const int ox = get_global_id(0), r = get_global_id(1);
    if (ox >= OW || r >= rows) return;
    const int plane = r / OH, oy = r - plane * OH;
    const int o = r * OW + ox, s = switches[o];
    const float g = dy[o];
    const int y1 = oy == OH - 1 ? H : (oy + 1) * kernel_h, x1 = ox == OW - 1 ? W : (ox + 1) * kernel_w;
    __global float* d = dx + (size_t)plane * H * W;
    for (int y = oy * kernel_h; y < y1; ++y)
        for (int x = ox * kernel_w; x < x1; ++x) d[y * W + x] = y * W + x == s ? g : 0.0f;
}

// out[plane, o] = in[plane, switches[plane, o]]: the adjoint of max unpooling; in is [N, C, H, W].
__kernel void gather_switches(__global const float* in, __global const int* switches, __global float* out,
                              const int in_plane, const int out_plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    // A window with no finite maximum (all -inf or NaN) has no switch (-1) and passes nothing back.
    out[i] = switches[i] >= 0 ? in[(i / out_plane) * in_plane + switches[i]] : 0.0f;
}

__kernel void avg_pool2d_fwd(__global const float* in, __global float* out, POOL_GEOMETRY,
                             const int count_include_pad, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, OH, OW);
    const int plane = e.x, oy = e.y, ox = e.z;
    __global const float* x = in + plane * H * W;
    float sum = 0.0f;
    for (int ky = 0; ky < kernel_h; ++ky) {
        const int iy = oy * stride_h - pad_top + ky;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < kernel_w; ++kx) {
            const int ix = ox * stride_w - pad_left + kx;
            if (ix >= 0 && ix < W) sum += x[iy * W + ix];
        }
    }
    out[i] = sum / (float)(avg_pool_extent(oy, H, kernel_h, stride_h, pad_top, pad_bottom, count_include_pad) *
                           avg_pool_extent(ox, W, kernel_w, stride_w, pad_left, pad_right, count_include_pad));
}

// dx[p] = sum over the windows o covering p of dy[o] / divisor(o).
__kernel void avg_pool2d_bwd(__global const float* dy, __global float* dx, POOL_GEOMETRY,
                             const int count_include_pad, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int plane = e.x, iy = e.y, ix = e.z;
    const int base = plane * OH * OW;
    float sum = 0.0f;
    for (int ky = kernel_h - 1; ky >= 0; --ky) {
        const int oy = pool_window_of_tap(iy, ky, pad_top, stride_h, 1, OH);
        if (oy < 0) continue;
        const int rows = avg_pool_extent(oy, H, kernel_h, stride_h, pad_top, pad_bottom, count_include_pad);
        for (int kx = kernel_w - 1; kx >= 0; --kx) {
            const int ox = pool_window_of_tap(ix, kx, pad_left, stride_w, 1, OW);
            if (ox < 0) continue;
            const int cols = avg_pool_extent(ox, W, kernel_w, stride_w, pad_left, pad_right, count_include_pad);
            sum += dy[base + oy * OW + ox] / (float)(rows * cols);
        }
    }
    dx[i] = sum;
}

// ============================================================================================
// Local response normalization across channels, one work-item per element (b, c, p) of
// [N, C, plane]: D(c) = k + alpha / size * sum of x(c')^2 over c' in [c - (size-1)/2, c + size/2]
// clipped to [0, C); y(c) = x(c) D(c)^-beta. Backward:
//   dx(j) = g(j) D(j)^-beta - (2 alpha beta / size) x(j) sum over c with j in window(c), i.e.
//   c in [j - size/2, j + (size-1)/2], of g(c) x(c) D(c)^(-beta-1).
// `x` and `g` point at channel 0 of the element's image and position; channels are `plane` apart.
inline float lrn_denominator(__global const float* x, const int c, const int C, const int plane,
                             const int size, const float alpha, const float k) {
    float sum = 0.0f;
    for (int cc = max(0, c - (size - 1) / 2); cc <= min(C - 1, c + size / 2); ++cc) sum += x[cc * plane] * x[cc * plane];
    return k + alpha / (float)size * sum;
}

__kernel void local_response_norm_fwd(__global const float* in, __global float* out, const int C, const int plane,
                                      const int size, const float alpha, const float beta, const float k, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = (i / plane) % C;
    __global const float* x = in + i - c * plane;
    out[i] = in[i] * pow(lrn_denominator(x, c, C, plane, size, alpha, k), -beta);
}

__kernel void local_response_norm_bwd(__global const float* in, __global const float* dy, __global float* dx,
                                      const int C, const int plane, const int size, const float alpha,
                                      const float beta, const float k, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int j = (i / plane) % C;
    __global const float* x = in + i - j * plane;
    __global const float* g = dy + i - j * plane;
    float cross = 0.0f;
    for (int c = max(0, j - size / 2); c <= min(C - 1, j + (size - 1) / 2); ++c) {
        cross += g[c * plane] * x[c * plane] * pow(lrn_denominator(x, c, C, plane, size, alpha, k), -beta - 1.0f);
    }
    dx[i] = dy[i] * pow(lrn_denominator(x, j, C, plane, size, alpha, k), -beta)
          - 2.0f * alpha * beta / (float)size * in[i] * cross;
}

// Inference batch norm over [N, C, plane], statistics fixed:
//   y = scale[c] (x - mean[c]) / sqrt(variance[c] + eps) + shift[c]; dx = dy scale[c] / sqrt(variance[c] + eps);
//   dscale[c] = sum over n, p of dy (x - mean[c]) / sqrt(variance[c] + eps) (work-group c); dshift is channel_sum(dy).
__kernel void batch_norm_fwd(__global const float* in, __global const float* scale, __global const float* shift,
                             __global const float* mean, __global const float* variance, __global float* out,
                             const float eps, const int C, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = (i / plane) % C;
    out[i] = scale[c] * (in[i] - mean[c]) / sqrt(variance[c] + eps) + shift[c];
}

__kernel void batch_norm_bwd_data(__global const float* dy, __global const float* scale, __global const float* variance,
                                  __global float* dx, const float eps, const int C, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = (i / plane) % C;
    dx[i] = dy[i] * scale[c] / sqrt(variance[c] + eps);
}

__kernel void batch_norm_bwd_scale(__global const float* in, __global const float* dy, __global const float* mean,
                                   __global const float* variance, __global float* scale_grad, const float eps,
                                   const int N, const int C, const int plane, __local float* scratch) {
    const int c = get_group_id(0);
    float partial = 0.0f;
    for (int j = get_local_id(0); j < N * plane; j += get_local_size(0)) {
        const int e = channel_element(c, j, C, plane);
        partial += dy[e] * (in[e] - mean[c]);
    }
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    if (get_local_id(0) == 0) scale_grad[c] = total / sqrt(variance[c] + eps);
}

// ============================================================================================
// Classifier heads over [N, K] rows: work-group n handles row n, its work-items striding over k.
// Stable form: with m the row maximum and s = sum exp(x - m), softmax = exp(x - m) / s,
// log-softmax = (x - m) - log s, and the differences x - m stay exact for large logits.
inline float2 row_max_and_sum_exp(__global const float* row, const int K, __local float* scratch) {
    float partial = -INFINITY;
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) partial = fmax(partial, row[k]);
    const float m = work_group_reduce(scratch, partial, REDUCE_MAX);
    partial = 0.0f;
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) partial += exp(row[k] - m);
    return (float2)(m, work_group_reduce(scratch, partial, REDUCE_SUM));
}

__kernel void softmax_fwd(__global const float* in, __global float* out, const int K, const int log_softmax,
                          __local float* scratch) {
    const int row = get_group_id(0) * K;
    const float2 ms = row_max_and_sum_exp(in + row, K, scratch);
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) {
        out[row + k] = log_softmax ? (in[row + k] - ms.x) - log(ms.y) : exp(in[row + k] - ms.x) / ms.y;
    }
}

// From the forward output y: softmax dx = y (dy - sum dy y); log-softmax dx = dy - exp(y) sum dy.
__kernel void softmax_bwd(__global const float* y, __global const float* dy, __global float* dx, const int K,
                          const int log_softmax, __local float* scratch) {
    const int row = get_group_id(0) * K;
    float partial = 0.0f;
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) partial += log_softmax ? dy[row + k] : dy[row + k] * y[row + k];
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) {
        dx[row + k] = log_softmax ? dy[row + k] - exp(y[row + k]) * total : y[row + k] * (dy[row + k] - total);
    }
}

// losses[n] = log s - (logits[n, labels[n]] - m) = -log softmax[labels[n]]; NaN for a label outside [0, K).
__kernel void cross_entropy_fwd(__global const float* logits, __global const int* labels, __global float* losses,
                                const int K, __local float* scratch) {
    const int n = get_group_id(0);
    const float2 ms = row_max_and_sum_exp(logits + n * K, K, scratch);
    const int label = labels[n];
    if (get_local_id(0) == 0) losses[n] = (label >= 0 && label < K) ? log(ms.y) - (logits[n * K + label] - ms.x) : NAN;
}

// dx[n, k] = loss_grad[n] (softmax[n, k] - [k == labels[n]]).
__kernel void cross_entropy_bwd(__global const float* logits, __global const int* labels, __global const float* loss_grad,
                                __global float* dx, const int K, __local float* scratch) {
    const int n = get_group_id(0);
    const float2 ms = row_max_and_sum_exp(logits + n * K, K, scratch);
    for (int k = get_local_id(0); k < K; k += get_local_size(0)) {
        dx[n * K + k] = loss_grad[n] * (exp(logits[n * K + k] - ms.x) / ms.y - (k == labels[n] ? 1.0f : 0.0f));
    }
}

// ============================================================================================
// Bilinear resize of [N*C] planes H x W -> OH x OW. Along one axis, output dst samples
//   src = dst (in-1)/(out-1) (align corners; 0 when out == 1), or max(0, (dst + 0.5) in/out - 0.5),
// held as an exact integer ratio numerator / denominator: i0 = floor(src), i1 = min(i0 + 1, in - 1),
// lambda = src - i0 (one rounding), weights (1 - lambda) on i0 and lambda on i1. Forward: one
// work-item per output pixel. Backward: one per input pixel, over the outputs that can touch it
// (bilinear_touching_range, conservative), adding the exact forward weights.
typedef struct { int i0, i1; float lambda; } BilinearSample;

inline BilinearSample bilinear_sample(const int dst, const int in_len, const int out_len, const int align_corners) {
    const int numerator = align_corners ? (out_len == 1 ? 0 : dst * (in_len - 1)) : max(0, (2 * dst + 1) * in_len - out_len);
    const int denominator = align_corners ? max(out_len - 1, 1) : 2 * out_len;
    BilinearSample s;
    s.i0 = numerator / denominator;
    s.i1 = min(s.i0 + 1, in_len - 1);
    s.lambda = (float)(numerator - s.i0 * denominator) / (float)denominator;
    return s;
}

// The weight output sample s gives input i.
inline float bilinear_weight(const BilinearSample s, const int i) {
    return (s.i0 == i ? 1.0f - s.lambda : 0.0f) + (s.i1 == i ? s.lambda : 0.0f);
}

// Outputs [lo, hi] that may touch input i: those with src in [i - 1, i + 1) (src grows with dst),
// widened by one on each side against rounding.
inline int2 bilinear_touching_range(const int i, const int in_len, const int out_len, const int align_corners) {
    float lo, hi;
    if (align_corners) {
        if (in_len == 1 || out_len == 1) return (int2)(0, out_len - 1);
        const float r = (float)(out_len - 1) / (float)(in_len - 1);
        lo = (float)(i - 1) * r;
        hi = (float)(i + 1) * r;
    } else {
        const float r = (float)out_len / (float)in_len;
        lo = ((float)i - 0.5f) * r - 0.5f;
        hi = ((float)i + 1.5f) * r - 0.5f;
    }
    return (int2)(max(0, (int)floor(lo) - 1), min(out_len - 1, (int)ceil(hi) + 1));
}

__kernel void resize_bilinear_fwd(__global const float* in, __global float* out, const int H, const int W,
                                  const int OH, const int OW, const int align_corners, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, OH, OW);
    const int plane = e.x;
    const BilinearSample sy = bilinear_sample(e.y, H, OH, align_corners);
    const BilinearSample sx = bilinear_sample(e.z, W, OW, align_corners);
    __global const float* x = in + plane * H * W;
    out[i] = (1.0f - sy.lambda) * ((1.0f - sx.lambda) * x[sy.i0 * W + sx.i0] + sx.lambda * x[sy.i0 * W + sx.i1])
           + sy.lambda * ((1.0f - sx.lambda) * x[sy.i1 * W + sx.i0] + sx.lambda * x[sy.i1 * W + sx.i1]);
}

__kernel void resize_bilinear_bwd(__global const float* dy, __global float* dx, const int H, const int W,
                                  const int OH, const int OW, const int align_corners, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int plane = e.x, iy = e.y, ix = e.z;
    const int2 rows = bilinear_touching_range(iy, H, OH, align_corners);
    const int2 cols = bilinear_touching_range(ix, W, OW, align_corners);
    __global const float* g = dy + plane * OH * OW;
    float sum = 0.0f;
    for (int oy = rows.x; oy <= rows.y; ++oy) {
        const float wy = bilinear_weight(bilinear_sample(oy, H, OH, align_corners), iy);
        if (wy == 0.0f) continue;
        for (int ox = cols.x; ox <= cols.y; ++ox) {
            sum += wy * bilinear_weight(bilinear_sample(ox, W, OW, align_corners), ix) * g[oy * OW + ox];
        }
    }
    dx[i] = sum;
}

// ============================================================================================
// Nearest resize of [N*C] planes H x W -> OH x OW (ONNX asymmetric coordinates, floor rounding).
// Along one axis output dst reads src = floor(dst * in / out), exact in integer arithmetic; for
// dst < out this is below in, so ONNX's clamp to in - 1 never binds. Backward, a gather: the
// outputs reading input i are those with i * out <= dst * in < (i + 1) * out, the contiguous run
//   dst in [first_reader(i), first_reader(i + 1)),   first_reader(i) = ceil(i * out / in),
// empty where down-sampling skips i. The host keeps (in + 1) * out within int.
inline int nearest_source(const int dst, const int in_len, const int out_len) {
    return dst * in_len / out_len;
}

inline int nearest_first_reader(const int i, const int in_len, const int out_len) {
    return (i * out_len + in_len - 1) / in_len;
}

__kernel void resize_nearest_fwd(__global const float* in, __global float* out, const int H, const int W,
                                 const int OH, const int OW, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, OH, OW);
    out[i] = in[(e.x * H + nearest_source(e.y, H, OH)) * W + nearest_source(e.z, W, OW)];
}

__kernel void resize_nearest_bwd(__global const float* dy, __global float* dx, const int H, const int W,
                                 const int OH, const int OW, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    __global const float* g = dy + e.x * OH * OW;
    float sum = 0.0f;
    for (int oy = nearest_first_reader(e.y, H, OH); oy < nearest_first_reader(e.y + 1, H, OH); ++oy) {
        for (int ox = nearest_first_reader(e.z, W, OW); ox < nearest_first_reader(e.z + 1, W, OW); ++ox) sum += g[oy * OW + ox];
    }
    dx[i] = sum;
}

// ============================================================================================
// Constant pad of [N*C] planes H x W -> OH x OW = (H + top + bottom) x (W + left + right), a
// negative pad cropping: output (y, x) copies input (y - top, x - left) where that lies inside the
// input, else holds `value`. Backward, a gather over the input: dx(y, x) = dy(y + top, x + left)
// where that lies inside the output, else 0 (a cropped pixel does not reach the output).

// Along one axis: position i moved by `shift`, or -1 when that leaves [0, length).
inline int shifted_inside(const int i, const int shift, const int length) {
    const int j = i + shift;
    return j >= 0 && j < length ? j : -1;
}

__kernel void pad2d_fwd(__global const float* in, __global float* out, const int H, const int W, const int OH, const int OW,
                        const int top, const int left, const float value, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, OH, OW);
    const int y = shifted_inside(e.y, -top, H), x = shifted_inside(e.z, -left, W);
    out[i] = (y < 0 || x < 0) ? value : in[(e.x * H + y) * W + x];
}

__kernel void pad2d_bwd(__global const float* dy, __global float* dx, const int H, const int W, const int OH, const int OW,
                        const int top, const int left, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int y = shifted_inside(e.y, top, OH), x = shifted_inside(e.z, left, OW);
    dx[i] = (y < 0 || x < 0) ? 0.0f : dy[(e.x * OH + y) * OW + x];
}

// ============================================================================================
// Per-image regularizers over [N, C, H, W]; forward: work-group n reduces image n to out[n];
// backward: one work-item per element. Total variation term at (c, y, x): s = dx^2 + dy^2 with
// dx = x[y, x+1] - x[y, x], dy = x[y+1, x] - x[y, x] (0 past the right / bottom border), value
// s^(beta/2); its gradient coefficient beta s^(beta/2 - 1) (0 where s = 0) goes with +dx to the right
// neighbour, +dy to the lower one and -(dx + dy) to the pixel itself.
inline float2 tv_differences(__global const float* plane, const int y, const int x, const int H, const int W) {
    const float here = plane[y * W + x];
    return (float2)(x + 1 < W ? plane[y * W + x + 1] - here : 0.0f, y + 1 < H ? plane[(y + 1) * W + x] - here : 0.0f);
}

inline float tv_coefficient(const float2 d, const float beta) {
    const float s = d.x * d.x + d.y * d.y;
    // beta = 2 (the usual choice) needs no power; pow is slow on CPU devices.
    if (beta == 2.0f) return 2.0f;
    return s > 0.0f ? beta * exp2((0.5f * beta - 1.0f) * log2(s)) : 0.0f;
}

__kernel void total_variation_fwd(__global const float* in, __global float* out, const int C, const int H, const int W,
                                  const float beta, __local float* scratch) {
    const int b = get_group_id(0);
    float partial = 0.0f;
    for (int j = get_local_id(0); j < C * H * W; j += get_local_size(0)) {
        const int3 e = plane_position(j, H, W);
        const float2 d = tv_differences(in + (b * C + e.x) * H * W, e.y, e.z, H, W);
        partial += pow(d.x * d.x + d.y * d.y, 0.5f * beta);
    }
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    if (get_local_id(0) == 0) out[b] = total;
}

__kernel void total_variation_bwd(__global const float* in, __global const float* dy, __global float* dx,
                                  const int C, const int H, const int W, const float beta, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int plane = e.x, y = e.y, x = e.z;
    __global const float* p = in + plane * H * W;
    const float2 own = tv_differences(p, y, x, H, W);
    float sum = -tv_coefficient(own, beta) * (own.x + own.y);
    if (x > 0) {
        const float2 left = tv_differences(p, y, x - 1, H, W);
        sum += tv_coefficient(left, beta) * left.x;
    }
    if (y > 0) {
        const float2 up = tv_differences(p, y - 1, x, H, W);
        sum += tv_coefficient(up, beta) * up.y;
    }
    dx[i] = dy[plane / C] * sum;
}

// Lp norm: out[b] = sum |x|^p over image b; dx = g[b] p |x|^(p-1) sign(x), 0 at x = 0.
__kernel void lp_norm_fwd(__global const float* in, __global float* out, const int per_image, const float p,
                          __local float* scratch) {
    const int b = get_group_id(0);
    float partial = 0.0f;
    for (int j = get_local_id(0); j < per_image; j += get_local_size(0)) partial += pow(fabs(in[b * per_image + j]), p);
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    if (get_local_id(0) == 0) out[b] = total;
}

__kernel void lp_norm_bwd(__global const float* in, __global const float* dy, __global float* dx, const int per_image,
                          const float p, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float x = in[i];
    dx[i] = x == 0.0f ? 0.0f : dy[i / per_image] * p * pow(fabs(x), p - 1.0f) * sign(x);
}

// ============================================================================================
// Gaussian blur of [N*C] planes H x W, one 1-D pass per launch, one work-item per element:
//   out[e] = (sum over taps t in [-radius, radius] inside the line of k(t) in[e + t along conv_axis]) / Z(e along norm_axis)
// with k(t) = exp(-t^2 / (2 sigma^2)) and Z the sum of k(t) over the taps inside the line (axis
// BLUR_NONE: no convolution / no normalization). The kernel is symmetric, so the adjoint of a
// normalized pass (convolve, then divide by Z) is: divide by Z, then convolve.
//   forward : (H, H) then (V, V)            -- horizontal pass, then vertical
//   backward: (NONE, V), (V, H), (H, NONE)  -- vertical adjoint, then horizontal adjoint
#define BLUR_NONE 0
#define BLUR_HORIZONTAL 1
#define BLUR_VERTICAL 2

inline float blur_tap(const int t, const float inv_two_sigma_sq) {
    return exp(-(float)(t * t) * inv_two_sigma_sq);
}

inline float blur_normalizer(const int at, const int length, const int radius, const float inv_two_sigma_sq) {
    float z = 0.0f;
    for (int t = max(-radius, -at); t <= min(radius, length - 1 - at); ++t) z += blur_tap(t, inv_two_sigma_sq);
    return z;
}

__kernel void gaussian_blur_pass(__global const float* in, __global float* out, const int H, const int W,
                                 const int radius, const float inv_two_sigma_sq, const int conv_axis, const int norm_axis,
                                 const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int y = e.y, x = e.z;
    float v = in[i];
    if (conv_axis != BLUR_NONE) {
        const int at = conv_axis == BLUR_HORIZONTAL ? x : y;
        const int length = conv_axis == BLUR_HORIZONTAL ? W : H;
        const int step = conv_axis == BLUR_HORIZONTAL ? 1 : W;
        v = 0.0f;
        for (int t = max(-radius, -at); t <= min(radius, length - 1 - at); ++t) v += blur_tap(t, inv_two_sigma_sq) * in[i + t * step];
    }
    if (norm_axis != BLUR_NONE) {
        v /= norm_axis == BLUR_HORIZONTAL ? blur_normalizer(x, W, radius, inv_two_sigma_sq)
                                          : blur_normalizer(y, H, radius, inv_two_sigma_sq);
    }
    out[i] = v;
}

// ============================================================================================
// Optimizer steps, in place, one work-item per parameter element (formulas in Ops.swift).
__kernel void sgd_momentum_step(__global float* param, __global const float* grad, __global float* velocity,
                                const float lr, const float momentum, const float weight_decay, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float v = momentum * velocity[i] + (grad[i] + weight_decay * param[i]);
    velocity[i] = v;
    param[i] -= lr * v;
}

// correction1 = 1 - beta1^t, correction2 = 1 - beta2^t (computed on the host in double).
__kernel void adam_step(__global float* param, __global const float* grad, __global float* m1, __global float* m2,
                        const float lr, const float beta1, const float beta2, const float eps, const float weight_decay,
                        const float correction1, const float correction2, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const float g = grad[i] + weight_decay * param[i];
    const float m = beta1 * m1[i] + (1.0f - beta1) * g;
    const float v = beta2 * m2[i] + (1.0f - beta2) * g * g;
    m1[i] = m;
    m2[i] = v;
    param[i] -= lr * (m / correction1) / (sqrt(v / correction2) + eps);
}

// ============================================================================================
// ==== Network Dissection (issue 6): streaming quantiles and concept intersection counts ====
// Layout: activations [N, K, H, W]; counts are int64 per (unit, bin), row-major [K, bins],
// accumulated over calls. One work-group per unit (and per range of DISSECT_BINS bins); each of
// its work-items keeps its own histogram row in local memory (no atomics), and the rows are
// folded per bin in a fixed order. Dispatch: OpenCL+Dissection.swift.

#ifndef DISSECT_BINS
#define DISSECT_BINS 256   // bins per work-group row: one radix digit of 8 bits
#endif

// float32 -> uint32 preserving order (negative floats flip all bits, the others set the sign bit).
inline uint dissect_key(const float x) {
    const uint b = as_uint(x);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// One radix-select pass: bin (key >> shift) & 255 of the values whose key matches prefixes[k]
// above bit shift + 8 (all values when shift is 24). Global K * G work-items, local G.
__kernel void dissect_radix_histogram(__global const float* act, __global const int* prefixes, __global long* counts,
                                      const int N, const int K, const int plane, const int shift, __local int* rows) {
    const int k = get_group_id(0), lid = get_local_id(0), G = get_local_size(0);
    __local int* row = rows + lid * DISSECT_BINS;
    for (int b = 0; b < DISSECT_BINS; ++b) row[b] = 0;
    const uint prefix = (uint)prefixes[k];
    const int total = N * plane;
    for (int i = lid; i < total; i += G) {
        const int n = i / plane, p = i - n * plane;
        const float x = act[(n * K + k) * plane + p];
        if (isnan(x)) continue;
        const uint key = dissect_key(x);
        if (shift < 24 && (key >> (shift + 8)) != (prefix >> (shift + 8))) continue;
        row[(key >> shift) & 255u] += 1;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int b = lid; b < DISSECT_BINS; b += G) {
        long sum = 0;
        for (int r = 0; r < G; ++r) sum += rows[r * DISSECT_BINS + b];
        counts[k * DISSECT_BINS + b] += sum;
    }
}

// Intersection counts: work-group g handles unit g / chunks and bins [c * DISSECT_BINS, ...) of
// chunk c = g % chunks. Each pixel (y, x) of the LH x LW label grid samples unit k's map bilinearly
// (half-pixel centres, no contraction, so the host reference reproduces it bit for bit); where the
// sample exceeds thresholds[k], every pixel label and every image label of that image counts once.
__kernel void dissect_concept_counts(__global const float* act, __global const float* thresholds,
                                     __global const int* pixel_labels, __global const int* image_labels,
                                     __global long* counts, const int N, const int K, const int H, const int W,
                                     const int P, const int LH, const int LW, const int Q, const int bins,
                                     const int chunks, __local int* rows) {
#pragma OPENCL FP_CONTRACT OFF
    const int g = get_group_id(0), lid = get_local_id(0), G = get_local_size(0);
    const int k = g / chunks, first = (g - k * chunks) * DISSECT_BINS;
    const int width = min(DISSECT_BINS, bins - first);
    __local int* row = rows + lid * DISSECT_BINS;
    for (int b = 0; b < DISSECT_BINS; ++b) row[b] = 0;
    const float t = thresholds[k];
    const int labelPlane = LH * LW;
    for (int n = 0; n < N; ++n) {
        __global const float* a = act + (n * K + k) * H * W;
        __global const int* labels = pixel_labels + n * P * labelPlane;
        int masked = 0;
        for (int i = lid; i < labelPlane; i += G) {
            const int y = i / LW, x = i - y * LW;
            const BilinearSample sy = bilinear_sample(y, H, LH, 0);
            const BilinearSample sx = bilinear_sample(x, W, LW, 0);
            const float top = (1.0f - sx.lambda) * a[sy.i0 * W + sx.i0] + sx.lambda * a[sy.i0 * W + sx.i1];
            const float bottom = (1.0f - sx.lambda) * a[sy.i1 * W + sx.i0] + sx.lambda * a[sy.i1 * W + sx.i1];
            const float s = (1.0f - sy.lambda) * top + sy.lambda * bottom;
            if (!(s > t)) continue;
            masked += 1;
            for (int p = 0; p < P; ++p) {
                const int bin = labels[p * labelPlane + i] - first;
                if (labels[p * labelPlane + i] >= 1 && bin >= 0 && bin < width) row[bin] += 1;
            }
        }
        for (int q = 0; q < Q; ++q) {
            const int bin = image_labels[n * Q + q] - first;
            if (image_labels[n * Q + q] >= 1 && bin >= 0 && bin < width) row[bin] += masked;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int b = lid; b < width; b += G) {
        long sum = 0;
        for (int r = 0; r < G; ++r) sum += rows[r * DISSECT_BINS + b];
        counts[k * bins + first + b] += sum;
    }
}

// Net2Vec (Fong & Vedaldi 2018) on top of the dissection layout: logits u [N, C, H, W] are a
// learned 1x1 combination of a layer's units, upsampled to the label grid (conv2d and
// resize_bilinear_fwd); concept c is label concepts[c], present at a pixel when any of the P label
// planes holds it. Weights w [N, C, 2] give each image's positive and negative pixel weight.
// Loss: w+ y softplus(-u) + w- (1 - y) softplus(u), the weighted BCE of sigmoid(u); gradient
// w+ y (sigmoid(u) - 1) + w- (1 - y) sigmoid(u). One work-item per logit.
inline int net2vec_present(__global const int* labels, const int P, const int plane, const int p, const int label) {
    for (int q = 0; q < P; ++q) if (labels[q * plane + p] == label) return 1;
    return 0;
}

inline float net2vec_softplus(const float x) { return fmax(x, 0.0f) + log1p(exp(-fabs(x))); }

__kernel void net2vec_bce(__global const float* logits, __global const int* pixel_labels, __global const int* concepts,
                          __global const float* weights, __global float* loss, __global float* grad, const int C,
                          const int P, const int plane, const int count) {
    const int i = get_global_id(0);
    if (i >= count) return;
    const int p = i % plane, nc = i / plane, c = nc % C, n = nc / C;
    const float u = logits[i];
    const int y = net2vec_present(pixel_labels + n * P * plane, P, plane, p, concepts[c]);
    const float wp = weights[nc * 2], wn = weights[nc * 2 + 1];
    const float s = 1.0f / (1.0f + exp(-u));
    loss[i] = y ? wp * net2vec_softplus(-u) : wn * net2vec_softplus(u);
    grad[i] = y ? wp * (s - 1.0f) : wn * s;
}

// Set-IoU counts of the masks u > 0 (sigmoid(u) > 1/2): per concept c, over the images n with
// annotated[n, c] != 0, the pixels masked and labelled, masked, and labelled, accumulated into
// counts [C, 3] (int64). One work-group per concept; private counts per work-item, folded in order.
__kernel void net2vec_counts(__global const float* logits, __global const int* pixel_labels, __global const int* concepts,
                             __global const int* annotated, __global long* counts, const int N, const int C, const int P,
                             const int plane, __local int* rows) {
    const int c = get_group_id(0), lid = get_local_id(0), G = get_local_size(0);
    int both = 0, masked = 0, labelled = 0;
    for (int n = 0; n < N; ++n) {
        if (!annotated[n * C + c]) continue;
        __global const float* u = logits + (n * C + c) * plane;
        for (int p = lid; p < plane; p += G) {
            const int m = u[p] > 0.0f;
            const int y = net2vec_present(pixel_labels + n * P * plane, P, plane, p, concepts[c]);
            both += m & y;
            masked += m;
            labelled += y;
        }
    }
    rows[lid * 3] = both;
    rows[lid * 3 + 1] = masked;
    rows[lid * 3 + 2] = labelled;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < 3) {
        long sum = 0;
        for (int r = 0; r < G; ++r) sum += rows[r * 3 + lid];
        counts[c * 3 + lid] += sum;
    }
}

// ============================================================================================
// ==== Synthesis (activation maximization, inversion): on-device RNG, random roll and affine
// ==== warp, Lucid's Fourier image parameterization, colour decorrelation with sigmoid ====
//
// Counter-based RNG: uniform k of image stream s at step t of run seed is a pure function of
// (seed, t, s, k), computed the same way in Swift (`SynthesisRandom`), so transform parameters
// are drawn on the device with no upload and no read. Draws: 0, 1 roll rows / columns; 2 scale;
// 3 angle.
inline uint synth_mix(uint x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}

inline uint synth_bits(const uint seed, const uint step, const uint stream, const uint k) {
    return synth_mix(seed ^ synth_mix(step ^ synth_mix(stream ^ synth_mix(k + 0x9e3779b9U))));
}

// Uniform in [0, 1) with 24 bits.
inline float synth_uniform(const uint seed, const uint step, const uint stream, const uint k) {
    return (float)(synth_bits(seed, step, stream, k) >> 8) * (1.0f / 16777216.0f);
}

// A uniform integer in [-m, m], exactly (integer arithmetic).
inline int synth_shift(const uint seed, const uint step, const uint stream, const uint k, const int m) {
    const ulong u = (ulong)(synth_bits(seed, step, stream, k) >> 8);
    return (int)((u * (ulong)(2 * m + 1)) >> 24) - m;
}

// Random roll of each image n (stream first_stream + n) by (dy, dx) in [-max_shift, max_shift]^2:
// out[y, x] = in[(y - dy) mod H, (x - dx) mod W]; `inverse` rolls by (-dy, -dx) (the backward).
__kernel void synth_random_roll(__global const float* in, __global float* out, const int C, const int H, const int W,
                                const int seed, const int step, const int first_stream, const int max_shift,
                                const int inverse, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const uint stream = (uint)(first_stream + e.x / C);
    int dy = synth_shift((uint)seed, (uint)step, stream, 0, max_shift);
    int dx = synth_shift((uint)seed, (uint)step, stream, 1, max_shift);
    if (inverse) { dy = -dy; dx = -dx; }
    const int sy = ((e.y - dy) % H + H) % H, sx = ((e.z - dx) % W + W) % W;
    out[i] = in[e.x * H * W + sy * W + sx];
}

// Random affine warp of each image about its centre (cy, cx) = ((H-1)/2, (W-1)/2): scale s in
// [scale_lo, scale_hi], angle a in [-max_angle, max_angle] radians. Output (oy, ox) samples the
// input bilinearly at  src = c + R(a) (o - c) / s, taps outside the image read 0.
typedef struct { float cos_a, sin_a, inv_s, s; } SynthAffine;

inline SynthAffine synth_affine(const uint seed, const uint step, const uint stream,
                                const float scale_lo, const float scale_hi, const float max_angle) {
    const float s = scale_lo + synth_uniform(seed, step, stream, 2) * (scale_hi - scale_lo);
    const float a = (2.0f * synth_uniform(seed, step, stream, 3) - 1.0f) * max_angle;
    SynthAffine t = { cos(a), sin(a), 1.0f / s, s };
    return t;
}

inline float2 synth_affine_source(const SynthAffine t, const int oy, const int ox, const int H, const int W) {
    const float cy = 0.5f * (float)(H - 1), cx = 0.5f * (float)(W - 1);
    const float dy = (float)oy - cy, dx = (float)ox - cx;
    return (float2)(cy + (t.cos_a * dy - t.sin_a * dx) * t.inv_s, cx + (t.sin_a * dy + t.cos_a * dx) * t.inv_s);
}

#define SYNTH_AFFINE_ARGS const int seed, const int step, const int first_stream, const float scale_lo, \
                          const float scale_hi, const float max_angle

__kernel void synth_random_affine_fwd(__global const float* in, __global float* out, const int C, const int H, const int W,
                                      SYNTH_AFFINE_ARGS, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const SynthAffine t = synth_affine((uint)seed, (uint)step, (uint)(first_stream + e.x / C), scale_lo, scale_hi, max_angle);
    const float2 src = synth_affine_source(t, e.y, e.z, H, W);
    const int y0 = (int)floor(src.x), x0 = (int)floor(src.y);
    const float fy = src.x - (float)y0, fx = src.y - (float)x0;
    __global const float* x = in + e.x * H * W;
    float v = 0.0f;
    for (int dy = 0; dy < 2; ++dy) {
        const int y = y0 + dy;
        if (y < 0 || y >= H) continue;
        const float wy = dy ? fy : 1.0f - fy;
        for (int dx = 0; dx < 2; ++dx) {
            const int xx = x0 + dx;
            if (xx < 0 || xx >= W) continue;
            v += wy * (dx ? fx : 1.0f - fx) * x[y * W + xx];
        }
    }
    out[i] = v;
}

// Backward as a gather: input pixel p is a tap of the outputs whose source lies in the open square
// (p - 1, p + 1)^2, which is inside the box of half-width s (|cos a| + |sin a|) + 1 around
// c + s R(-a) (p - c); each candidate recomputes its source exactly as the forward does.
__kernel void synth_random_affine_bwd(__global const float* dy, __global float* dx, const int C, const int H, const int W,
                                      SYNTH_AFFINE_ARGS, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int3 e = plane_position(i, H, W);
    const int py = e.y, px = e.z;
    const SynthAffine t = synth_affine((uint)seed, (uint)step, (uint)(first_stream + e.x / C), scale_lo, scale_hi, max_angle);
    const float cy = 0.5f * (float)(H - 1), cx = 0.5f * (float)(W - 1);
    const float qy = (float)py - cy, qx = (float)px - cx;
    const float oyc = cy + t.s * (t.cos_a * qy + t.sin_a * qx), oxc = cx + t.s * (-t.sin_a * qy + t.cos_a * qx);
    // Output o reads input p when its source lies within 1 of p in each coordinate: o within
    // s (|cos| + |sin|) of the image of p (rounding slack added).
    const float r = t.s * (fabs(t.cos_a) + fabs(t.sin_a)) + 1e-3f;
    const int y_lo = max(0, (int)floor(oyc - r)), y_hi = min(H - 1, (int)ceil(oyc + r));
    const int x_lo = max(0, (int)floor(oxc - r)), x_hi = min(W - 1, (int)ceil(oxc + r));
    __global const float* g = dy + e.x * H * W;
    float sum = 0.0f;
    for (int oy = y_lo; oy <= y_hi; ++oy) {
        for (int ox = x_lo; ox <= x_hi; ++ox) {
            const float2 src = synth_affine_source(t, oy, ox, H, W);
            const int y0 = (int)floor(src.x), x0 = (int)floor(src.y);
            const float fy = src.x - (float)y0, fx = src.y - (float)x0;
            const float wy = y0 == py ? 1.0f - fy : (y0 + 1 == py ? fy : 0.0f);
            const float wx = x0 == px ? 1.0f - fx : (x0 + 1 == px ? fx : 0.0f);
            sum += wy * wx * g[oy * W + ox];
        }
    }
    dx[i] = sum;
}

// Lucid's Fourier parameterization, an inverse real 2-D DFT as two separable DFT passes (each a
// gather, O(H) or O(W) per element). The spectrum is [N, C, H, WF] complex, WF = W/2 + 1, stored
// interleaved as [N, C, H, 2 WF] (re, im); it is first scaled by
//   scale(ky, kx) = sqrt(H W) / 4 / max(f, 1 / max(H, W))^decay,  f = sqrt(fy^2 + fx^2),
// with fy = ky / H (ky - H above H/2, numpy's fftfreq) and fx = kx / W (rfftfreq).
// Pass H: T[h, kx] = sum_ky scale(ky, kx) S[ky, kx] e^{+2 pi i ky h / H}.
// Pass W: x[h, w] = 1/(H W) sum_kx a_kx Re(T[h, kx] e^{+2 pi i kx w / W}), a = 1 at kx = 0 and
// at kx = W/2 for even W, else 2 (numpy's irfft2, whose imaginary DC and Nyquist parts drop out).
// Angles reduce k * n mod N in integers before cospi/sinpi.
// The host passes the tables: `twH`/`twW` hold exp(2 pi i j / N) as (cos, sin) for j < N, and
// `scale` the frequency scale [H, WF] (FourierImage.scale), both computed in double precision.

// One item per element (plane, h, kx) of T, as (re, im) at 2 kx, 2 kx + 1.
__kernel void synth_fourier_h_fwd(__global const float* spectrum, __global float* t, __global const float2* twH,
                                  __global const float* scale, const int H, const int W, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int WF = W / 2 + 1;
    const int3 e = plane_position(i, H, WF);
    __global const float2* s = (__global const float2*)spectrum + e.x * H * WF + e.z;
    float re = 0.0f, im = 0.0f;
    int j = 0;   // ky * h mod H
    for (int ky = 0; ky < H; ++ky) {
        const float sc = scale[ky * WF + e.z];
        const float2 tw = twH[j];
        const float2 v = s[ky * WF] * sc;
        re += v.x * tw.x - v.y * tw.y;
        im += v.x * tw.y + v.y * tw.x;
        j += e.y;
        if (j >= H) j -= H;
    }
    t[i * 2] = re;
    t[i * 2 + 1] = im;
}

// One item per output pixel (plane, h, w).
__kernel void synth_fourier_w_fwd(__global const float* t, __global float* out, __global const float2* twW, const int H, const int W,
                                  const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int WF = W / 2 + 1;
    const int3 e = plane_position(i, H, W);
    __global const float2* row = (__global const float2*)t + (e.x * H + e.y) * WF;
    float v = 0.0f;
    int j = 0;   // kx * w mod W
    for (int kx = 0; kx < WF; ++kx) {
        const float a = (kx == 0 || 2 * kx == W) ? 1.0f : 2.0f;
        const float2 tw = twW[j], r = row[kx];
        v += a * (r.x * tw.x - r.y * tw.y);
        j += e.z;
        if (j >= W) j -= W;
    }
    out[i] = v / (float)(H * W);
}

// Adjoint of pass W: dT[h, kx] = a_kx / (H W) sum_w dx[h, w] (cos, -sin).
__kernel void synth_fourier_w_bwd(__global const float* dx, __global float* dt, __global const float2* twW, const int H, const int W,
                                  const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int WF = W / 2 + 1;
    const int3 e = plane_position(i, H, WF);
    __global const float* g = dx + (e.x * H + e.y) * W;
    float re = 0.0f, im = 0.0f;
    int j = 0;   // kx * w mod W
    for (int w = 0; w < W; ++w) {
        const float2 tw = twW[j];
        re += g[w] * tw.x;
        im -= g[w] * tw.y;
        j += e.z;
        if (j >= W) j -= W;
    }
    const float a = ((e.z == 0 || 2 * e.z == W) ? 1.0f : 2.0f) / (float)(H * W);
    dt[i * 2] = a * re;
    dt[i * 2 + 1] = a * im;
}

// Adjoint of pass H: dS[ky, kx] = scale(ky, kx) sum_h dT[h, kx] e^{-2 pi i ky h / H}.
__kernel void synth_fourier_h_bwd(__global const float* dt, __global float* ds, __global const float2* twH,
                                  __global const float* scale, const int H, const int W, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int WF = W / 2 + 1;
    const int3 e = plane_position(i, H, WF);
    __global const float2* g = (__global const float2*)dt + e.x * H * WF + e.z;
    float re = 0.0f, im = 0.0f;
    int j = 0;   // ky * h mod H
    for (int h = 0; h < H; ++h) {
        const float2 tw = twH[j], v = g[h * WF];
        re += v.x * tw.x + v.y * tw.y;
        im += v.y * tw.x - v.x * tw.y;
        j += e.y;
        if (j >= H) j -= H;
    }
    const float sc = scale[e.y * WF + e.z];
    ds[i * 2] = sc * re;
    ds[i * 2 + 1] = sc * im;
}

// Colour decorrelation and sigmoid per pixel: out[c] = sigmoid(sum_c' M[c, c'] z[c']), M [C, C].
// Backward from the forward output y: dz[c'] = sum_c M[c, c'] dy[c] y[c] (1 - y[c]).
__kernel void synth_color_sigmoid_fwd(__global const float* z, __global const float* m, __global float* out,
                                      const int C, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = (i / plane) % C, base = i - c * plane;
    float v = 0.0f;
    for (int k = 0; k < C; ++k) v += m[c * C + k] * z[base + k * plane];
    out[i] = 1.0f / (1.0f + exp(-v));
}

__kernel void synth_color_sigmoid_bwd(__global const float* y, __global const float* dy, __global const float* m,
                                      __global float* dz, const int C, const int plane, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int c = (i / plane) % C, base = i - c * plane;
    float v = 0.0f;
    for (int k = 0; k < C; ++k) {
        const float yk = y[base + k * plane];
        v += m[k * C + c] * dy[base + k * plane] * yk * (1.0f - yk);
    }
    dz[i] = v;
}

// Lucid's diversity of a batch of feature maps A [N, C, P]: Gram matrices G_n = A_n A_n^T,
// cosines of every pair, D = (1/N) sum_{i != j} <G_i, G_j> / (|G_i| |G_j|) (norms at least 1e-5).
__kernel void gram_fwd(__global const float* a, __global float* g, const int C, const int P, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int b = i / (C * C), r = (i / C) % C, s = i % C;
    __global const float* x = a + (b * C + r) * P;
    __global const float* y = a + (b * C + s) * P;
    float acc = 0.0f;
    for (int q = 0; q < P; ++q) acc += x[q] * y[q];
    g[i] = acc;
}

__kernel void gram_pair_dots(__global const float* g, __global float* dots, const int N, const int CC, __local float* scratch) {
    const int pair = get_group_id(0), i = pair / N, j = pair % N;
    float partial = 0.0f;
    for (int k = get_local_id(0); k < CC; k += get_local_size(0)) partial += g[i * CC + k] * g[j * CC + k];
    const float total = work_group_reduce(scratch, partial, REDUCE_SUM);
    if (get_local_id(0) == 0) dots[pair] = total;
}

inline float gram_norm(__global const float* dots, const int N, const int i) { return sqrt(fmax(dots[i * N + i], 1e-10f)); }

__kernel void gram_diversity_value(__global const float* dots, __global float* out, const int N) {
    if (get_global_id(0) != 0) return;
    float d = 0.0f;
    for (int i = 0; i < N; ++i) {
        for (int j = 0; j < N; ++j) {
            if (j != i) d += dots[i * N + j] / (gram_norm(dots, N, i) * gram_norm(dots, N, j));
        }
    }
    out[0] = d / N;
}

// dD/dG_b = (2 dy / N)(S - <S, g_b> g_b) / |G_b| with S = sum_m g_m (<S, g_b> := 1 where the norm is clamped).
__kernel void gram_diversity_cotangent(__global const float* g, __global const float* dots, __global const float* dy,
                                       __global float* u, const int N, const int CC, const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int b = i / CC, k = i % CC;
    const float nb = gram_norm(dots, N, b);
    float s = 0.0f, cosines = 0.0f;
    for (int m = 0; m < N; ++m) {
        const float nm = gram_norm(dots, N, m);
        s += g[m * CC + k] / nm;
        cosines += dots[b * N + m] / (nb * nm);
    }
    if (dots[b * N + b] <= 1e-10f) cosines = 1.0f;
    u[i] = 2.0f * dy[0] / N / nb * (s - cosines * g[i] / nb);
}

// dA[b, r, q] = 2 sum_s U[b, r, s] A[b, s, q] (U is symmetric).
__kernel void gram_backward_apply(__global const float* u, __global const float* a, __global float* da, const int C, const int P,
                                  const int n) {
    const int i = get_global_id(0);
    if (i >= n) return;
    const int b = i / (C * P), r = (i / P) % C, q = i % P;
    __global const float* ur = u + (b * C + r) * C;
    __global const float* ab = a + b * C * P + q;
    float acc = 0.0f;
    for (int s = 0; s < C; ++s) acc += ur[s] * ab[s * P];
    da[i] = 2.0f * acc;
}
