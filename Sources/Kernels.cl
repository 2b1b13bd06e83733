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

// ==== Non-convolution kernels ====
