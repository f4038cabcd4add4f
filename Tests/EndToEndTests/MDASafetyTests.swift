import Foundation
import MailTestKit
import Testing

@testable import Configuration

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 8, items 1-3: what a message can make an MDA do, and what an MDA inherits.
@Suite("MDA safety: sanitised %F/%T, environment, whole-input check, descriptors")
struct MDASafetyTests {
    static let hostileSenders = [
        "x@y; touch PWNED",
        "$(touch PWNED)@evil.example",
        "`touch PWNED`@evil.example",
        "-oQ/tmp/x'$(touch PWNED)'@evil.example",
    ]

    @Test(
        "a hostile envelope sender in %F reaches sh -c only sanitised and runs nothing",
        .fault(
            .mda, "envelope sender with shell syntax ($(...), backticks, ;, -oQ) substituted as %F into sh -c",
            expect: "exit 0; no command runs; %F sanitised, no leading -; POPFETCH_SENDER holds the raw value"),
        arguments: hostileSenders)
    func hostileSender(_ template: String) throws {
        let f = try PopfetchFixture()
        let pwned = f.directory + "/pwned"
        let sender = template.replacingOccurrences(of: "PWNED", with: pwned)
        try f.user.deliver([Corpus.message(0, seed: 300, returnPath: sender)])
        let out = f.directory + "/sender-arg"
        let env = f.directory + "/sender-env"
        // As README recommended and import-fetchmailrc generated: the sender substituted into a shell command.
        try f.writeConfig(
            mda: "sh -c 'cat >/dev/null; echo %F >\(out); printf %s \\\"$POPFETCH_SENDER\\\" >\(env)'")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pwned), "the sender ran a command: \(sender)")
        let arg = try String(contentsOfFile: out, encoding: .utf8).trimmingCharacters(in: .newlines)
        #expect(arg == MDACommand.sanitized(sender))
        #expect(!arg.contains(where: { " ;$`()'<>|&/\\".contains($0) }), "\(arg)")
        #expect(!arg.hasPrefix("-"))
        #expect(try String(contentsOfFile: env, encoding: .utf8) == sender, "the raw value, safe in double quotes")
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "sanitising keeps ordinary addresses and replaces everything else",
        arguments: [
            ("alice@example.org", "alice@example.org"),
            ("bounce+list=alice.example@lists.example.org", "bounce+list=alice.example@lists.example.org"),
            ("", ""),
            ("a b;c", "a_b_c"),
            ("$(id)@x", "__id_@x"),
            ("-oQ@x", "_oQ@x"),
            ("--", "_-"),
            ("caf\u{E9}@x", "caf_@x"),
            ("a\nb", "a_b"),
        ] as [(String, String)])
    func sanitised(raw: String, expected: String) {
        #expect(MDACommand.sanitized(raw) == expected)
    }

    @Test("the MDA gets POPFETCH_SENDER, POPFETCH_RECIPIENT, POPFETCH_ACCOUNT and POPFETCH_USER")
    func environment() throws {
        let f = try PopfetchFixture()
        try f.user.deliver([Corpus.message(0, seed: 301, returnPath: "sender@example.org")])
        let out = f.directory + "/env"
        try f.writeConfig(
            extra: "recipient = [\"rcpt-one\", \"rcpt-two\"]",
            mda:
                "sh -c 'cat >/dev/null; env | grep -e ^POPFETCH_ACCOUNT= -e ^POPFETCH_RECIPIENT= -e ^POPFETCH_SENDER= -e ^POPFETCH_USER= | sort >\(out)'"
        )
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "POPFETCH_ACCOUNT=\(f.accountName)", "POPFETCH_RECIPIENT=rcpt-one,rcpt-two",
                "POPFETCH_SENDER=sender@example.org", "POPFETCH_USER=\(f.user.name)",
            ])
    }

    @Test(
        "an MDA that exits 0 without reading all of its input has not delivered: the message stays",
        .fault(
            .mda, "MDA exits 0 after reading 100 octets of the message, or none",
            expect: "'exited 0 but read only' reported, naming mda_partial_read; message stays on the server"),
        arguments: ["head -c 100 >OUT", "true"])
    func partialRead(_ body: String) throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 302))
        let out = f.directory + "/partial"
        try f.writeConfig(mda: "sh -c '\(body.replacingOccurrences(of: "OUT", with: out))'")
        let r = try f.poll()
        #expect(r.stderr.contains("exited 0 but read only"), "\(r.stderr)")
        #expect(r.stderr.contains("mda_partial_read"), "the message names the key that accepts it")
        #expect(f.user.messageCount() == 1, "not deleted")
    }

    /// A parent that ignores SIGCHLD passes that on through exec; the kernel then reaps popfetch's children, and an
    /// exit status that cannot be read was taken for exit 0. A small message (pipe filled before the MDA starts)
    /// and a large one (fed by a `cat`, with mda_partial_read = "accept", where the failed MDA counted as delivered).
    @Test(
        "started by a parent that ignores SIGCHLD: an MDA's failure is still seen, the message stays",
        .fault(
            .mda, "popfetch exec'd with SIGCHLD ignored (the kernel reaps its children); the MDA reads all, exits 1",
            expect: "'exited 1' reported, exit 1 or above, message stays on the server; delivered once the MDA works"),
        arguments: [60, 30_000])
    func ignoredSIGCHLD(_ lines: Int) throws {
        let f = try PopfetchFixture()
        try f.user.deliver([Corpus.message(1, seed: 303, bodyLines: lines)])
        let accept = "mda_partial_read = \"accept\""
        try f.writeConfig(extra: accept, mda: "sh -c 'cat >/dev/null; exit 1'")
        // Python sets SIGCHLD to ignored and execs popfetch, which keeps it (a shell's `trap '' CHLD` does not).
        let wrapper =
            "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
        let command = [
            "python3", "-c", wrapper, Package.binary, "--config", f.configPath, "--state", f.statePath, "poll",
        ]
        let r = try runProgram(command)
        #expect(r.status != 0, "\(r.stderr)")
        #expect(r.stderr.contains("exited 1"), "\(r.stderr)")
        #expect(f.user.messageCount() == 1, "not deleted")
        try f.writeConfig(extra: accept)
        let again = try runProgram(command)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try f.delivered().count == 1)
        #expect(f.user.messageCount() == 0)
    }

    /// The three ways an MDA's input is fed: a message that fits the default 64 KiB pipe, one that needs the pipe
    /// grown (up to 1 MiB, still filled before the MDA starts), and one fed by a `cat` (larger). Each must be read
    /// whole by an MDA that does, and caught when an MDA stops early.
    @Test(
        "every input path (default pipe, grown pipe, feeder) delivers whole inputs and catches an MDA that stops early",
        .fault(
            .mda, "MDA exits 0 after 1,000 octets of a 60-, 2,000- or 12,000-line message",
            expect: "partial read caught, message kept; a whole-reading MDA then gets it byte-exact, deleted"),
        arguments: [60, 2_000, 12_000])
    func partialReadEverySize(_ lines: Int) throws {
        let f = try PopfetchFixture()
        let message = Corpus.message(1, seed: 304, bodyLines: lines)
        try f.user.deliver([message])
        let out = f.directory + "/whole"
        try f.writeConfig(mda: "sh -c 'head -c 1000 >\(out)'")
        let r = try f.poll()
        #expect(r.stderr.contains("exited 0 but read only"), "\(message.count) bytes: \(r.stderr)")
        #expect(f.user.messageCount() == 1, "not deleted")

        try f.writeConfig(mda: "sh -c 'cat >\(out)'")
        let again = try f.poll()
        #expect(again.status == 0, "\(again.stderr)")
        #expect(f.user.messageCount() == 0)
        let got = try PopfetchFixture.stripTraceHeader(Array(FileManager.default.contents(atPath: out) ?? Data()))
        #expect(got == message, "\(message.count) bytes arrive whole (got \(got.count))")
    }

    /// Issue 9 review: the MDA's stderr was a pipe to popfetch, so an MDA that wrote to it after popfetch was
    /// killed died of SIGPIPE half-way through its delivery (a truncated copy in the mailbox).
    @Test(
        "kill -9 of popfetch while an MDA works: the MDA's later writes to stderr do not cut its delivery short",
        .fault(
            .process, "popfetch killed with SIGKILL mid-delivery; the MDA then writes to stderr",
            expect: "the MDA finishes: the mailbox holds the whole message, byte-exact"))
    func mdaOutlivesPopfetch() throws {
        let f = try PopfetchFixture()
        let message = Corpus.message(1, seed: 305, bodyLines: 40)
        try f.user.deliver([message])
        let mailbox = f.directory + "/mbox"
        let started = f.directory + "/started"
        let script = f.directory + "/chatty-mda"
        try writeExecutable(
            """
            #!/bin/sh
            # Appends the message in two parts, talking on stderr in between, as a careless MDA might.
            dd bs=1 count=500 status=none >> \(mailbox)
            touch \(started)
            sleep 2
            echo "halfway there" >&2
            cat >> \(mailbox)
            echo "done" >&2
            """, to: script)
        try f.writeConfig(mda: script)
        let child = try Child.spawn(
            [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll"],
            stdout: f.directory + "/poll.out", stderr: f.directory + "/poll.err")
        #expect(eventually(15) { FileManager.default.fileExists(atPath: started) })
        kill(child.pid, SIGKILL)
        _ = child.wait(timeout: 10)
        // The MDA, in its own process group, finishes on its own.
        #expect(
            eventually(10) {
                ((try? Data(contentsOf: URL(fileURLWithPath: mailbox)))?.count ?? 0) > message.count
            })
        sleep(1)
        let got = Array(FileManager.default.contents(atPath: mailbox) ?? Data())
        #expect(try PopfetchFixture.stripTraceHeader(got) == message, "the mailbox holds \(got.count) bytes")
    }

    @Test(
        "mda_partial_read = \"accept\" takes exit 0 as delivered (filters that read only the header)",
        .fault(
            .mda, "MDA reads 100 octets and exits 0, with mda_partial_read = \"accept\"",
            expect: "exit 0; no partial-read warning; message deleted from the server"))
    func partialReadAccepted() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 303))
        try f.writeConfig(extra: "mda_partial_read = \"accept\"", mda: "sh -c 'head -c 100 >/dev/null'")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.contains("read only"))
        #expect(f.user.messageCount() == 0)
    }

    @Test("a %T command runs once per recipient, and every run gets the whole message")
    func perRecipientRunsGetEverything() throws {
        let f = try PopfetchFixture()
        let corpus = [Corpus.message(0, seed: 304, bodyLines: 400)]
        try f.user.deliver(corpus)
        try f.writeConfig(
            extra: "recipient = [\"r1\", \"r2\", \"r3\"]",
            mda: "sh -c 'cat >\(f.directory)/out/msg.%T'")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 3)
        #expect(got.allSatisfy { sameMessages([$0], corpus) }, "each run read the spool from its start")
        #expect(f.user.messageCount() == 0)
    }

    @Test("an MDA inherits only descriptors 0, 1 and 2")
    func descriptors() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 305))
        let out = f.directory + "/fds"
        // ls opens one descriptor of its own (3) to read the directory.
        try f.writeConfig(mda: "sh -c 'cat >/dev/null; exec ls /proc/self/fd >\(out)'")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let fds = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        #expect(Set(fds).isSubset(of: [0, 1, 2, 3]), "inherited: \(fds.sorted())")
    }

    @Test("password_command also inherits only descriptors 0, 1 and 2")
    func passwordCommandDescriptors() throws {
        let f = try PopfetchFixture()
        let out = f.directory + "/fds"
        try f.writeConfig(mda: "/bin/cat")
        var text = try String(contentsOfFile: f.configPath, encoding: .utf8)
        text = text.split(separator: "\n").filter { !$0.hasPrefix("password =") }.joined(separator: "\n")
        text += "\npassword_command = \"ls /proc/self/fd >\(out); echo \(f.user.password)\"\n"
        try text.write(toFile: f.configPath, atomically: true, encoding: .utf8)
        chmod(f.configPath, 0o600)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let fds = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
        #expect(Set(fds).isSubset(of: [0, 1, 2, 3]), "inherited: \(fds.sorted())")
    }
}
