import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import QwenEmbed
import Synchronization

/// The request context: Hummingbird's core storage, the client's address, and a note
/// the handler leaves for the request log.
struct ServerContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    /// The connection (ClientWatch closes its input after a generation).
    let channel: any Channel
    let client: String
    let note = Note()

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
        client = source.channel.remoteAddress?.ipAddress ?? "-"
    }

    final class Note: Sendable {
        private let text = Mutex("")
        func set(_ value: String) { text.withLock { $0 = value } }
        var value: String { text.withLock { $0 } }
    }
}

struct ServerSettings: Sendable {
    var modelID: String
    var parallel = 2
    var queue = 16
    var sessionOptions = SessionOptions()
    var apiKey: String? = nil
    var page: String
    var quiet = false
}

/// The OpenAI-compatible API and the chat page over one loaded model.
final class QwenServer: Sendable {
    static let maxBody = 32 * 1024 * 1024

    let model: Model
    let settings: ServerSettings
    let admission: Admission
    let created = Int(Date().timeIntervalSince1970)
    /// The calls under way, cancelled at shutdown (after which every new call is too).
    private let calls = Mutex((shuttingDown: false, active: [ObjectIdentifier: EngineCall]()))

    init(model: Model, settings: ServerSettings) {
        self.model = model
        self.settings = settings
        admission = Admission(slots: settings.parallel, queue: settings.queue)
    }

    var modelID: String { settings.modelID }

