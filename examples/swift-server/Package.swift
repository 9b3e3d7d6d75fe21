// swift-tools-version: 6.2
// qwen-swift-server: QwenEmbed embedded in a Swift server. A Hummingbird 2 app serving
// the same OpenAI-compatible routes and web chat page as the Python server
// (bindings/python/qwen_embed/server.py), through the Swift API of this repository's
// package, which it depends on by path (the library itself depends on nothing).
//
//   swift build -c release --package-path examples/swift-server
//   examples/swift-server/.build/release/qwen-swift-server -m MODEL.gguf
import PackageDescription

let package = Package(
    name: "qwen-swift-server",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "qwen-swift-server", targets: ["QwenSwiftServer"]),
    ],
    dependencies: [
        // The repository's root package (QwenEmbed), by path: named, so that the
        // reference below does not depend on the name of the checkout's folder.
        .package(name: "QwenEmbed", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // Already dependencies of Hummingbird; named for HTTPField, NIOCore's Channel and
        // TimeAmount, the Logger, and the graceful shutdown.
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        .executableTarget(
            name: "QwenSwiftServer",
            dependencies: [
                .product(name: "QwenEmbed", package: "QwenEmbed"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
