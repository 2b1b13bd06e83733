// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Loupe",
    platforms: [.macOS(.v13)],
    // MARK: - Public API
    products: [
        .executable(name: "loupe", targets: ["loupe"]),
        .library(name: "Loupe", targets: ["CLBackend", "Graph", "Explain"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        // MARK: - Implementation details: C libraries
        .systemLibrary(name: "COpenCL", path: "Sources/COpenCL",
                       providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
        // A C target, not a system library: libjpeg reports errors by calling `error_exit`, which
        // must not return, and only C can leave it with longjmp. Needs libjpeg62-turbo-dev.
        .target(name: "CJPEG", path: "Sources/CJPEG", linkerSettings: [.linkedLibrary("jpeg")]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: - Compute core
        .target(
            name: "CLBackend",
            dependencies: ["COpenCL"],
            path: "Sources/CLBackend",
            resources: [.embedInCode("Kernels.cl")],
            // The reference backend is the oracle of every test; optimized even in debug builds it
            // runs whole zoo models in seconds instead of minutes.
            swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]
        ),

        // MARK: - Graphs and explanations
        // ONNX's protobuf schema as generated Swift (see Sources/ONNXProto/README.md); its own target so
        // that the large generated file compiles once, apart from the code that uses it.
        .target(
            name: "ONNXProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Sources/ONNXProto",
            exclude: ["README.md"]
        ),
        .target(name: "Graph", dependencies: ["CLBackend", "ONNXProto"], path: "Sources/Graph",
                // Zoo models draw up to 144M random weights; optimized, that takes seconds in tests.
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .target(name: "Explain", dependencies: ["Graph", "CPNG", "CJPEG", "CZlib"], path: "Sources/Explain",
                // The methods combine maps on the host; optimized they keep the tests fast.
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),

        // MARK: - Command-line tool and benchmarks
        .executableTarget(
            name: "loupe",
            dependencies: ["CLBackend", "Graph", "Explain", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/loupe"
        ),
        .target(name: "BenchSupport", dependencies: ["CLBackend"], path: "Benchmarks/BenchSupport"),
        .executableTarget(name: "KernelBench", dependencies: ["CLBackend", "BenchSupport"], path: "Benchmarks/KernelBench"),
        .executableTarget(name: "GraphBench", dependencies: ["CLBackend", "Graph", "BenchSupport"], path: "Benchmarks/GraphBench"),
        .executableTarget(name: "DissectBench", dependencies: ["CLBackend", "Graph", "Explain", "BenchSupport"], path: "Benchmarks/DissectBench"),
        .executableTarget(name: "SynthesisBench", dependencies: ["CLBackend", "Graph", "Explain", "BenchSupport"], path: "Benchmarks/SynthesisBench"),

        // MARK: - Tests
        .testTarget(name: "CLBackendTests", dependencies: ["CLBackend"], path: "Tests/CLBackendTests"),
        // onnx_models.py builds the ONNX test models with onnxruntime's outputs at test time.
        .testTarget(name: "GraphTests", dependencies: ["Graph", "ONNXProto"], path: "Tests/GraphTests", exclude: ["onnx_models.py"]),
        .testTarget(name: "ExplainTests", dependencies: ["Explain", "Graph", "CLBackend"], path: "Tests/ExplainTests"),
        // Runs the built `loupe` binary; depends on it so `swift test` builds it first.
        .testTarget(name: "CLITests", dependencies: ["loupe", "Explain"], path: "Tests/CLITests"),
    ],
    swiftLanguageModes: [.v6]
)