    func router() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        // Outermost first. Browser apps on other origins may call the API (with
        // --api-key they still need the key); preflights need none.
        router.add(middleware: CORSMiddleware(allowOrigin: .all, allowHeaders: [.accept, .authorization, .contentType, .origin],
                                              allowMethods: [.get, .post, .options]))
        router.add(middleware: RequestLogMiddleware(quiet: settings.quiet))
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: APIKeyMiddleware(key: settings.apiKey))

        let page = settings.page
        router.get("/") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
        }
        router.get("/health") { [self] _, _ -> Response in
            let (running, waiting) = admission.counts
            return json(.object([("status", .string("ok")), ("model", .string(modelID)),
                                 ("running", .int(running)), ("waiting", .int(waiting))]))
        }
        router.get("/v1/models") { [self] _, _ -> Response in
            json(.object([("object", .string("list")), ("data", .array([modelCard()]))]))
        }
        router.get("/v1/models/:name") { [self] _, context -> Response in
            let name = context.parameters.get("name") ?? ""
            guard name == modelID else {
                throw RequestError(status: 404, message: "no model '\(name)'; this server serves '\(modelID)'",
                                   kind: "not_found_error")
            }
            return json(modelCard())
        }
        router.post("/v1/chat/completions") { [self] request, context -> Response in
            var request = request
            let chat = try RequestParser.chat(try await readJSON(&request))
            return try await chatCompletion(chat, request: request, context: context)
        }
        router.post("/v1/completions") { [self] request, context -> Response in
            var request = request
            let completion = try RequestParser.completion(try await readJSON(&request))
            return try await textCompletion(completion, request: request, context: context)
        }
        return router
    }

    private func modelCard() -> JSON {
        .object([("id", .string(modelID)), ("object", .string("model")), ("created", .int(created)),
                 ("owned_by", .string("qwen-embed"))])
    }

    private func readJSON(_ request: inout Request) async throws -> JSON {
        let tooLarge = RequestError(status: 413, message: "the request body is over \(Self.maxBody) bytes")
        if let length = request.headers[.contentLength] {
            guard let n = Int(length), n <= Self.maxBody else { throw tooLarge }
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: Self.maxBody)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw tooLarge
        }
        do {
            return try JSON.parse(Array(buffer.readableBytesView))
        } catch {
            throw RequestError.bad("the body is not valid JSON: \(error)")
        }
    }

    // MARK: chat

    private func chatCompletion(_ chat: ChatRequest, request: Request, context: ServerContext) async throws -> Response {
        guard let query = chat.conversation.last else { throw RequestError.bad("no messages", param: "messages") }
        let history = Array(chat.conversation.dropLast())
        let id = "chatcmpl-" + randomHex(24)
        let stamp = Int(Date().timeIntervalSince1970)
        let modelID = modelID
        let options = settings.sessionOptions
        let hasTools = !chat.tools.isEmpty

        /// The assistant message of the reply as OpenAI writes it (its thought as
        /// reasoning_content), and the finish reason a tool call sets.
        @Sendable func message(_ outcome: Outcome) -> (JSON, String?) {
            guard let reply = outcome.reply else {
                return (.object([("role", .string("assistant")), ("content", .string(outcome.result.text))]), nil)
            }
            var members: [(String, JSON)] = [("role", .string("assistant")),
                                             ("content", reply.content.isEmpty && !reply.toolCalls.isEmpty ? .null : .string(reply.content))]
            if let reasoning = reply.reasoning { members.append(("reasoning_content", .string(reasoning))) }
            guard let first = reply.toolCalls.first else { return (.object(members), nil) }
            func function(_ call: ToolCall) -> JSON {
                .object([("name", .string(call.name)), ("arguments", .string(call.arguments))])
            }
            if chat.legacyFunctions {
                return (.object(members + [("function_call", function(first))]), "function_call")
            }
            let calls = reply.toolCalls.map { call in
                JSON.object([("id", .string("call_" + randomHex(24))), ("type", .string("function")), ("function", function(call))])
            }
            return (.object(members + [("tool_calls", .array(calls))]), "tool_calls")
        }

        @Sendable func chunk(_ delta: JSON, _ finish: String? = nil) -> JSON {
            .object([("id", .string(id)), ("object", .string("chat.completion.chunk")), ("created", .int(stamp)),
                     ("model", .string(modelID)),
                     ("choices", .array([.object([("index", .int(0)), ("delta", delta), ("logprobs", .null),
                                                  ("finish_reason", finish.map(JSON.string) ?? .null)])]))])
        }

        let shape = ResponseShape(
            whole: { outcome in
                let (message, finish) = message(outcome)
                return .object([
                    ("id", .string(id)), ("object", .string("chat.completion")), ("created", .int(stamp)),
                    ("model", .string(modelID)),
                    ("choices", .array([.object([("index", .int(0)), ("message", message), ("logprobs", .null),
                                                 ("finish_reason", .string(finish ?? finishReason(outcome.result)))])])),
                    ("usage", usage(outcome.result)),
                ])
            },
            opening: chunk(.object([("role", .string("assistant")), ("content", .string(""))])),
            piece: { text in chunk(.object([("content", .string(text))])) },
            closing: { outcome in
                var events: [JSON] = []
                var finish = finishReason(outcome.result)
                if hasTools {   // the parsed reply, once complete
                    let (message, callFinish) = message(outcome)
                    var delta = (message.objectMembers ?? []).filter { $0.key != "role" }
                    if let i = delta.firstIndex(where: { $0.key == "tool_calls" }), let calls = delta[i].value.array {
                        delta[i].value = .array(calls.enumerated().map { index, call in
                            .object((call.objectMembers ?? []) + [("index", .int(index))])
                        })
                    }
                    events.append(chunk(.object(delta)))
                    finish = callFinish ?? finish
                }
                events.append(chunk(.object([]), finish))
                if chat.includeUsage {
                    events.append(.object([("id", .string(id)), ("object", .string("chat.completion.chunk")),
                                           ("created", .int(stamp)), ("model", .string(modelID)),
                                           ("choices", .array([])), ("usage", usage(outcome.result))]))
                }
                return events
            },
            note: { r in
                "chat \(r.promptTokens)+\(r.generatedTokens) tokens (\(r.cachedTokens) cached) \(finishReason(r))"
            })

        return try await generate(
            request: request, context: context, stream: chat.stream, shape: shape, streamPieces: !hasTools,
            acquire: { model in
                try model.acquireSession(conversation: history, systemPrompt: chat.system, tools: chat.tools,
                                         options: options)
            },
            work: { session, onPiece in
                let result = try session.chat([query], parameters: chat.generation, onPiece: onPiece)
                return Outcome(result: result, reply: session.history.last)
            })
    }

    // MARK: completions

    private func textCompletion(_ completion: CompletionRequest, request: Request, context: ServerContext) async throws -> Response {
        let id = "cmpl-" + randomHex(24)
        let stamp = Int(Date().timeIntervalSince1970)
        let modelID = modelID
        let options = settings.sessionOptions

        @Sendable func choice(_ text: String, _ finish: String?) -> JSON {
            .object([("id", .string(id)), ("object", .string("text_completion")), ("created", .int(stamp)),
                     ("model", .string(modelID)),
                     ("choices", .array([.object([("index", .int(0)), ("text", .string(text)), ("logprobs", .null),
                                                  ("finish_reason", finish.map(JSON.string) ?? .null)])]))])
        }

        let shape = ResponseShape(
            whole: { outcome in
                guard case .object(var members) = choice(outcome.result.text, finishReason(outcome.result)) else { return .null }
                members.append(("usage", usage(outcome.result)))
                return .object(members)
            },
            opening: nil,
            piece: { text in choice(text, nil) },
            closing: { outcome in
                var events = [choice("", finishReason(outcome.result))]
                if completion.includeUsage {
                    events.append(.object([("id", .string(id)), ("object", .string("text_completion")),
                                           ("created", .int(stamp)), ("model", .string(modelID)),
                                           ("choices", .array([])), ("usage", usage(outcome.result))]))
                }
                return events
            },
            note: { r in "generate \(r.promptTokens)+\(r.generatedTokens) tokens" })

        return try await generate(
            request: request, context: context, stream: completion.stream, shape: shape, streamPieces: true,
            acquire: { model in
                try model.acquireSession(promptTokens: model.tokenizer.encode(completion.prompt), options: options)
            },
            work: { session, onPiece in
                Outcome(result: try session.generate(prompt: completion.prompt, parameters: completion.generation,
                                                     onPiece: onPiece),
                        reply: nil)
            })
    }

    // MARK: running a call

    /// Cancels every call under way and every later one (the server is shutting down).
    func cancelAllCalls() {
        let active = calls.withLock { c in
            c.shuttingDown = true
            return Array(c.active.values)
        }
        for call in active { call.cancel() }
    }

    private func register(_ call: EngineCall) {
        let cancel = calls.withLock { c in
            c.active[ObjectIdentifier(call)] = call
            return c.shuttingDown
        }
        if cancel { call.cancel() }
    }

    private func unregister(_ call: EngineCall) {
        calls.withLock { _ = $0.active.removeValue(forKey: ObjectIdentifier(call)) }
    }

    /// How one route writes a call's outcome: whole (not streamed), or as server-sent
    /// events (`opening`, one per piece, then `closing` and [DONE]).
    struct ResponseShape: Sendable {
        var whole: @Sendable (Outcome) -> JSON
        var opening: JSON?
        var piece: @Sendable (String) -> JSON
        var closing: @Sendable (Outcome) -> [JSON]
        var note: @Sendable (GenerationResult) -> String
    }

    /// Admission, the engine call on its own thread, then the response. The first event
    /// is awaited before answering, so a failure in the prefill still gets its HTTP status.
    /// A client that leaves (waiting, prefilling or generating) has its call cancelled;
    /// slot and session are given back whatever happens.
    private func generate(request: Request, context: ServerContext, stream: Bool, shape: ResponseShape,
                          streamPieces: Bool,
                          acquire: @escaping @Sendable (Model) throws -> Session,
                          work: @escaping @Sendable (Session, @escaping (String) -> Bool) throws -> Outcome) async throws -> Response {
        let watch = ClientWatch(request, channel: context.channel)
        let admitted: Bool
        do {
            admitted = try await admission.enter(watch)
        } catch {
            await watch.stop()
            return errorResponse(RequestError.from(error), close: true)
        }
        guard admitted else {
            await watch.stop()
            context.note.set(" (client left while waiting; cancelled)")
            return clientGone()
        }
        let call = EngineCall(model: model, streamPieces: streamPieces, acquire: acquire, work: work)
        register(call)
        let lease = Lease(call: call, admission: admission, watch: watch) { [weak self] in self?.unregister(call) }
        watch.onGone { call.cancel() }
        let note = context.note

        /// Why a cancelled call was cancelled: its client left (nil: nobody to answer), or
        /// the server is shutting down.
        @Sendable func cancellation() -> RequestError? {
            if watch.isGone {
                note.set(" (client left; cancelled)")
                return nil
            }
            note.set(" (cancelled: shutting down)")
            return RequestError(status: 503, message: "the server is shutting down; the call was cancelled",
                                kind: "server_error")
        }

        let first = await lease.call.next()
        if case .failed(let error)? = first {
            await lease.end()
            if lease.call.isCancelled {
                return cancellation().map { errorResponse($0, close: true) } ?? clientGone()
            }
            return errorResponse(RequestError.from(error), close: true)
        }

        if !stream {
            var event = first
            while let current = event {
                switch current {
                case .piece:
                    event = await lease.call.next()
                case .finished(let outcome):
                    await lease.end()
                    if lease.call.isCancelled {
                        return cancellation().map { errorResponse($0, close: true) } ?? clientGone()
                    }
                    note.set(" " + shape.note(outcome.result))
                    return json(shape.whole(outcome), close: true)
                case .failed(let error):
                    await lease.end()
                    if lease.call.isCancelled {
                        return cancellation().map { errorResponse($0, close: true) } ?? clientGone()
                    }
                    return errorResponse(RequestError.from(error), close: true)
                }
            }
            await lease.end()
            return errorResponse(RequestError(status: 500, message: "the engine call ended without a result",
                                              kind: "server_error"), close: true)
        }

        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"]
        if let noBuffering = HTTPField.Name("X-Accel-Buffering") { headers[noBuffering] = "no" }
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            func send(_ event: JSON) async throws {
                try await writer.write(ByteBuffer(string: "data: " + event.text + "\n\n"))
            }
            do {
                if let opening = shape.opening { try await send(opening) }
                var event = first
                while let current = event {
                    switch current {
                    case .piece(let text):
                        try await send(shape.piece(text))
                    case .finished(let outcome):
                        // Slot and session are given back before the client sees the end,
                        // so its next request finds them free.
                        await lease.end()
                        if lease.call.isCancelled {
                            if let error = cancellation() { try await send(error.body) }
                        } else {
                            note.set(" " + shape.note(outcome.result))
                            for closing in shape.closing(outcome) { try await send(closing) }
                            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                        }
                        try await writer.finish(nil)
                        return
                    case .failed(let error):
                        await lease.end()
                        if lease.call.isCancelled {
                            if let error = cancellation() { try await send(error.body) }
                        } else {
                            try await send(RequestError.from(error).body)
                        }
                        try await writer.finish(nil)
                        return
                    }
                    event = await lease.call.next()
                }
                await lease.end()
                try await writer.finish(nil)
            } catch {
                // Writing failed: the client is gone.
                lease.call.cancel()
                await lease.end()
                note.set(" (client left; cancelled)")
                throw error
            }
        })
    }
}

