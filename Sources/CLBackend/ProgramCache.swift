import Foundation

/// An on-disk cache of built program binaries.
///
/// Key: platform name and version, device name, driver version, build options and a hash of the
/// source. The full key is stored in the file and compared on load, so a hash collision can only
/// cost a rebuild, never load a wrong binary. Location: `LOUPE_KERNEL_CACHE` (a directory), else
/// `$XDG_CACHE_HOME/loupe/kernels`, else `~/.cache/loupe/kernels`. `LOUPE_KERNEL_CACHE_DISABLE=1`
/// turns it off. A cache that cannot be written is skipped silently: it only ever saves time.
public struct ProgramCache: Sendable {
    public static let locationVariable = "LOUPE_KERNEL_CACHE"
    public static let disableVariable = "LOUPE_KERNEL_CACHE_DISABLE"

    public let directory: URL?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let off = environment[Self.disableVariable], off == "1" || off.lowercased() == "true" {
            directory = nil
        } else if let dir = environment[Self.locationVariable], !dir.isEmpty {
            directory = URL(fileURLWithPath: dir, isDirectory: true)
        } else if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            directory = URL(fileURLWithPath: xdg, isDirectory: true).appendingPathComponent("loupe/kernels")
        } else {
            directory = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/loupe/kernels")
        }
    }

    static func key(profile: DeviceProfile, options: String, source: String) -> String {
        [profile.platformName, profile.platformVersion, profile.name, profile.driverVersion, options,
         String(fnv1a64(Array(source.utf8)), radix: 16)].joined(separator: "|")
    }

    func fileURL(forKey key: String) -> URL? {
        directory?.appendingPathComponent(String(fnv1a64(Array(key.utf8)), radix: 16) + ".clbin")
    }

    func load(key: String) -> [UInt8]? {
        guard let url = fileURL(forKey: key), let data = try? Data(contentsOf: url) else { return nil }
        let bytes = [UInt8](data)
        guard let newline = bytes.firstIndex(of: 0x0A), String(decoding: bytes[..<newline], as: UTF8.self) == key else { return nil }
        return Array(bytes[(newline + 1)...])
    }

    func store(key: String, binary: [UInt8]) {
        guard let url = fileURL(forKey: key), !binary.isEmpty else { return }
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = url.appendingPathExtension("tmp\(ProcessInfo.processInfo.processIdentifier)")
        guard (try? Data(Array(key.utf8) + [0x0A] + binary).write(to: tmp)) != nil else { return }
        if rename(tmp.path, url.path) != 0 { try? FileManager.default.removeItem(at: tmp) }
    }
}

/// FNV-1a, 64 bit: a fast non-cryptographic hash for cache keys.
public func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

/// How the backend's program came to be: compiled from source or loaded from the cache, and how long it took.
public struct ProgramBuildReport: Sendable, CustomStringConvertible {
    public let cacheHit: Bool
    public let seconds: Double
    public let cacheFile: String?
    public var description: String {
        (cacheHit ? "loaded from the kernel cache" : "compiled from source") + String(format: " in %.3f s", seconds)
            + (cacheFile.map { " (\($0))" } ?? " (cache disabled)")
    }
}
