import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import QwenEmbed
import ServiceLifecycle

/// qwen-swift-server: the OpenAI-compatible API and web chat page of
/// bindings/python/qwen_embed/server.py, served by Hummingbird 2 over QwenEmbed's Swift API.
@main
struct QwenSwiftServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qwen-swift-server",
        abstract: "OpenAI-compatible server and web chat page over QwenEmbed (Hummingbird 2).",
        discussion: """
            Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, \
            GET / (the chat page). The first stdout line is "listening on http://HOST:PORT".
            """)

    @Option(name: [.customShort("m"), .long], help: "A .gguf file or a Hugging Face checkpoint directory.")
    var model: String

    @Option(help: "The address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on (0 = any free port).")
    var port = 8000

    @Option(help: "Requests generating at once (decoded together by the engine).")
    var parallel = 4

    @Option(help: "Requests waiting for a slot; beyond that 429 with Retry-After.")
    var queue = 16

    @Option(help: "Threads of the model's compute pool, shared by all requests (0 = all cores).")
    var threads = 0

    @Option(name: [.customShort("c"), .customLong("ctx")], help: "Context window per session (0 = the model's default).")
    var contextSize = 0

    @Option(name: .customLong("model-id"), help: "The id /v1/models reports (default: the file name).")
    var modelID: String?

    @Option(name: .customLong("api-key"),
            help: "Require 'Authorization: Bearer KEY' on /v1/* (default: $QWEN_API_KEY; none = open).")
    var apiKey: String?

    @Option(help: "The chat page served at / (default: the repository's bindings/python/qwen_embed/web/chat.html).")
    var page: String?

    @Flag(help: "No request log on stderr.")
    var quiet = false

    func validate() throws {
        guard parallel >= 1 else { throw ValidationError("--parallel must be >= 1") }
        guard queue >= 0, threads >= 0, contextSize >= 0 else {
            throw ValidationError("--queue, --threads and --ctx must be >= 0")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in [0, 65535]") }
    }

    /// The page in the checkout this binary was built from: this file is
    /// examples/swift-server/Sources/QwenSwiftServer/QwenSwiftServer.swift.
    static var defaultPage: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<5 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("bindings/python/qwen_embed/web/chat.html").path
    }

    func run() async throws {
        let pagePath = page ?? Self.defaultPage
        guard let pageData = FileManager.default.contents(atPath: pagePath),
              let pageText = String(data: pageData, encoding: .utf8) else {
            fail("cannot read the chat page \(pagePath); pass --page PATH")
        }

        var loadOptions = ModelLoadOptions()
        loadOptions.threads = threads
        let loaded: Model
        do {
            loaded = try Model.load(path: model, options: loadOptions)
        } catch {
            fail("\(error)")
        }

        var served = modelID ?? URL(fileURLWithPath: model).lastPathComponent
        if modelID == nil && served.hasSuffix(".gguf") { served = String(served.dropLast(5)) }
        loaded.promptCache.capacity = max(PromptCache.defaultCapacity, 2 * parallel)
        var sessionOptions = SessionOptions()
        sessionOptions.contextSize = contextSize
        let key = apiKey ?? ProcessInfo.processInfo.environment["QWEN_API_KEY"]
        let settings = ServerSettings(modelID: served, parallel: parallel, queue: queue, sessionOptions: sessionOptions,
                                      apiKey: key?.isEmpty == true ? nil : key, page: pageText, quiet: quiet)
        let server = QwenServer(model: loaded, settings: settings)

        var logger = Logger(label: "qwen-swift-server") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = .warning
        let (quiet, parallel, queue, host, modelPath, name) = (quiet, parallel, queue, host, model, served)
        let app = Application(
            router: server.router(),
            // Idle keep-alive connections (and clients that never close theirs) are
            // closed after 30 s, as uvicorn does for the Python server.
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                let address = channel.localAddress
                var shown = address?.ipAddress ?? host
                if shown.contains(":") { shown = "[\(shown)]" }
                // One write, unbuffered: the line a parent process waits for.
                FileHandle.standardOutput.write(Data("listening on http://\(shown):\(address?.port ?? 0)\n".utf8))
                if !quiet {
                    writeLog("INFO", "serving \(name) from \(modelPath): \(parallel) at once, \(queue) waiting, "
                             + "\(loaded.engine.threads) compute threads\(settings.apiKey == nil ? "" : ", API key required")")
                }
            },
            logger: logger)
        // SIGTERM / SIGINT: the services shut down last first, so the running calls are
        // cancelled (and no new one starts) before the server waits for its requests.
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: app), .init(service: CancelOnShutdown(server: server))],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            fail("cannot serve on \(host):\(port): \(error)")
        }
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("qwen-swift-server: \(message)\n".utf8))
        Foundation.exit(1)
    }
}

/// Cancels the engine calls running or about to run once a graceful shutdown begins.
struct CancelOnShutdown: Service {
    let server: QwenServer

    func run() async throws {
        try? await gracefulShutdown()
        server.cancelAllCalls()
    }
}
