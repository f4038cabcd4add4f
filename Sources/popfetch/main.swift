import PopfetchCLI

#if canImport(Glibc)
    import Glibc
#endif

// `popfetch --version` answers before the argument parser (whose reflection costs milliseconds) is set up.
if CommandLine.arguments.dropFirst() == ["--version"] {
    print(Popfetch.versionLine)
    exit(0)
}
// The daemon traps SIGHUP (reload) and SIGUSR1 (poll now) once it runs; until then they would end it, and systemd
// may send a reload right after the start. Ignored from the first instruction (a reload asked before the
// configuration is read has nothing to do). Other commands keep the default (a terminal's hang-up ends a poll).
if Popfetch.subcommandName(CommandLine.arguments.dropFirst()) == "daemon" {
    signal(SIGHUP, SIG_IGN)
    signal(SIGUSR1, SIG_IGN)
}
let status = await Popfetch.run()
exit(status)
