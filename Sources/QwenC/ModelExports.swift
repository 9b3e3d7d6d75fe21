import CQwenHeader
import QwenEmbed
#if canImport(Glibc)
import Glibc
#endif

/// What a `qwen_model *` points at: the Swift model plus the C strings that
/// qwen_model_get_info hands out (alive as long as the handle).
final class ModelHandle {
    let model: Model
    let arch: UnsafeMutablePointer<CChar>
    let weightType: UnsafeMutablePointer<CChar>
    let name: UnsafeMutablePointer<CChar>

    init(model: Model) {
        self.model = model
        arch = strdup(model.info.architecture)
        weightType = strdup(model.info.weightType)
        name = strdup(model.info.name)
    }

    deinit {
        free(arch)
        free(weightType)
        free(name)
    }

    var pointer: OpaquePointer { OpaquePointer(Unmanaged.passRetained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?) throws -> ModelHandle {
        let p = try required(pointer, "model")
        return Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(p)).takeUnretainedValue()
    }
}

@c @implementation public func qwen_model_params_init(_ params: UnsafeMutablePointer<qwen_model_params>?) {
    guard let params else { return }
    params.pointee = defaultModelParams()
}

func defaultModelParams() -> qwen_model_params {
    qwen_model_params(struct_size: UInt32(MemoryLayout<qwen_model_params>.size), n_threads: 0, use_mmap: true,
                      progress: nil, progress_user_data: nil, n_cached_sessions: 0)
}

@c @implementation public func qwen_model_load(_ path: UnsafePointer<CChar>?, _ params: UnsafePointer<qwen_model_params>?,
                                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> qwen_status {
    guarded {
        let out = try required(out, "out")
        out.pointee = nil
        let path = try utf8Argument(path, "path")
        var options = ModelLoadOptions()
        // Only the struct_size bytes the caller declared are read (an older, shorter struct
        // gets the defaults for the rest), as for every params struct.
        let p = try readParams(params, defaults: defaultModelParams(), name: "qwen_model_params")
        options.threads = try threadsArgument(p.n_threads, "n_threads")
        options.useMmap = p.use_mmap
        if let progress = p.progress {
            let userData = p.progress_user_data
            options.progress = { progress($0, userData) }
        }
        let model = try Model.load(path: path, options: options)
        if p.n_cached_sessions != 0 { model.promptCache.capacity = max(0, Int(p.n_cached_sessions)) }
        out.pointee = ModelHandle(model: model).pointer
        return QWEN_OK
    }
}

@c @implementation public func qwen_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelHandle>.fromOpaque(UnsafeRawPointer(model)).release()
}

@c @implementation public func qwen_model_get_info(_ model: OpaquePointer?, _ info: UnsafeMutablePointer<qwen_model_info>?) -> qwen_status {
    guarded {
        let handle = try ModelHandle.from(model)
        let info = try required(info, "info")
        let fullSize = MemoryLayout<qwen_model_info>.size
        let callerSize = info.pointee.struct_size == 0 ? fullSize : Int(info.pointee.struct_size)
        guard callerSize >= MemoryLayout<UInt32>.size else { throw QwenError.invalidArgument("qwen_model_info.struct_size is too small") }
        let m = handle.model.info
        var full = qwen_model_info(
            struct_size: UInt32(min(callerSize, fullSize)), arch: UnsafePointer(handle.arch),
            n_vocab: Int32(m.vocabSize), n_ctx_train: Int32(m.contextLengthTrain), n_layer: Int32(m.layerCount),
            n_embd: Int32(m.hiddenSize), n_head: Int32(m.headCount), n_head_kv: Int32(m.kvHeadCount),
            n_params: m.parameterCount, weight_type: UnsafePointer(handle.weightType), file_bytes: m.fileBytes,
            name: UnsafePointer(handle.name))
        // Copy only as many bytes as the caller's (possibly older, smaller) struct holds.
        withUnsafeBytes(of: &full) { source in
            UnsafeMutableRawPointer(info).copyMemory(from: source.baseAddress!, byteCount: min(callerSize, fullSize))
        }
        return QWEN_OK
    }
}

@c @implementation public func qwen_tokenize(_ model: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLen: Int,
                                             _ parseSpecial: Bool, _ tokens: UnsafeMutablePointer<Int32>?,
                                             _ capacity: Int, _ nTokens: UnsafeMutablePointer<Int>?) -> qwen_status {
    guarded {
        let handle = try ModelHandle.from(model)
        let nTokens = try required(nTokens, "n_tokens")
        nTokens.pointee = 0
        let textLen = try sizeArgument(textLen, "text_len"), capacity = try sizeArgument(capacity, "capacity")
        guard text != nil || textLen == 0 else { throw QwenError.invalidArgument("text is NULL") }
        guard tokens != nil || capacity == 0 else { throw QwenError.invalidArgument("tokens is NULL but capacity is \(capacity)") }
        let bytes = UnsafeRawBufferPointer(start: text.map { UnsafeRawPointer($0) }, count: textLen)
        let ids = try handle.model.tokenizer.encode(utf8: bytes, parseSpecial: parseSpecial)
        return copyOut(ids, to: tokens, capacity: capacity, count: nTokens, what: "token")
    }
}

@c @implementation public func qwen_detokenize(_ model: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ nTokenCount: Int,
                                               _ skipSpecial: Bool, _ buf: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                               _ nBytes: UnsafeMutablePointer<Int>?) -> qwen_status {
    guarded {
        let handle = try ModelHandle.from(model)
        let nBytes = try required(nBytes, "n_bytes")
        nBytes.pointee = 0
        let nTokenCount = try sizeArgument(nTokenCount, "n_tokens"), capacity = try sizeArgument(capacity, "capacity")
        guard tokens != nil || nTokenCount == 0 else { throw QwenError.invalidArgument("tokens is NULL") }
        guard buf != nil || capacity == 0 else { throw QwenError.invalidArgument("buf is NULL but capacity is \(capacity)") }
        let ids = Array(UnsafeBufferPointer(start: tokens, count: nTokenCount))
        let bytes = try handle.model.tokenizer.decode(ids, skipSpecial: skipSpecial)
        let status = copyOut(bytes.map { CChar(bitPattern: $0) }, to: buf, capacity: capacity, count: nBytes, what: "byte")
        if status == QWEN_OK, let buf, bytes.count < capacity { buf[bytes.count] = 0 }
        return status
    }
}

/// The size-query contract: stores the count needed in `count`; copies when it fits,
/// else reports QWEN_ERR_BUFFER_TOO_SMALL.
func copyOut<T>(_ items: [T], to buffer: UnsafeMutablePointer<T>?, capacity: Int,
                count: UnsafeMutablePointer<Int>, what: String) -> qwen_status {
    count.pointee = items.count
    guard items.count <= capacity else {
        LastError.set("the buffer holds \(capacity) \(what)s, \(items.count) needed")
        return QWEN_ERR_BUFFER_TOO_SMALL
    }
    if let buffer {
        items.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { buffer.update(from: base, count: source.count) }
        }
    }
    return QWEN_OK
}