/// A request's hold on the engine: its admission slot, its engine call and the watch on
/// its client. `end()` cancels the call if it still runs, waits until its thread is done
/// with the engine, gives the slot back and stops the watch, once. Should a response never
/// be written (its body dropped), the lease ends itself when released.
final class Lease: Sendable {
    let call: EngineCall
    let admission: Admission
    let watch: ClientWatch
    private let started = ContinuousClock.now
    private let ended = Mutex(false)
    private let onEnd: @Sendable () -> Void

    init(call: EngineCall, admission: Admission, watch: ClientWatch, onEnd: @escaping @Sendable () -> Void) {
        self.call = call
        self.admission = admission
        self.watch = watch
        self.onEnd = onEnd
    }

    func end() async {
        guard ended.withLock({ e in defer { e = true }; return !e }) else { return }
        await Lease.finish(call: call, admission: admission, watch: watch, started: started, onEnd: onEnd)
    }

    private static func finish(call: EngineCall, admission: Admission, watch: ClientWatch,
                               started: ContinuousClock.Instant, onEnd: @Sendable () -> Void) async {
        var drained = false
        while !drained {
            switch await call.next() {
            case nil: drained = true
            case .finished?, .failed?, .piece?: continue
            }
        }
        onEnd()
        let elapsed = ContinuousClock.now - started
        admission.leave(seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        await watch.stop()
    }

    deinit {
        guard ended.withLock({ e in defer { e = true }; return !e }) else { return }
        let (call, admission, watch, started, onEnd) = (call, admission, watch, started, onEnd)
        call.cancel()
        Task { await Lease.finish(call: call, admission: admission, watch: watch, started: started, onEnd: onEnd) }
    }
}

// MARK: responses

func json(_ body: JSON, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], close: Bool = false) -> Response {
    var headers = headers
    headers[.contentType] = "application/json"
    if close { headers[.connection] = "close" }
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body.text)))
}

