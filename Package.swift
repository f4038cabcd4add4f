// swift-tools-version: 6.2
import PackageDescription

#if canImport(Glibc)
    import Glibc
#endif

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

/// How the popfetch executable is linked on Linux. SwiftPM links Swift executables with `-export-dynamic`, which puts
/// every one of popfetch's ~35,000 symbols in the dynamic symbol table; the loader then reads 3 MB of tables and
/// dladdr scans them at every start. popfetch resolves none of its own symbols by name, so they stay local. With
/// glibc 2.36 or later (which reads DT_RELR), lld also packs the ~118,000 relative relocations (2.8 MB as RELA) into
/// 23 KB. Together: `popfetch --version` in 3.4 ms and 9.9 MB instead of 6.0 ms and 14 MB; PIE (ASLR) is kept.
/// Packed relocations need glibc 2.36 where the binary runs: `POPFETCH_PORTABLE_LINK=1 swift build ...` leaves
/// them out, for a binary that is to run on an older system than the one that builds it.
let executableLinking: [LinkerSetting] = {
    #if os(Linux)
        var flags = ["-Xlinker", "--no-export-dynamic"]
        #if canImport(Glibc)
            if getenv("POPFETCH_PORTABLE_LINK") == nil && glibcVersion() >= (2, 36) {
                flags = ["-use-ld=lld"] + flags + ["-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"]
            }
        #endif
        return [.unsafeFlags(flags)]
    #else
        return []
    #endif
}()

#if canImport(Glibc)
    /// The C library's version, from "glibc 2.36"; (0, 0) if it cannot be read.
    func glibcVersion() -> (Int, Int) {
        var text = [CChar](repeating: 0, count: 64)
        guard confstr(Int32(_CS_GNU_LIBC_VERSION), &text, text.count) > 0 else { return (0, 0) }
        let string = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let numbers = string.split(separator: " ").last?.split(separator: ".").map { Int($0) ?? 0 } ?? []
        return (numbers.first ?? 0, numbers.dropFirst().first ?? 0)
    }
#endif

