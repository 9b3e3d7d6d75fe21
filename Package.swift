// swift-tools-version: 6.0
// QwenEmbed: an embeddable inference engine for Qwen chat models.
//
// Products:
//   - `qwen`      dynamic library libqwen.so exporting the C ABI of include/qwen.h
//   - `QwenEmbed` Swift library for Swift programs that depend on this package
//   - `qwen-cli`  the command-line tool (Sources/QwenCLI); `make build` installs it as
//                 .build/release/qwen (a product cannot share the library's name)
// No target behind a product uses unsafeFlags (SwiftPM would refuse the package as a
// dependency); release flags (-static-stdlib, the export list, CPU tuning, QWEN_AVX512)
// come from the Makefile.
import PackageDescription

let package = Package(
    name: "QwenEmbed",
    products: [
        .library(name: "qwen", type: .dynamic, targets: ["QwenC"]),
        .library(name: "QwenEmbed", targets: ["QwenEmbed"]),
        .executable(name: "qwen-cli", targets: ["QwenCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Debian's OpenBLAS: cblas_sgemm for prefill.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .target(name: "Kernels", dependencies: ["COpenBLAS"]),
        .target(name: "QwenEmbed", dependencies: ["Kernels"]),
        // The public header include/qwen.h, as a C module so Swift implements exactly
        // the declared types (Sources/CQwenHeader/include/qwen.h is a symlink to it).
        .target(name: "CQwenHeader", path: "Sources/CQwenHeader"),
        .target(name: "QwenC", dependencies: ["QwenEmbed", "CQwenHeader"]),
        .executableTarget(
            name: "QwenCLI",
            dependencies: ["QwenEmbed", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"]),
        .testTarget(name: "QwenEmbedTests", dependencies: ["QwenEmbed"]),
    ],
    swiftLanguageModes: [.v5]
)
