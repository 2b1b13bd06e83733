import ArgumentParser
import CLBackend
import Foundation

@main
struct Loupe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loupe",
        abstract: "See what a convolutional network sees: CNN layers as OpenCL kernels, checked against a Swift reference.",
        subcommands: [Devices.self, Check.self, Info.self, Run.self, Grad.self, Train.self, Evaluate.self, Report.self, Dissect.self, MakeConcepts.self, Maximize.self, Invert.self, Tune.self] + explanationCommands)
}

/// `--device`, shared by every command that computes.
struct DeviceOption: ParsableArguments {
    @Option(name: .long, help: "auto (first GPU, else first OpenCL CPU device, else the reference), opencl:N, or reference. Default: $LOUPE_DEVICE, else auto.")
    var device: String?

    func backend() throws -> Backend {
        let (backend, note) = try makeBackend(DeviceSelection.resolve(device))
        if let note { printError("loupe: \(note)") }
        return backend
    }
}

/// Writes to standard error, ending the line unless told not to (a progress bar redrawing in place).
func printError(_ s: String, newline: Bool = true) { FileHandle.standardError.write(Data((s + (newline ? "\n" : "")).utf8)) }

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every OpenCL platform and device with its profile, and the reference backend.")

    @Flag(help: "Also build the kernels on each device and report the build time and kernel-cache use.")
    var build = false

    func run() throws {
        let devices = try enumerateDevices()
        if devices.isEmpty { print("No OpenCL devices found (is an ICD such as pocl-opencl-icd installed?).") }
        for entry in devices {
            print("opencl:\(entry.index)  \(entry.profile)")
            print("    conv tiling: \(ConvTiling.choose(for: entry.profile))")
            if build {
                do {
                    let backend = try OpenCLBackend(device: entry)
                    print("    kernels: \(backend.buildReport)")
                } catch {
                    print("    kernels: failed to build: \(error)")
                }
            }
        }
        print("reference  plain-Swift CPU reference of every op (Float64 arithmetic, float32 storage): the oracle, slow")
        let auto = devices.first { $0.profile.kind == .gpu } ?? devices.first { $0.profile.kind == .cpu } ?? devices.first
        print("auto -> \(auto.map { "opencl:\($0.index)" } ?? "reference")")
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one convolution forward and backward on the chosen device and check it against the reference.")

    @OptionGroup var deviceOption: DeviceOption
    @Option(help: "Input shape N,C,H,W.") var input: String = "2,32,28,28"
    @Option(help: "Output channels.") var outChannels: Int = 48
    @Option(help: "Kernel size.") var kernel: Int = 3
    @Option(help: "Stride.") var stride: Int = 1
    @Option(help: "Padding on every side.") var padding: Int = 1
    @Option(help: "Largest relative error accepted.") var tolerance: Double = 1e-5

    func run() throws {
        let dims = input.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 4, dims.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--input must be four positive integers N,C,H,W, got '\(input)'")
        }
        let backend = try deviceOption.backend()
        let reference = ReferenceBackend()
        let op = Conv2D(window: Window2D(kernel: kernel, stride: stride, padding: padding))
        let xShape = Shape(dims), wShape: Shape = [outChannels, dims[1], kernel, kernel]
        let yShape = try op.outputShape(input: xShape, weight: wShape)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1) } }
        let x = random(xShape.count), w = random(wShape.count), b = random(outChannels), dy = random(yShape.count)
        let macs = Double(yShape.count * dims[1] * kernel * kernel)
        print("device: \(backend.name)")
        print("conv2d \(xShape) * \(wShape) -> \(yShape), stride \(stride), padding \(padding)")

        var worst = 0.0
        func run(_ direction: String, flops: Double, _ body: (Backend) throws -> Tensor) throws {
            let start = Date()
            let got = try backend.read(body(backend))
            let seconds = Date().timeIntervalSince(start)
            let want = try reference.read(body(reference))
            let err = relativeError(got, want)
            worst = max(worst, err.isNaN ? .infinity : err)
            let rate = flops > 0 ? String(format: ", %.2f GFLOP/s", flops / seconds / 1e9) : ""
            print("  " + direction.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(format: "relative error %.2e   %.3f s (one run, includes kernel setup)", err, seconds) + rate)
        }
        try run("forward", flops: 2 * macs) { be in
            try be.conv2d(be.tensor(x, shape: xShape), weight: be.tensor(w, shape: wShape), bias: be.tensor(b, shape: [outChannels]), op)
        }
        try run("backward-data", flops: 2 * macs) { be in
            try be.conv2dBackwardData(be.tensor(dy, shape: yShape), weight: be.tensor(w, shape: wShape), inputShape: xShape, op)
        }
        try run("backward-filter", flops: 2 * macs) { be in
            try be.conv2dBackwardFilter(be.tensor(x, shape: xShape), outputGrad: be.tensor(dy, shape: yShape), weightShape: wShape, op)
        }
        try run("backward-bias", flops: 0) { be in try be.biasGradient(be.tensor(dy, shape: yShape)) }
        guard worst <= tolerance else {
            throw ValidationError(String(format: "the device disagrees with the reference: worst relative error %.2e exceeds %.0e", worst, tolerance))
        }
        print(String(format: "OK: worst relative error %.2e <= %.0e", worst, tolerance))
    }
}
