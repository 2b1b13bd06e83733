import Foundation
import Graph
import XCTest

/// Seeded mutation fuzzing of the `.npy` and safetensors readers: each mutated file must either read
/// (with as many values as its shape says) or be refused with a `TensorFileError`. A crash ends the
/// test process, so surviving the loop is the assertion. docs/FUZZING.md says how to reproduce and
/// run longer.
final class TensorFileFuzzTests: XCTestCase {
    private enum Format: String { case npy = ".npy", safetensors = "safetensors" }

    /// SplitMix64, with its own bounded draw, so one seed gives one sequence of inputs on every platform
    /// and toolchain (the standard library's `random(in:using:)` promises no particular algorithm).
    private struct SplitMix64 {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// A draw from 0..<bound (bound > 0); the modulo bias is immaterial at these bounds.
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

        mutating func pick<T>(_ choices: [T]) -> T { choices[below(choices.count)] }
    }

    private static let defaultSeed: UInt64 = 0x4C4F_5550_45
    private static let defaultIterations = 3000
    /// Bytes that steer parsers: JSON and Python-literal punctuation, digits, signs, and the extremes.
    private static let interesting: [UInt8] = Array("{}[]():,\"' -+.eE0123456789".utf8) + [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]

    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testNPYReaderSurvivesMutatedFiles() throws {
        var corpus: [[UInt8]] = []
        for (i, shape) in [[2, 3], [], [0, 5], [7], [1, 2, 1, 2]].enumerated() {
            let file = dir.appendingPathComponent("seed\(i).npy").path
            try NPY.write((0..<shape.reduce(1, *)).map { Float($0) - 1.5 }, shape: shape, to: file)
            corpus.append(try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))))
        }
        // The same first array with a version 2.0 header (a 4-byte header length).
        let v1 = corpus[0]
        corpus.append(Array(v1[0..<6]) + [2, 0] + littleEndianBytes([UInt32(v1[8]) | UInt32(v1[9]) << 8]) + Array(v1[10...]))
        try fuzz(.npy, corpus: corpus) { path in
            let array = try NPY.read(path)
            return [(array.shape, array.values.count)]
        }
    }

    func testSafetensorsReaderSurvivesMutatedFiles() throws {
        var corpus: [[UInt8]] = []
        let files: [([String: NamedTensor], [String: String])] = [
            (["w": NamedTensor(shape: [2, 3], values: (0..<6).map(Float.init)), "b": NamedTensor(shape: [3], values: [1, 2, 3])], ["format": "pt"]),
            (["scalar": NamedTensor(shape: [], values: [4])], [:]),
            (["empty": NamedTensor(shape: [2, 0], values: []), "one": NamedTensor(shape: [1, 1, 1], values: [-1])], [:]),
        ]
        for (i, (tensors, metadata)) in files.enumerated() {
            let file = dir.appendingPathComponent("seed\(i).safetensors").path
            try Safetensors.write(tensors, metadata: metadata, to: file)
            corpus.append(try [UInt8](Data(contentsOf: URL(fileURLWithPath: file))))
        }
        corpus.append(safetensorsBytes(
            header: #"{"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, "b": {"dtype": "BF16", "shape": [2], "#
                + #""data_offsets": [4, 8]}, "d": {"dtype": "F64", "shape": [1], "data_offsets": [8, 16]}}"#,
            data: littleEndianBytes([UInt16(0x3c00), 0xc000, 0x3f80, 0x4049]) + littleEndianBytes([(0.25 as Double).bitPattern])))
        try fuzz(.safetensors, corpus: corpus) { path in
            try Safetensors.read(path).tensors.values.map { ($0.shape, $0.values.count) }
        }
    }

    /// Mutates the corpus `LOUPE_FUZZ_ITERATIONS` times from `LOUPE_FUZZ_SEED` and reads each result.
    /// `read` returns each tensor's shape and value count, which must agree.
    private func fuzz(_ format: Format, corpus: [[UInt8]], read: (String) throws -> [(shape: [Int], count: Int)]) throws {
        for (i, bytes) in corpus.enumerated() {
            let file = dir.appendingPathComponent("unmutated-\(i)").path
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            XCTAssertNoThrow(try read(file), "\(format.rawValue) corpus file \(i) must read before it is mutated")
        }
        let seed = try fuzzSetting("LOUPE_FUZZ_SEED", default: Self.defaultSeed)
        let iterations = Int(clamping: try fuzzSetting("LOUPE_FUZZ_ITERATIONS", default: UInt64(Self.defaultIterations)))
        let current = dir.appendingPathComponent("current-input").path
        print("fuzz \(format.rawValue): seed 0x\(String(seed, radix: 16)) (LOUPE_FUZZ_SEED), \(iterations) inputs (LOUPE_FUZZ_ITERATIONS); "
            + "should a reader crash, the input it was reading is \(current)")
        var rng = SplitMix64(state: seed)
        var accepted = 0, refused = 0
        let started = Date()
        for iteration in 0..<iterations {
            let input = mutate(corpus[rng.below(corpus.count)], format, &rng)
            try Data(input).write(to: URL(fileURLWithPath: current))
            do {
                for tensor in try read(current) {
                    XCTAssertEqual(Self.product(tensor.shape), tensor.count,
                                   "input \(iteration) (seed 0x\(String(seed, radix: 16))) read shape \(tensor.shape) with \(tensor.count) values")
                }
                accepted += 1
            } catch let error as TensorFileError {
                refused += 1
                if format == .safetensors && error.description.contains(where: \.isNewline) {
                    XCTFail("input \(iteration) (seed 0x\(String(seed, radix: 16))): the error is not one line: \(error)")
                }
            } catch {
                XCTFail("input \(iteration) (seed 0x\(String(seed, radix: 16))): \(type(of: error)) is not a TensorFileError: \(error); "
                    + "bytes (base64) \(Data(input).base64EncodedString())")
            }
        }
        print("fuzz \(format.rawValue): \(iterations) inputs tried, \(accepted) read, \(refused) refused with TensorFileError, "
            + "no crash (\(String(format: "%.2f", Date().timeIntervalSince(started))) s)")
        XCTAssertEqual(accepted + refused, iterations)
    }

    private static func product(_ shape: [Int]) -> Int? {
        shape.reduce(Optional(1)) { count, dimension in
            count.flatMap { let (p, overflow) = $0.multipliedReportingOverflow(by: dimension); return overflow ? nil : p }
        }
    }

    /// Where a format keeps its header length: byte offset and width (`.npy` 1.0 has 2 bytes, later versions 4).
    private func lengthField(_ bytes: [UInt8], _ format: Format) -> (at: Int, width: Int) {
        format == .safetensors ? (0, 8) : (8, bytes.count > 6 && bytes[6] == 1 ? 2 : 4)
    }

    /// One of three kinds, equally often. Header: mutate only the header text, then write its true length
    /// back, so that most inputs get past the length and syntax checks to the checks of meaning. Data:
    /// mutate only the bytes after the header, length intact. Raw: mutate the whole file, including a
    /// corrupted header length (and, for `.npy`, version).
    private func mutate(_ base: [UInt8], _ format: Format, _ rng: inout SplitMix64) -> [UInt8] {
        let field = lengthField(base, format)
        let length = base[field.at..<(field.at + field.width)].reversed().reduce(0) { $0 << 8 | Int($1) }
        let headerStart = field.at + field.width
        var header = Array(base[headerStart..<(headerStart + length)])
        var data = Array(base[(headerStart + length)...])
        switch rng.below(3) {
        case 0:
            mutateRegion(&header, tokens: format == .safetensors ? Self.jsonTokens : Self.pythonTokens, &rng)
        case 1:
            mutateRegion(&data, tokens: [], &rng)
        default:
            var bytes = base
            for _ in 0...rng.below(2) {
                if rng.below(4) == 0 { corruptHeaderLength(&bytes, format, &rng) } else { mutateRegion(&bytes, tokens: [], &rng) }
            }
            return bytes
        }
        let trueLength = littleEndianBytes([UInt64(header.count)]).prefix(field.width)
        return Array(base[..<field.at]) + trueLength + header + data
    }

    /// Pieces of the header languages, for insertion: what a fuzzer would take ages to spell by chance.
    private static let jsonTokens = [#""F32""#, #""F16""#, #""BF16""#, #""F64""#, #""I32""#, #""BOOL""#, #""dtype""#, #""shape""#,
                                     #""data_offsets""#, #""__metadata__""#, "[]", "[0, 0]", "{}", "null", "true", "-1", "1e3", ",", ":"]
    private static let pythonTokens = ["'<f4'", "'<f8'", "'float32'", "'descr':", "'shape':", "'fortran_order':", "True", "False",
                                       "()", "(0,)", "-1", ",", ":"]
    private static let numbers = ["0", "1", "9", "-1", "00", "65536", "4294967296", "9223372036854775807", "99999999999999999999", "1.5", "1e3"]

    /// One to three stacked edits of `bytes`: bit flips, byte overwrites, insertions (random bytes or a
    /// token), deletions, truncation, digits replaced by edge numbers, and splices of the bytes themselves.
    private func mutateRegion(_ bytes: inout [UInt8], tokens: [String], _ rng: inout SplitMix64) {
        for _ in 0...rng.below(3) {
            switch rng.below(8) {
            case 0 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] ^= 1 << UInt8(rng.below(8))
            case 1 where !bytes.isEmpty:
                bytes[rng.below(bytes.count)] = rng.pick(Self.interesting)
            case 2:
                let inserted = !tokens.isEmpty && rng.below(2) == 0 ? Array(rng.pick(tokens).utf8)
                    : (0...rng.below(16)).map { _ in rng.below(2) == 0 ? rng.pick(Self.interesting) : UInt8(truncatingIfNeeded: rng.next()) }
                bytes.insert(contentsOf: inserted, at: rng.below(bytes.count + 1))
            case 3 where !bytes.isEmpty:
                let start = rng.below(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + rng.below(16)))
            case 4:
                bytes.removeLast(bytes.count - rng.below(bytes.count + 1))
            case 5:
                let digits = bytes.indices.filter { (0x30...0x39).contains(bytes[$0]) }
                guard !digits.isEmpty else { continue }
                let at = rng.pick(digits)
                bytes.replaceSubrange(at...at, with: Array(rng.pick(Self.numbers).utf8))
            default:
                guard !bytes.isEmpty else { continue }
                let start = rng.below(bytes.count)
                let slice = bytes[start..<min(bytes.count, start + 1 + rng.below(64))]
                bytes.insert(contentsOf: slice, at: rng.below(bytes.count + 1))
            }
        }
    }

    /// Overwrites the header length field with an edge value, a near miss of the truth, or noise.
    private func corruptHeaderLength(_ bytes: inout [UInt8], _ format: Format, _ rng: inout SplitMix64) {
        let (start, width) = lengthField(bytes, format)
        guard bytes.count >= start + width else { return }
        if format == .npy && rng.below(4) == 0 { bytes[6] = rng.pick([0, 1, 2, 3, 4, 0xff]) }
        let truth = bytes[start..<(start + width)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let value = rng.pick([0, 1, UInt64.max, UInt64(Int64.max), UInt64(bytes.count), truth &+ 1, truth &- 1,
                              truth &+ UInt64(rng.below(64)), truth &- UInt64(rng.below(64)), rng.next()])
        bytes.replaceSubrange(start..<(start + width), with: littleEndianBytes([value]).prefix(width))
    }
}
