import Foundation
import XCTest

/// Runs `python3 -c script` and returns what it prints. Skips the calling test when python3 is missing,
/// or when the script fails and `reason` names what that means (a module that is not installed);
/// otherwise a failing script is an error carrying its standard error.
func runPython(_ script: String, skippingOnFailure reason: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", script]
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    do { try p.run() } catch { throw XCTSkip("python3 not available") }
    // Read before waiting, so a long output cannot fill the pipe and stall the script.
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    if p.terminationStatus == 127 { throw XCTSkip("python3 not available") }
    if p.terminationStatus != 0 {
        if let reason { throw XCTSkip(reason) }
        throw PythonFailure(description: "python3 exited with status \(p.terminationStatus): \(errors)")
    }
    return text
}

struct PythonFailure: Error, CustomStringConvertible {
    let description: String
}

/// The bytes of a safetensors file with this header text and data; `length` replaces the header length
/// field, to make files that lie about it.
func safetensorsBytes(header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    withUnsafeBytes(of: (length ?? UInt64(header.utf8.count)).littleEndian) { [UInt8]($0) } + Array(header.utf8) + data
}

/// Little-endian bytes of fixed-width integers (bit patterns of whatever the test encodes).
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { [UInt8]($0) } }
}

/// Whether two floats are the same value: equal bit patterns (so -0 differs from +0), or both NaN.
func sameFloat(_ a: Float, _ b: Float) -> Bool { a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN) }

/// A fuzzing setting from the environment (LOUPE_FUZZ_SEED, LOUPE_FUZZ_ITERATIONS): decimal or 0x-hex.
func fuzzSetting(_ name: String, default value: UInt64) throws -> UInt64 {
    guard let text = ProcessInfo.processInfo.environment[name] else { return value }
    let parsed = text.lowercased().hasPrefix("0x") ? UInt64(text.dropFirst(2), radix: 16) : UInt64(text)
    guard let parsed else { throw FuzzSettingError(description: "\(name)=\(text) is not a decimal or 0x-hex integer") }
    return parsed
}

struct FuzzSettingError: Error, CustomStringConvertible {
    let description: String
}
