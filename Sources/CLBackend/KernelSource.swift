/// The OpenCL C source of every Loupe kernel (`Sources/Kernels.cl`), embedded at build time so a
/// copied binary carries its kernels with it.
let kernelSource: String = String(decoding: PackageResources.Kernels_cl, as: UTF8.self)
public func _probeKernelSource() -> Int { kernelSource.utf8.count }
