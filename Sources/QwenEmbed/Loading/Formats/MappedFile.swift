#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only file mapped into memory (or, with `useMmap: false`, read into an
/// owned buffer). Weights are read in place from `bytes`; nothing is copied at load.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The whole file, [size] bytes. Valid for the lifetime of this object.
    public let bytes: UnsafeRawBufferPointer
    private let isMapped: Bool

    public var size: Int { bytes.count }

    public init(path: String, useMmap: Bool = true) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw QwenError.io("\(path): \(MappedFile.errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw QwenError.io("\(path): \(MappedFile.errnoText())") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw QwenError.io("\(path): not a regular file") }
        let size = Int(info.st_size)
        guard size > 0 else { throw QwenError.badModel("\(path): file is empty") }
        if useMmap {
            let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
            guard let address, address != MAP_FAILED else {
                throw QwenError.io("\(path): mmap failed: \(MappedFile.errnoText())")
            }
            bytes = UnsafeRawBufferPointer(start: address, count: size)
            isMapped = true
        } else {
            guard let buffer = malloc(size) else { throw QwenError.outOfMemory("\(path): cannot allocate \(size) bytes") }
            var done = 0
            while done < size {
                let n = read(fd, buffer + done, size - done)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    free(buffer)
                    throw QwenError.io("\(path): read failed at byte \(done): \(MappedFile.errnoText())")
                }
                done += n
            }
            bytes = UnsafeRawBufferPointer(start: buffer, count: size)
            isMapped = false
        }
    }

    /// Tells the kernel that the whole pages inside `range` (part of this file) will not be
    /// read again soon, so they leave this process's resident set (a later read faults them
    /// back from the file). Does nothing for a file read into memory: there the bytes are
    /// the only copy.
    func releasePages(_ range: UnsafeRawBufferPointer) {
        guard isMapped, let start = range.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let end = (Int(bitPattern: start) + range.count) / page * page
        guard end > first, let address = UnsafeMutableRawPointer(bitPattern: first) else { return }
        madvise(address, end - first, MADV_DONTNEED)
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if isMapped { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) } else { free(UnsafeMutableRawPointer(mutating: base)) }
    }

    /// Reads a whole (small) file such as config.json into bytes.
    /// An empty regular file gives no bytes (a mapping of it would be refused).
    public static func readAll(path: String) throws -> [UInt8] {
        var info = stat()
        if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, info.st_size == 0 { return [] }
        let file = try MappedFile(path: path, useMmap: false)
        return Array(file.bytes)
    }

    static func errnoText() -> String {
        guard let text = strerror(errno) else { return "errno \(errno)" }
        return String(cString: text)
    }
}

/// Small filesystem helpers without Foundation.
enum FileSystem {
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Names of the entries of a directory, sorted.
    static func list(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw QwenError.io("\(path): \(MappedFile.errnoText())") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let chars = raw.bindMemory(to: CChar.self)
                return String(cString: chars.baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func lastComponent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.hasSuffix("/") && trimmed.count > 1 { trimmed = trimmed.dropLast() }
        return trimmed.split(separator: "/").last.map(String.init) ?? String(trimmed)
    }
}
