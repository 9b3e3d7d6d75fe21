// swift-tools-version: 6.2
// QwenEmbed: an embeddable inference engine for Qwen chat models.
//
// Products:
//   - `qwen`      dynamic library libqwen.so exporting the C ABI of include/qwen.h
//   - `QwenEmbed` Swift library for Swift programs that depend on this package
//   - `qwen-cli`  the command-line tool (Sources/QwenCLI); `make build` installs it as
//                 .build/release/qwen (a product cannot share the library's name)
//
// Kernels and instruction sets. `Kernels` is compiled for the baseline CPU and holds the
// formats, the scalar references, the portable (generic) kernels and the one table that
// picks an instruction set at run time (CPUID; override QWEN_ISA). On x86-64 three more
// targets compile the same 256-bit kernel sources (Sources/KernelsX86, symlinked into
// each) for one instruction set each, with their own `-target-cpu`:
//   KernelsAVX2     haswell        AVX2 + FMA + F16C + BMI2 (maddubs/madd dot products)
//   KernelsAVXVNNI  alderlake      the same with AVX-VNNI vpdpbusd (Alder Lake and later, Zen 5)
//   KernelsAVX512   cascadelake    AVX-512 F/CD/BW/DQ/VL + VNNI (EVEX vpdpbusd)
// They depend on nothing but the plain C types of KernelABI (no shared Swift code, so no
// specialisation compiled for one instruction set can be merged into another's callers)
// and are reached only through the table. Since swift-tools-version 6.2 SwiftPM accepts
// these unsafeFlags in a package used as a versioned dependency, so a Swift package that
// depends on `QwenEmbed` gets the same run-time selected kernels with a plain
// `swift build`. -disable-cmo keeps their bodies from being serialised for inlining into
// baseline modules. Release-only flags (-static-stdlib, the export list) come from the
// Makefile.
import PackageDescription

#if arch(x86_64)
let x86Flags = ["-Xfrontend", "-disable-cmo"]
let isaTargets: [Target] = [
    .target(name: "KernelsAVX2", dependencies: ["KernelABI"],
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"] + x86Flags)]),
    .target(name: "KernelsAVXVNNI", dependencies: ["KernelABI"],
            swiftSettings: [.define("QWEN_DOT_AVXVNNI"), .unsafeFlags(["-target-cpu", "alderlake"] + x86Flags)]),
    .target(name: "KernelsAVX512", dependencies: ["KernelABI"],
            swiftSettings: [.define("QWEN_DOT_AVX512VNNI"), .unsafeFlags(["-target-cpu", "cascadelake"] + x86Flags)]),
]
#else
let isaTargets: [Target] = []
#endif
let isaDependencies: [Target.Dependency] = isaTargets.map { .target(name: $0.name) }

// `make fuzz` (scripts/fuzz.sh) sets QWEN_FUZZ_COVERAGE=1: libFuzzer's coverage in the
// modules that read callers' and files' data (QwenEmbed, QwenC), not in the kernels,
// whose instrumented inner loops made every forward pass of a fuzz input ~10x slower.
// AddressSanitizer still covers every module (-sanitize=address from the command line).
let fuzzCoverage: [SwiftSetting] = Context.environment["QWEN_FUZZ_COVERAGE"] == "1"
    ? [.unsafeFlags(["-sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp"])] : []

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
    targets: isaTargets + [
        // Debian's OpenBLAS: cblas_sgemm for prefill.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        // Plain C: the kernels' argument struct and CPUID (no vector code).
        .target(name: "KernelABI", path: "Sources/KernelABI"),
        .target(name: "Kernels", dependencies: ["COpenBLAS", "KernelABI"] + isaDependencies),
        .target(name: "QwenEmbed", dependencies: ["Kernels"], swiftSettings: fuzzCoverage),
        // The public header include/qwen.h, as a C module so Swift implements exactly
        // the declared types (Sources/CQwenHeader/include/qwen.h is a symlink to it).
        .target(name: "CQwenHeader", path: "Sources/CQwenHeader"),
        .target(name: "QwenC", dependencies: ["QwenEmbed", "CQwenHeader"], swiftSettings: fuzzCoverage),
        .executableTarget(
            name: "QwenCLI",
            dependencies: ["QwenEmbed", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels", "COpenBLAS"]),
        .testTarget(name: "QwenEmbedTests", dependencies: ["QwenEmbed"]),
    ],
    swiftLanguageModes: [.v5]
)