func errorResponse(_ error: RequestError, close: Bool = false) -> Response {
    var headers: HTTPFields = [:]
    for (name, value) in error.headers {
        if let field = HTTPField.Name(name) { headers[field] = value }
    }
    return json(error.body, status: HTTPResponse.Status(code: error.status), headers: headers, close: close)
}

/// The answer to a client that left (nobody reads it), as the Python server's 499.
func clientGone() -> Response {
    json(.object([("error", .object([("message", .string("the client left")), ("type", .string("client_closed"))]))]),
         status: HTTPResponse.Status(code: 499), close: true)
}

func finishReason(_ result: GenerationResult) -> String {
    switch result.finishReason {
    case .length: return "length"
    case .stop, .callback, .cancelled: return "stop"
    }
}

func usage(_ r: GenerationResult) -> JSON {
    .object([("prompt_tokens", .int(r.promptTokens)), ("completion_tokens", .int(r.generatedTokens)),
             ("total_tokens", .int(r.promptTokens + r.generatedTokens)),
             ("prompt_tokens_details", .object([("cached_tokens", .int(r.cachedTokens))]))])
}

func randomHex(_ count: Int) -> String {
    var generator = SystemRandomNumberGenerator()
    let digits = Array("0123456789abcdef")
    return String((0..<count).map { _ in digits[Int(generator.next() % 16)] })
}