let package = Package(
    name: "popfetch",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "popfetch", targets: ["popfetch"]),
        .library(name: "POP3Core", targets: ["POP3Core"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The path of one message, from the bottom up. Pure protocol cores first: no I/O, ByteBuffer in and out.
        // POP3 grammar, streaming parser, encoder and client state machine.
        .target(name: "POP3Core", dependencies: [nio("NIOCore")], swiftSettings: strictSettings),
        // SMTP/LMTP grammar: reply parser, commands, the DATA encoder, the client state machine.
        .target(name: "SMTPCore", dependencies: [nio("NIOCore")], swiftSettings: strictSettings),
        // IMAP4rev1 client subset for delivery by APPEND: command encoder (literals, modified UTF-7), response parser.
        .target(name: "IMAPCore", dependencies: [nio("NIOCore")], swiftSettings: strictSettings),
        // SASL client mechanisms (RFC 4422): PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-1/256, XOAUTH2, OAUTHBEARER.
        .target(
            name: "SASL",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        // The operating system at the edge: anonymous files, lock files, child processes, paths, units.
        .target(
            name: "SystemSupport", dependencies: ["CSystemLinux", nio("NIOCore"), nio("NIOPosix")],
            swiftSettings: strictSettings),
        // epoll for SystemSupport (Swift's Glibc module does not map <sys/epoll.h>).
        .target(name: "CSystemLinux"),
        // Sockets and TLS at the edge: thin SwiftNIO channels that drive POP3Core and SMTPCore; one TLS factory.
        .target(
            name: "MailTransport",
            dependencies: [
                "POP3Core", "SMTPCore", "IMAPCore", "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                nio("NIOCore"), nio("NIOPosix"), nio("NIOTLS"), nio("NIOConcurrencyHelpers"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // TOML 1.0: text in, tables out, every key's line recorded; no I/O, never traps on any input.
        .target(name: "TOML", swiftSettings: strictSettings),
        // The accounts config (TOML) as plain values, its validation, secrets, and the .fetchmailrc importer.
        .target(
            name: "Configuration",
            dependencies: ["POP3Core", "SMTPCore", "SystemSupport", "TOML"],
            swiftSettings: strictSettings
        ),
        // The SQLite state (GRDB): UIDLs per mailbox, deliveries per recipient, poll history, OAuth2 tokens.
        .target(
            name: "UIDLStore",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // One message on disk: an unlinked spool file written as it arrives, read back by the deliverers.
        .target(
            name: "Spool",
            dependencies: ["SystemSupport", .product(name: "Crypto", package: "swift-crypto"), nio("NIOCore")],
            swiftSettings: strictSettings
        ),
        // OAuth2 (refresh and device grants) over a small HTTPS client; tokens kept in the state store.
        .target(
            name: "OAuth",
            dependencies: [
                "Configuration", "UIDLStore", "MailTransport", "SystemSupport",
                nio("NIOCore"), nio("NIOPosix"), nio("NIOHTTP1"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        // Local delivery of a spooled message: MDA (a child process), SMTP/LMTP to the MTA, Maildir; bounces.
        .target(
            name: "Delivery",
            dependencies: [
                "Configuration", "Spool", "SystemSupport", "SMTPCore", "IMAPCore", "SASL", "MailTransport",
                nio("NIOCore"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // One poll of one account: log in, list, plan, fetch into the spool, deliver, commit, delete.
        .target(
            name: "Retrieval",
            dependencies: [
                "POP3Core", "SASL", "MailTransport", "Configuration", "UIDLStore", "Spool", "Delivery", "OAuth",
                "SystemSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                nio("NIOCore"), nio("NIOConcurrencyHelpers"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The daemon: every account on its schedule, signals, the control socket, graceful shutdown.
        .target(
            name: "Daemon",
            dependencies: [
                "Retrieval", "Configuration", "UIDLStore", "SystemSupport",
                nio("NIOCore"), nio("NIOPosix"), nio("NIOConcurrencyHelpers"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Metrics for monitoring (Prometheus text format via swift-prometheus): the registry fed by poll reports and
        // the state, `metrics_file` (node_exporter's textfile collector) and the daemon's `metrics_listen` endpoint.
        .target(
            name: "Monitoring",
            dependencies: [
                "Configuration", "Retrieval", "UIDLStore", "SystemSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                nio("NIOCore"), nio("NIOPosix"), nio("NIOHTTP1"), nio("NIOConcurrencyHelpers"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The command-line interface, as a library so tests can drive it. It wires; it does not decide.
        .target(
            name: "PopfetchCLI",
            dependencies: [
                "Configuration", "UIDLStore", "Retrieval", "Daemon", "OAuth", "SystemSupport", "Monitoring",
                nio("NIOCore"), nio("NIOConcurrencyHelpers"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "popfetch", dependencies: ["PopfetchCLI"], swiftSettings: strictSettings,
            linkerSettings: executableLinking),
        // Tests. MailTestKit: the real Dovecot, Postfix and Courier instances on loopback, the scripted fault servers
        // (Scripts/), the popfetch runner and fixtures, shared by the test targets that need real servers. It imports
        // Testing, which only test builds have: a release build names its product (`--product popfetch`).
        .target(
            name: "MailTestKit", dependencies: ["MailTransport"], path: "Tests/MailTestKit", exclude: ["Scripts"],
            swiftSettings: strictSettings),
        .testTarget(name: "SASLTests", dependencies: ["SASL"], swiftSettings: strictSettings),
        .testTarget(name: "TOMLTests", dependencies: ["TOML"], swiftSettings: strictSettings),
        .testTarget(name: "POP3CoreTests", dependencies: ["POP3Core", nio("NIOCore")], swiftSettings: strictSettings),
        .testTarget(name: "IMAPCoreTests", dependencies: ["IMAPCore", nio("NIOCore")], swiftSettings: strictSettings),
        .testTarget(
            name: "SMTPCoreTests", dependencies: ["SMTPCore", "MailTestKit", nio("NIOCore")],
            swiftSettings: strictSettings),
        .testTarget(
            name: "ConfigurationTests",
            dependencies: ["Configuration", "SystemSupport", "POP3Core", "SMTPCore", "MailTestKit"],
            exclude: ["Fixtures"], swiftSettings: strictSettings
        ),
        .testTarget(name: "DeliveryTests", dependencies: ["Delivery", "SMTPCore"], swiftSettings: strictSettings),
        .testTarget(name: "SpoolTests", dependencies: ["Spool", nio("NIOCore")], swiftSettings: strictSettings),
        .testTarget(
            name: "RetrievalTests",
            dependencies: [
                "Retrieval", "Configuration", "UIDLStore", "Spool", "Delivery", "OAuth", "SystemSupport", "POP3Core",
                "MailTransport", .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        // The daemon's pure rules (schedule, repeated failures, control protocol) and its services in process.
        .testTarget(
            name: "DaemonTests",
            dependencies: [
                "Daemon", "Retrieval", "SystemSupport", "MailTestKit", nio("NIOCore"), nio("NIOPosix"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // popfetch as users run it: the binary against real servers (and scripted ones for faults).
        .testTarget(
            name: "MailTransportTests",
            dependencies: [
                "MailTransport", "MailTestKit", "SMTPCore", "SystemSupport",
                nio("NIOCore"), nio("NIOPosix"), nio("NIOEmbedded"), nio("NIOTLS"), nio("NIOConcurrencyHelpers"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "MailTestKit", "Configuration", "OAuth", "UIDLStore", "Daemon", "Retrieval", "SystemSupport",
                "POP3Core", "SMTPCore", "MailTransport", nio("NIOCore"), nio("NIOPosix"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)

func nio(_ name: String) -> Target.Dependency { .product(name: name, package: "swift-nio") }
