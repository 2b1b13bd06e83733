#ifndef LOUPE_COPENCL_SHIM_H
#define LOUPE_COPENCL_SHIM_H
// OpenCL 1.2 API surface: every call Loupe makes exists on OpenCL 1.2 and later platforms.
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#endif
