// Fuzz target for the .fetchmailrc importer (`FetchmailrcImporter.convert`): its tokenizer, its grammar and the TOML
// it writes. Built and run by `scripts/fuzz Fetchmailrc`.
//
// A refused file must be refused with a `ParseError` on one of its lines. What the importer writes must be TOML that
// the configuration loader can read: the loader may refuse a value (a missing password, a port out of range), but
// never the syntax, and nothing of the input may add keys of its own.
import Configuration

#if canImport(Glibc)
    import Glibc
#endif

/// No `~/.netrc` of the machine that runs the fuzzer is read.
@_cdecl("LLVMFuzzerInitialize")
public func initializeFetchmailrcFuzzer(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>>
) -> CInt {
    setenv("NETRC", "/nonexistent/netrc", 1)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFetchmailrc(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    let toml: String
    do {
        toml = try FetchmailrcImporter.convert(text, source: "fuzz.fetchmailrc")
    } catch let error as FetchmailrcImporter.ParseError {
        let lines = text.count { $0 == "\n" || $0 == "\r\n" } + 1
        require(error.line >= 1 && error.line <= lines, "line \(error.line) of \(lines): \(error)")
        return 0
    } catch {
        fatalError("the importer threw a foreign error: \(error)")
    }
    do {
        _ = try ConfigurationLoader(defaultRecipient: "fuzz", checkPermissions: false).parse(
            text: toml, path: "imported.toml")
    } catch let error as ConfigurationError {
        require(!error.message.hasPrefix("TOML syntax error"), "\(error)\n--- imported TOML:\n\(toml)")
        if let key = error.key, error.message.hasPrefix("unknown key") {
            fatalError("the import wrote the key \(key.debugDescription):\n\(toml)")
        }
    } catch {
        fatalError("the loader threw a foreign error: \(error)")
    }
    return 0
}
