// swift-tools-version: 6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "popfetch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "popfetch", targets: ["popfetch"]),
        .library(name: "POP3Core", targets: ["POP3Core"]),
        .library(name: "PopfetchKit", targets: ["PopfetchKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // Pure POP3 grammar, incremental parser, encoder and client state machine. No I/O.
        .target(
            name: "POP3Core",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        // Pure SMTP/LMTP grammar: reply parser, commands, the DATA encoder. No I/O.
        .target(
            name: "SMTPCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        // Pure SASL client mechanisms (RFC 4422): PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256, XOAUTH2, OAUTHBEARER.
        .target(
            name: "SASL",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // Sockets and TLS at the edge: a thin SwiftNIO transport that drives POP3Core.
        .target(
            name: "MailTransport",
            dependencies: [
                "POP3Core",
                "SMTPCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // Configuration, state, spool, delivery and the poll engine.
        .target(
            name: "PopfetchKit",
            dependencies: [
                "POP3Core",
                "SMTPCore",
                "SASL",
                "MailTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The command-line interface, as a library so tests can drive it.
        .target(
            name: "PopfetchCLI",
            dependencies: [
                "PopfetchKit",
                "MailTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(name: "popfetch", dependencies: ["PopfetchCLI"], swiftSettings: strictSettings),
        .testTarget(
            name: "SASLTests",
            dependencies: ["SASL"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "POP3CoreTests",
            dependencies: ["POP3Core", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SMTPCoreTests",
            dependencies: ["SMTPCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PopfetchKitTests",
            dependencies: [
                "PopfetchKit", "POP3Core", "SMTPCore", "MailTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            exclude: [
                "Support/scripted-smtp.py", "Support/scripted-pop3.py", "Support/fault-pop3.py", "Support/short-read.c",
                "Fixtures",
            ],
            swiftSettings: strictSettings
        ),
    ]
)
