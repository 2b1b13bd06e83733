import Foundation
import Graph
import XCTest

/// safetensors files against Python: the `safetensors` package as the oracle when it is importable, and
/// otherwise files built and parsed byte by byte with the standard library's `struct` and `json`.
final class SafetensorsTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    /// Tensors of every awkward kind: several dimensions, a scalar, an empty dimension, names that sort
    /// differently by text and by number, a slash, a non-ASCII letter.
    private func sampleTensors() -> [String: NamedTensor] {
        [
            "layer.10.weight": NamedTensor(shape: [2, 3, 4], values: (0..<24).map { _ in Float.random(in: -10...10) }),
            "layer.2.bias": NamedTensor(shape: [5], values: (0..<5).map { _ in Float.random(in: -1...1) }),
            "scale": NamedTensor(shape: [], values: [Float.random(in: 0...2)]),
            "empty": NamedTensor(shape: [3, 0, 2], values: []),
            "a/b.ü": NamedTensor(shape: [1, 1], values: [-0.0]),
        ]
    }

    func testRoundTrip() throws {
        let tensors = sampleTensors()
        let metadata = ["format": "pt", "note": "quotes \" and / slashes"]
        let file = path("round.safetensors")
        try Safetensors.write(tensors, metadata: metadata, to: file)
        let back = try Safetensors.read(file)
        XCTAssertEqual(back.metadata, metadata)
        XCTAssertEqual(Set(back.tensors.keys), Set(tensors.keys))
        for (name, tensor) in tensors {
            XCTAssertEqual(back.tensors[name]?.shape, tensor.shape, name)
            XCTAssertTrue(zip(back.tensors[name]?.values ?? [], tensor.values).allSatisfy { sameFloat($0, $1) }, name)
            XCTAssertEqual(back.tensors[name]?.values.count, tensor.values.count, name)
        }
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        let headerLength = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(headerLength % 8, 0, "the header is padded so that the data starts 8-byte aligned")
        let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        XCTAssertEqual(header.reversed().drop { $0 == " " }.first, "}", "the header is padded with spaces only")

        let none = path("none.safetensors")
        try Safetensors.write([:], to: none)
        XCTAssertEqual(try Safetensors.read(none), SafetensorsFile(tensors: [:]))
    }

    func testWriteRefusals() throws {
        let file = path("refused.safetensors")
        XCTAssertThrowsError(try Safetensors.write(["a": NamedTensor(shape: [2, 2], values: [1, 2, 3])], to: file)) {
            XCTAssertTrue("\($0)".contains("do not fill shape [2, 2]"), "\($0)")
        }
        XCTAssertThrowsError(try Safetensors.write(["a": NamedTensor(shape: [-1, -1], values: [1])], to: file)) {
            XCTAssertTrue("\($0)".contains("do not fill shape"), "\($0)")
        }
        XCTAssertThrowsError(try Safetensors.write(["__metadata__": NamedTensor(shape: [1], values: [1])], to: file)) {
            XCTAssertTrue("\($0)".contains("reserved"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))

        try Safetensors.write(["a": NamedTensor(shape: [1], values: [1])], to: file)
        XCTAssertThrowsError(try Safetensors.write(["a": NamedTensor(shape: [1], values: [2])], to: file)) {
            XCTAssertTrue("\($0)".contains("not overwriting"), "\($0)")
        }
        XCTAssertEqual(try Safetensors.read(file).tensors["a"]?.values, [1])
        try Safetensors.write(["a": NamedTensor(shape: [1], values: [2])], to: file, overwrite: true)
        XCTAssertEqual(try Safetensors.read(file).tensors["a"]?.values, [2])
    }

    /// Python writes F32, F16, BF16 and F64; Swift must read the same values. Every F16 and BF16 value
    /// here is exact in its format, so the float32 values must match bit for bit; F64 rounds to nearest.
    func testReadsWhatPythonWrites() throws {
        let f32: [Double] = [0, -0.0, 1, -1.5, Double(Float.greatestFiniteMagnitude), Double(Float.leastNonzeroMagnitude)] + (0..<6).map { _ in Double(Float.random(in: -10...10)) }
        let f16: [Double] = [0, -0.0, 1, -2.5, 65504, 0x1p-14, 0x1p-24, 3 * 0x1p-24, 1023 * 0x1p-24, 0.333251953125, .infinity, -.infinity, .nan]
        let bf16: [Double] = [1, -3.140625, 0x1p100, -0x1p-126, 0x1p-133, 0.0078125, 3.3895313892515355e38, .infinity, .nan]
        let f64: [Double] = [0.1, 1.0 / 3, 1e300, -1e300, 1e-50, 1 + 0x1p-24, 0x1p-149, 123456789.123]
        func list(_ values: [Double]) -> String { "[float(s) for s in [" + values.map { "'\($0)'" }.joined(separator: ", ") + "]]" }
        let handmade = path("handmade.safetensors")
        let library = path("library.safetensors")
        let printed = try runPython("""
            import json, struct
            f32, f16, bf16, f64 = \(list(f32)), \(list(f16)), \(list(bf16)), \(list(f64))
            def bits(x): return struct.unpack('<I', struct.pack('<f', x))[0]
            tensors = [
                ('f64', 'F64', [len(f64)], b''.join(struct.pack('<d', v) for v in f64)),
                ('f32', 'F32', [2, 6], b''.join(struct.pack('<f', v) for v in f32)),
                ('bf16', 'BF16', [len(bf16)], b''.join(struct.pack('<H', bits(v) >> 16) for v in bf16)),
                ('f16', 'F16', [len(f16)], b''.join(struct.pack('<e', v) for v in f16)),
                ('empty', 'F16', [0, 4], b''),
                ('scalar', 'F64', [], struct.pack('<d', 2.5)),
            ]
            header, data = {'__metadata__': {'format': 'np', 'note': 'ü'}}, b''
            for name, dtype, shape, raw in tensors:
                header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
                data += raw
            text = json.dumps(header).encode()
            text += b' ' * (-len(text) % 8)
            open('\(handmade)', 'wb').write(struct.pack('<Q', len(text)) + text + data)
            try:
                import numpy as np
                from safetensors.numpy import save_file
            except ImportError:
                print('stdlib')
            else:
                save_file({'f32': np.array(f32, np.float32).reshape(2, 6), 'f16': np.array(f16, np.float16),
                           'f64': np.array(f64, np.float64), 'empty': np.zeros((0, 4), np.float16),
                           'scalar': np.array(2.5, np.float64)}, '\(library)', metadata={'format': 'np', 'note': 'ü'})
                print('library')
            """)
        let expected: [String: NamedTensor] = [
            "f32": NamedTensor(shape: [2, 6], values: f32.map(Float.init)),
            "f16": NamedTensor(shape: [f16.count], values: f16.map(Float.init)),
            "bf16": NamedTensor(shape: [bf16.count], values: bf16.map(Float.init)),
            "f64": NamedTensor(shape: [f64.count], values: f64.map(Float.init)),
            "empty": NamedTensor(shape: [0, 4], values: []),
            "scalar": NamedTensor(shape: [], values: [2.5]),
        ]
        var files = [handmade]
        if printed.contains("library") { files.append(library) } else { print("safetensors is not importable; Python wrote the reference file with struct and json") }
        for file in files {
            let read = try Safetensors.read(file)
            XCTAssertEqual(read.metadata, ["format": "np", "note": "ü"], file)
            for (name, tensor) in expected where file == handmade || name != "bf16" {
                let got = try XCTUnwrap(read.tensors[name], "\(file): \(name)")
                XCTAssertEqual(got.shape, tensor.shape, "\(file): \(name)")
                XCTAssertEqual(got.values.count, tensor.values.count, "\(file): \(name)")
                for (g, e) in zip(got.values, tensor.values) { XCTAssertTrue(sameFloat(g, e), "\(file): \(name): read \(g), expected \(e)") }
            }
        }
        // Rounding to nearest, checked by hand: a tie goes to even, beyond float32's range is infinite.
        let f64Read = try Safetensors.read(handmade).tensors["f64"]?.values ?? []
        guard f64Read.count == f64.count else { return XCTFail("read \(f64Read.count) F64 values, wrote \(f64.count)") }
        XCTAssertEqual(f64Read[0], 0.1)
        XCTAssertEqual(f64Read[2], .infinity)
        XCTAssertEqual(f64Read[3], -.infinity)
        XCTAssertEqual(f64Read[4], 0)
        XCTAssertEqual(f64Read[5], 1, "1 + 2^-24 lies halfway between 1 and the next float32; the tie goes to even")
        XCTAssertEqual(f64Read[6], .leastNonzeroMagnitude)
    }

    /// Swift writes; Python parses the bytes with struct and json (and loads them with the safetensors
    /// package when importable) and prints what it found.
    func testPythonReadsWhatWeWrite() throws {
        let tensors = sampleTensors()
        let metadata = ["format": "pt", "source": "Loupe"]
        let file = path("ours.safetensors")
        try Safetensors.write(tensors, metadata: metadata, to: file)
        let printed = try runPython("""
            import json, struct
            raw = open('\(file)', 'rb').read()
            n, = struct.unpack('<Q', raw[:8])
            text = raw[8:8 + n].decode('utf-8')
            header, data = json.loads(text), raw[8 + n:]
            out = {'aligned': n % 8 == 0 and text.rstrip(' ').endswith('}'), 'metadata': header.pop('__metadata__', {}),
                   'order': sorted(header, key=lambda k: header[k]['data_offsets']), 'tensors': {}}
            for name, t in header.items():
                begin, end = t['data_offsets']
                out['tensors'][name] = {'dtype': t['dtype'], 'shape': t['shape'],
                                        'values': list(struct.unpack('<%df' % ((end - begin) // 4), data[begin:end]))}
            try:
                from safetensors import safe_open
            except ImportError:
                out['library'] = None
            else:
                with safe_open('\(file)', 'np') as f:
                    out['library'] = {'metadata': f.metadata(), 'tensors': {k: {'dtype': str(f.get_tensor(k).dtype),
                        'shape': list(f.get_tensor(k).shape), 'values': f.get_tensor(k).ravel().astype(float).tolist()} for k in f.keys()}}
            print(json.dumps(out))
            """)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        XCTAssertEqual(report["aligned"] as? Bool, true)
        XCTAssertEqual(report["order"] as? [String], tensors.keys.sorted(), "data is laid out in sorted-name order")
        var readers: [(String, [String: Any])] = [("struct/json", report)]
        if let library = report["library"] as? [String: Any] { readers.append(("safetensors", library)) } else {
            print("safetensors is not importable; Python parsed the file with struct and json")
        }
        for (reader, found) in readers {
            XCTAssertEqual(found["metadata"] as? [String: String], metadata, reader)
            let parsed = try XCTUnwrap(found["tensors"] as? [String: [String: Any]], reader)
            XCTAssertEqual(Set(parsed.keys), Set(tensors.keys), reader)
            for (name, tensor) in tensors {
                let t = try XCTUnwrap(parsed[name], "\(reader): \(name)")
                XCTAssertTrue(["F32", "float32"].contains(t["dtype"] as? String ?? ""), "\(reader): \(name): \(t["dtype"] ?? "no dtype")")
                XCTAssertEqual(t["shape"] as? [Int], tensor.shape, "\(reader): \(name)")
                let values = (t["values"] as? [Double] ?? []).map(Float.init)
                XCTAssertEqual(values.count, tensor.values.count, "\(reader): \(name)")
                XCTAssertTrue(zip(values, tensor.values).allSatisfy { sameFloat($0, $1) }, "\(reader): \(name)")
            }
        }
    }

    /// Each check of the reader, with a file made to fail it; the error names the file and the problem.
    func testRefusesMalformedFiles() throws {
        let four = littleEndianBytes([UInt32](repeating: 0x3f80_0000, count: 4))
        func tensor(_ name: String, _ dtype: String = "F32", _ shape: String = "[4]", _ offsets: String = "[0, 16]") -> String {
            #""\#(name)": {"dtype": "\#(dtype)", "shape": \#(shape), "data_offsets": \#(offsets)}"#
        }
        let cases: [(name: String, bytes: [UInt8], expected: String)] = [
            ("short", [1, 0, 0], "too short for the 8-byte header length"),
            ("long-header", safetensorsBytes(header: "{}", length: 3), "header length 3 runs past the end"),
            ("huge-header", safetensorsBytes(header: "{}", length: .max), "header length 18446744073709551615 runs past"),
            ("empty-header", safetensorsBytes(header: ""), "not well-formed JSON"),
            ("bad-json", safetensorsBytes(header: #"{"a": {"dtype": "F32",}"#), "not well-formed JSON"),
            ("deep-json", safetensorsBytes(header: #"{"a": "# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"),
             "not well-formed JSON"),
            ("not-object", safetensorsBytes(header: "[1, 2]"), "header is not a JSON object"),
            ("entry-not-object", safetensorsBytes(header: #"{"a": 3}"#), "tensor 'a' is not a JSON object"),
            ("control-name", safetensorsBytes(header: #"{"a\nb\u2028": {"dtype": "I8\r", "shape": [], "data_offsets": [0, 1]}}"#, data: [1]),
             #"tensor 'a\nb\u{2028}' has dtype 'I8\r'"#),
            ("unknown-field", safetensorsBytes(header: #"{"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4], "x": 1}}"#, data: four),
             "tensor 'a' has unknown fields 'x'"),
            ("no-dtype", safetensorsBytes(header: #"{"a": {"shape": [4], "data_offsets": [0, 16]}}"#, data: four), "tensor 'a' has no dtype"),
            ("i32", safetensorsBytes(header: "{\(tensor("ids", "I32"))}", data: four), "tensor 'ids' has dtype 'I32'; Loupe reads F32, F16, BF16 and F64 only"),
            ("bool", safetensorsBytes(header: "{\(tensor("mask", "BOOL", "[16]"))}", data: four), "tensor 'mask' has dtype 'BOOL'"),
            ("f8", safetensorsBytes(header: "{\(tensor("q", "F8_E4M3", "[16]"))}", data: four), "tensor 'q' has dtype 'F8_E4M3'"),
            ("negative-dim", safetensorsBytes(header: "{\(tensor("a", "F32", "[-4]"))}", data: four), "shape must be an array of non-negative integers"),
            ("fraction-dim", safetensorsBytes(header: "{\(tensor("a", "F32", "[4.5]"))}", data: four), "shape must be an array"),
            ("bool-dim", safetensorsBytes(header: "{\(tensor("a", "F32", "[true, 4]"))}", data: four), "shape must be an array"),
            ("shape-string", safetensorsBytes(header: "{\(tensor("a", "F32", "\"4\""))}", data: four), "shape must be an array"),
            ("one-offset", safetensorsBytes(header: "{\(tensor("a", "F32", "[4]", "[16]"))}", data: four), "data_offsets must be [begin, end]"),
            ("reversed-offsets", safetensorsBytes(header: "{\(tensor("a", "F32", "[0]", "[16, 0]"))}", data: four), "data_offsets must be [begin, end]"),
            ("negative-offset", safetensorsBytes(header: "{\(tensor("a", "F32", "[4]", "[-16, 0]"))}", data: four), "data_offsets must be [begin, end]"),
            ("past-data", safetensorsBytes(header: "{\(tensor("a", "F32", "[5]", "[0, 20]"))}", data: four), "data_offsets [0, 20] run past the 16-byte data section"),
            ("huge-offset", safetensorsBytes(header: "{\(tensor("a", "F32", "[4]", "[0, 18446744073709551615]"))}", data: four), "data_offsets must be [begin, end]"),
            ("overflow", safetensorsBytes(header: "{\(tensor("a", "F32", "[4294967296, 4294967296]"))}", data: four), "more elements than an Int can count"),
            ("byte-count", safetensorsBytes(header: "{\(tensor("a", "F32", "[3]"))}", data: four), "shape [3] of F32 needs 12 bytes, data_offsets [0, 16] hold 16"),
            ("f16-count", safetensorsBytes(header: "{\(tensor("a", "F16", "[4]"))}", data: four), "shape [4] of F16 needs 8 bytes"),
            ("overlap", safetensorsBytes(header: "{\(tensor("a", "F32", "[2]", "[0, 8]")), \(tensor("b", "F32", "[2]", "[4, 12]"))}", data: four),
             "tensors 'a' [0, 8] and 'b' [4, 12] overlap"),
            ("gap", safetensorsBytes(header: "{\(tensor("a", "F32", "[1]", "[0, 4]")), \(tensor("b", "F32", "[2]", "[8, 16]"))}", data: four),
             "data bytes 4..<8 belong to no tensor"),
            ("late-start", safetensorsBytes(header: "{\(tensor("a", "F32", "[3]", "[4, 16]"))}", data: four), "data bytes 0..<4 belong to no tensor"),
            ("trailing", safetensorsBytes(header: "{\(tensor("a", "F32", "[3]", "[0, 12]"))}", data: four), "data bytes 12..<16 belong to no tensor"),
            ("no-tensors", safetensorsBytes(header: "{}", data: four), "data bytes 0..<16 belong to no tensor"),
            ("metadata-not-object", safetensorsBytes(header: #"{"__metadata__": ["a"]}"#), "__metadata__ is not a JSON object"),
            ("metadata-number", safetensorsBytes(header: #"{"__metadata__": {"epoch": 3}}"#), "__metadata__ value 'epoch' is not a string"),
        ]
        for c in cases {
            let file = path("\(c.name).safetensors")
            try Data(c.bytes).write(to: URL(fileURLWithPath: file))
            XCTAssertThrowsError(try Safetensors.read(file), c.name) { error in
                XCTAssertTrue(error is TensorFileError, "\(c.name): \(type(of: error))")
                let message = "\(error)"
                XCTAssertTrue(message.contains(file) && message.contains(c.expected), "\(c.name): \(message)")
                XCTAssertFalse(message.contains("\n"), "\(c.name): one line")
            }
        }
        XCTAssertThrowsError(try Safetensors.read(path("missing.safetensors"))) { XCTAssertTrue("\($0)".contains("cannot read"), "\($0)") }
    }
}
