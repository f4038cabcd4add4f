import PopfetchCLI

#if canImport(Glibc)
    import Glibc
#endif

// `popfetch --version` answers before the argument parser (whose reflection costs milliseconds) is set up.
if CommandLine.arguments.dropFirst() == ["--version"] {
    print(Popfetch.versionLine)
    exit(0)
}
let status = await Popfetch.run()
exit(status)
