// Fuzz target for the TOML configuration loader (`ConfigurationLoader.parse(text:path:)`): the TOML parser, the
// line index, every key's reader and the rules that span keys. Built and run by `scripts/fuzz ConfigurationLoader`.
//
// A refused file must be refused with a `ConfigurationError` whose line, when it names one, is a line of the file;
// an accepted one must hold what the loader promises (unique non-empty names, ports 1-65535, positive time-outs and
// intervals, at least one recipient).
import Configuration

#if canImport(Glibc)
    import Glibc
#endif

/// No `~/.netrc` of the machine that runs the fuzzer is read.
@_cdecl("LLVMFuzzerInitialize")
public func initializeConfigurationLoaderFuzzer(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>>
) -> CInt {
    setenv("NETRC", "/nonexistent/netrc", 1)
    return 0
}

func check(_ configuration: Configuration) {
    require(configuration.global.maxConcurrentPolls >= 1 && configuration.global.shutdownGrace >= 0)
    var names = Set<String>()
    for a in configuration.accounts {
        require(!a.name.isEmpty && names.insert(a.name).inserted, "account name \(a.name.debugDescription)")
        require((1...65535).contains(a.server.port), "port \(a.server.port)")
        require(a.server.timeout >= 1 && a.server.pollTimeout >= a.server.timeout, "time-outs")
        require(a.schedule.interval >= 1 && a.retention.maxAttempts >= 1, "interval or max_attempts")
        require(!a.delivery.recipients.isEmpty && a.delivery.recipients.allSatisfy { !$0.isEmpty })
        require(!a.server.host.isEmpty && !a.authentication.user.isEmpty)
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfigurationLoader(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    let loader = ConfigurationLoader(defaultRecipient: "fuzz", checkPermissions: false)
    do {
        check(try loader.parse(text: text, path: "fuzz.toml"))
    } catch let error as ConfigurationError {
        let lines = text.utf8.count { $0 == 10 } + 1
        if let line = error.line { require(line >= 1 && line <= lines, "line \(line) of \(lines): \(error)") }
    } catch {
        fatalError("the loader threw a foreign error: \(error)")
    }
    return 0
}
