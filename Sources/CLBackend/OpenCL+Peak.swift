import Foundation

extension OpenCLBackend {
    /// The device's measured multiply-add rate in GFLOP/s (2 flops per multiply-add): the best of
    /// `repeats` runs of `fma_peak`, a kernel of independent multiply-add chains with no memory
    /// traffic. Benchmarks report kernel speed as a fraction of this.
    public func measurePeakGFLOPS(repeats: Int = 5) throws -> Double {
        let items = max(1, profile.computeUnits) * 2048
        let iters = 2048
        let out = try makeTensor([items], dtype: .float32)
        var best = Double.infinity
        for _ in 0..<(repeats + 1) {   // the first run also compiles the kernel for its work-group size
            try synchronize()
            let start = Date()
            try launch("fma_peak", global: [items], local: [min(64, profile.maxWorkGroupSize)], .tensor(out), .int(iters), .float(0.999))
            try synchronize()
            best = min(best, Date().timeIntervalSince(start))
        }
        return Double(items) * Double(iters) * 8 * 16 * 2 / best / 1e9
    }
}