// MARK: middleware

/// Any error as an OpenAI-style error object: RequestError as it is, Hummingbird's
/// HTTPError (404, 405, 413...) with its status, anything else a 500 (logged).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ServerContext

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as RequestError {
            return errorResponse(error)
        } catch let error as HTTPError {
            let status = error.status
            let what = error.body ?? status.reasonPhrase
            var converted = RequestError(status: status.code, message: "\(what): \(request.method) \(request.uri.path)",
                                         kind: status == .notFound ? "not_found_error" : "invalid_request_error")
            converted.headers = error.headers.map { ($0.name.canonicalName, $0.value) }
                .filter { $0.0.lowercased() != "content-type" && $0.0.lowercased() != "content-length" }
            return errorResponse(converted)
        } catch {
            writeLog("ERROR", "500 on \(request.method) \(request.uri.path): \(String(reflecting: error))")
            return errorResponse(RequestError(status: 500, message: "internal error: \(error)", kind: "server_error"))
        }
    }
}

/// With --api-key: `Authorization: Bearer KEY` on /v1/*.
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let key: String?

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        if let key, !key.isEmpty, request.uri.path.hasPrefix("/v1/"),
           request.headers[.authorization] != "Bearer \(key)" {
            throw RequestError(status: 401, message: "invalid or missing API key (Authorization: Bearer KEY)",
                               code: "invalid_api_key", kind: "authentication_error")
        }
        return try await next(request, context)
    }
}

/// One line on stderr per request once its response is complete (streams included), with
/// the note its handler left.
struct RequestLogMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let quiet: Bool

    func handle(_ request: Request, context: ServerContext,
                next: (Request, ServerContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let line = { @Sendable (status: Int) in
            let elapsed = ContinuousClock.now - start
            let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15
            writeLog("INFO", "\(context.client) \"\(request.method) \(request.uri.path)\" \(status) \(Int(ms.rounded())) ms\(context.note.value)")
        }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            if !quiet { line((error as? HTTPResponseError)?.status.code ?? 500) }
            throw error
        }
        guard !quiet else { return response }
        let status = response.status.code
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            do {
                try await body.write(writer)
                line(status)
            } catch {
                line(status)
                throw error
            }
        }
        return response
    }
}

private let logLock = Mutex(())

func writeLog(_ level: String, _ message: String) {
    let stamp = Date().formatted(.iso8601.year().month().day().dateSeparator(.dash).dateTimeSeparator(.space)
        .time(includingFractionalSeconds: true).timeSeparator(.colon))
    logLock.withLock { _ in
        FileHandle.standardError.write(Data("\(stamp) \(level) \(message)\n".utf8))
    }
}
