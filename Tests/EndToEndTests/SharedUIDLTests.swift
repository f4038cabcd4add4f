import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Messages whose UIDL the server lists several times (popa3d gives every message without a Message-ID the same
/// one) are identified by their content, not by their place in the listing: every poll fetches them and compares.
/// These tests hold the rest of the retriever's promises for them: delivered once, partial deliveries finished for
/// the missing recipients only, max_attempts and mark-seen effective, nothing deleted that was not delivered.
@Suite("UIDLs listed several times: identified by content")
struct SharedUIDLTests {
    func local(_ body: String) -> [UInt8] { asDelivered(body) }

    func status(_ f: PopfetchFixture) throws -> RunResult {
        try popfetch(["--config", f.configPath, "--state", f.statePath, "status", "--json"])
    }

    @Test(
        "keep = true: shared-UIDL messages are compared at every poll, delivered once, and neither new nor pending",
        .fault(
            .pop3, "3 messages share one UIDL beside a unique one, keep = true, 3 polls",
            expect: "4 delivered once each; polls 2 and 3 deliver nothing; status pending 0; dry-run says compare"))
    func keptSteady() throws {
        let f = try PopfetchFixture()
        let m = ["a", "b", "c"].map { faultMessage("kept shared \($0)") }
        let u = faultMessage("kept unique", lines: 4)
        let server = try FaultServer.start(
            f,
            messages: m.enumerated().map { .init(uid: "dup", body: $0.element, id: "m\($0.offset)") } + [
                .init(uid: "u", body: u, id: "u")
            ])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true", port: server.port, timeout: "5s")
        for n in 0..<3 {
            let r = try f.poll()
            #expect(r.status == 0, "poll \(n): \(r.stderr)")
            #expect(try f.delivered().count == 4, "poll \(n): nothing delivered twice")
        }
        #expect(Set(try f.delivered()) == Set((m + [u]).map { self.local($0) }))
        #expect(server.deleted().isEmpty)
        let s = try self.status(f)
        #expect(s.stdout.contains("\"pending\": 0,"), "\(s.stdout)")
        let dry = try f.poll(["--dry-run"])
        #expect(dry.stdout.contains("whose UIDL the server lists several times"), "\(dry.stdout)")
        #expect(!dry.stdout.contains("would fetch 3 messages (") || dry.stdout.contains("to tell by content"))
    }

    @Test(
        "a shared-UIDL message whose delivery always fails is marked failed after max_attempts, then left alone",
        .fault(
            .mda, "MDA fails (exit 1) for one of 2 shared-UIDL messages, max_attempts = 2, 4 polls",
            expect: "the MDA sees it exactly twice; the other delivered once and deleted; status exits 1"))
    func maxAttempts() throws {
        let f = try PopfetchFixture()
        let good = faultMessage("shared good")
        let bad = faultMessage("shared bad POISON")
        let server = try FaultServer.start(
            f, messages: [.init(uid: "dup", body: good, id: "g"), .init(uid: "dup", body: bad, id: "p")])
        defer { server.stop() }
        // Counts each run that sees the poisoned message, and fails it.
        let mda = f.directory + "/picky-mda"
        let count = f.directory + "/poison-runs"
        try writeExecutable(
            "#!/bin/sh\nt=$(mktemp \"\(f.outDirectory)/.t.XXXXXX\") && cat > \"$t\" || exit 75\n"
                + "if grep -q POISON \"$t\"; then rm -f \"$t\"; echo x >> \"\(count)\"; exit 1; fi\n"
                + "mv \"$t\" \"\(f.outDirectory)/msg.$(date +%s%N).$$\"\n",
            to: mda)
        try f.writeConfig(extra: "max_attempts = 2", mda: mda, port: server.port, timeout: "5s")
        var statuses: [Int32] = []
        for _ in 0..<4 { statuses.append(try f.poll().status) }
        #expect(statuses[0] == 75 && statuses[1] == 75, "\(statuses)")
        #expect(statuses[2] == 0 && statuses[3] == 0, "marked failed: skipped, \(statuses)")
        let runs = (try? String(contentsOfFile: count, encoding: .utf8)) ?? ""
        #expect(runs.split(separator: "\n").count == 2, "the MDA saw the failing message max_attempts times")
        #expect(try f.delivered() == [self.local(good)])
        #expect(server.deleted() == ["g"], "only the delivered one is deleted")
        let st = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(st.status == 1, "a message marked failed: \(st.stdout)")
    }

    @Test(
        "a shared-UIDL message whose RETR always drops the connection goes last and is never skipped as failed",
        .fault(
            .pop3, "RETR of one of 2 messages sharing a UIDL always drops the connection (max_attempts = 2), 3 polls",
            expect:
                "every poll exits non-zero and tries it (last); the other shared one and a unique one delivered once"))
    func poisonedPlace() throws {
        let f = try PopfetchFixture()
        let good = faultMessage("shared next to poison")
        let q = faultMessage("unique next to poison", lines: 3)
        let server = try FaultServer.start(
            f,
            messages: [
                .init(uid: "dup", body: faultMessage("shared poison"), id: "p", retr: "drop"),
                .init(uid: "dup", body: good, id: "g"), .init(uid: "q", body: q),
            ])
        defer { server.stop() }
        try f.writeConfig(extra: "max_attempts = 2", port: server.port, timeout: "5s")
        for n in 0..<3 {
            let r = try f.poll()
            // Another message may hold that place next time: a failure there never marks anything failed, so the
            // poll keeps failing loudly while the message cannot be fetched.
            #expect(r.status != 0, "poll \(n): \(r.stderr)")
        }
        #expect(Set(try f.delivered()) == [self.local(good), self.local(q)])
        #expect(try f.delivered().count == 2)
        // (Their DELEs never take effect: the connection drops before QUIT at every poll. Nothing is lost, and the
        // poll says so every time.)
        let retrs = server.sent().components(separatedBy: "RETR 1").count - 1
        #expect(retrs == 3, "the poisoned one tried at every poll, \(retrs) times")
    }

    @Test(
        "mark-seen covers the shared-UIDL messages listed at the pause, by content: one that took a place since is new",
        .fault(
            .pop3,
            "first poll of 12 (3 under one UIDL) pauses; mark-seen; one shared deleted elsewhere, a new one of "
                + "the same size arrives; the mark-seen poll drops at its RETR",
            expect: "the new one is delivered once (after the dropped poll), none of the 11 others; nothing deleted"))
    func markSeen() throws {
        let f = try PopfetchFixture()
        var msgs = (0..<9).map { FaultServer.Message(uid: "p\($0)", body: faultMessage("seen \($0)")) }
        msgs += (0..<3).map { FaultServer.Message(uid: "dup", body: faultMessage("seen shared \($0)"), id: "s\($0)") }
        let server = try FaultServer.start(f, messages: msgs)
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true\nflood_limit = 10", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 75, "paused")
        let seen = try popfetch(["--config", f.configPath, "--state", f.statePath, "mark-seen", "--account", "test"])
        #expect(seen.status == 0, "\(seen.stderr)")
        // Another client deletes s0; a new message of the same size takes a place under the same UIDL. Its RETR
        // drops the connection once: the mark-seen poll is cut short.
        let late = faultMessage("seen shared L")
        #expect(late.utf8.count == faultMessage("seen shared 0").utf8.count)
        msgs.remove(at: 9)
        msgs.insert(.init(uid: "dup", body: late, id: "late", retr: "drop"), at: 9)
        try server.set(messages: msgs)
        let cut = try f.poll()
        #expect(cut.status != 0, "\(cut.stderr)")
        msgs[9].retr = "ok"
        try server.set(messages: msgs)
        for _ in 0..<2 {
            let r = try f.poll()
            #expect(r.status == 0, "\(r.stderr)")
        }
        #expect(try f.delivered() == [self.local(late)], "only the message that arrived after the pause")
        #expect(server.deleted().isEmpty)
    }

    @Test(
        "a stray line after a shared-UIDL message costs one duplicate at most, as for any message",
        .fault(
            .pop3, "a stray line after one of 2 shared-UIDL messages, no PIPELINING (max_attempts = 4), 6 polls",
            expect: "at most one copy of it delivered, never deleted; the other delivered once"))
    func strayLine() throws {
        let f = try PopfetchFixture()
        let good = faultMessage("shared before stray")
        let stray = faultMessage("shared with stray line")
        var bad = FaultServer.Message(uid: "dup", body: stray, id: "x")
        bad.after = "junk\r\n"
        let after = faultMessage("unique after stray", lines: 3)
        let later = faultMessage("shared after stray", lines: 5)
        let server = try FaultServer.start(
            f,
            messages: [
                .init(uid: "dup", body: good, id: "g"), bad, .init(uid: "q", body: after),
                .init(uid: "dup", body: later, id: "l"),
            ], options: ["capa": ["USER", "UIDL"]])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true\nmax_attempts = 2", port: server.port, timeout: "5s")
        for _ in 0..<6 { _ = try f.poll() }
        let got = try f.delivered()
        #expect(got.filter { $0 == self.local(stray) }.count <= 1, "at most one copy: \(got.count) delivered")
        // The poisoned one blocks nothing: it goes last, and its stray line is never charged to another.
        for m in [good, after, later] { #expect(got.filter { $0 == self.local(m) }.count == 1) }
        #expect(server.deleted().isEmpty)
    }

    @Test("check counts shared-UIDL places no delivered message accounts for as new")
    func checkCounts() throws {
        let f = try PopfetchFixture()
        var msgs = (0..<2).map { FaultServer.Message(uid: "dup", body: faultMessage("check \($0)"), id: "c\($0)") }
        let server = try FaultServer.start(f, messages: msgs)
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 0)
        let none = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(none.stdout.contains("0 new"), "\(none.stdout)")
        msgs += (2..<4).map { FaultServer.Message(uid: "dup", body: faultMessage("check \($0)"), id: "c\($0)") }
        try server.set(messages: msgs)
        let two = try popfetch(["--config", f.configPath, "--state", f.statePath, "check"])
        #expect(two.status == 0, "new mail: \(two.stdout) \(two.stderr)")
        #expect(two.stdout.contains("2 new"), "\(two.stdout)")
    }

    @Test(
        "delete_after: a UIDL given to a new message of the same size (the old one deleted elsewhere) is not deleted unread",
        .fault(
            .pop3,
            "keep = true, delete_after = 1s; the delivered message is deleted by another client and a new one of "
                + "the same size takes its UIDL",
            expect: "compared, noted, compared again next poll, then delivered once; deleted after its own delete_after"
        ))
    func reusedUIDLAtExpiry() throws {
        let f = try PopfetchFixture()
        let a = faultMessage("expiring A")
        let b = faultMessage("expiring B")
        #expect(a.utf8.count == b.utf8.count)
        let server = try FaultServer.start(f, messages: [.init(uid: "x", body: a, id: "a")])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true\ndelete_after = \"1s\"", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 0)
        try server.set(messages: [.init(uid: "x", body: b, id: "b")])
        Thread.sleep(forTimeInterval: 1.5)
        // Other content at the first comparison: noted, nothing done (it may be a server rewriting the message).
        let first = try f.poll()
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try f.delivered() == [self.local(a)])
        #expect(server.deleted().isEmpty, "b is not the message delivered: not deleted unread")
        // The same other content again: a new message.
        #expect(try f.poll().status == 0)
        #expect(Set(try f.delivered()) == [self.local(a), self.local(b)])
        #expect(server.deleted().isEmpty, "kept until its own delete_after")
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try f.poll().status == 0)
        #expect(server.deleted() == ["b"], "b deleted after its own delete_after, once compared")
        #expect(try f.delivered().count == 2)
    }

    @Test(
        "delete_after on a server that rewrites a message at every RETR: never delivered again, never deleted unread",
        .fault(
            .pop3, "keep = true, delete_after = 1s; every RETR of the message differs in one header (same size)",
            expect: "delivered once; left on the server (no two comparisons agree); never delivered again"))
    func rewrittenAtEveryRetr() throws {
        let f = try PopfetchFixture()
        let versions = (0..<4).map { faultMessage("rewritten \($0)") }
        let server = try FaultServer.start(f, messages: [.init(uid: "r", body: versions[0], id: "r")])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true\ndelete_after = \"1s\"", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 0)
        Thread.sleep(forTimeInterval: 1.5)
        for v in versions.dropFirst() {
            try server.set(messages: [.init(uid: "r", body: v, id: "r")])
            #expect(try f.poll().status == 0)
        }
        #expect(try f.delivered() == [self.local(versions[0])], "never delivered again")
        #expect(server.deleted().isEmpty, "never deleted unread")
        let dry = try f.poll(["--dry-run"])
        #expect(dry.stdout.contains("held other content at the last poll"), "\(dry.stdout)")
    }

    @Test(
        "a delivered message whose comparing fetch keeps failing is marked failed, kept, and retried on request",
        .fault(
            .pop3,
            "keep = false, a poll cut short after a delivery; then RETR of that message refused (max_attempts = 2)",
            expect: "2 polls exit 75; then kept, status exits 1; after `retry` it is compared and deleted"))
    func compareFetchFails() throws {
        let f = try PopfetchFixture()
        let m1 = faultMessage("compare fails")
        let m2 = faultMessage("cuts the poll", lines: 4)
        var msgs: [FaultServer.Message] = [.init(uid: "c1", body: m1), .init(uid: "c2", body: m2, retr: "drop")]
        let server = try FaultServer.start(f, messages: msgs)
        defer { server.stop() }
        try f.writeConfig(extra: "max_attempts = 2", port: server.port, timeout: "5s")
        #expect(try f.poll().status != 0, "cut short: c1 delivered, its DELE not committed")
        #expect(try f.delivered() == [self.local(m1)])
        msgs[0].retr = "err"
        msgs[1].retr = "ok"
        try server.set(messages: msgs)
        for _ in 0..<2 { #expect(try f.poll().status == 75) }
        msgs[0].retr = "ok"
        try server.set(messages: msgs)
        #expect(try f.poll().status == 0)
        #expect(server.deleted() == ["c2"], "c1 is never deleted unread")
        let st = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(st.status == 1, "marked failed: \(st.stdout)")
        let retry = try popfetch(["--config", f.configPath, "--state", f.statePath, "retry", "--account", "test"])
        #expect(retry.status == 0, "\(retry.stderr)")
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Set(server.deleted()) == ["c1", "c2"], "compared, then deleted")
        #expect(try f.delivered().count == 2, "nothing delivered twice")
    }

    @Test(
        "delete_after: a UIDL given to one new message, then to another, before two comparisons agree: none lost",
        .fault(
            .pop3,
            "keep = true, delete_after = 1s; the delivered message replaced (same UIDL, same size) by B, then B "
                + "by C, between polls",
            expect: "nothing deleted unread; C delivered once after two comparisons agree; B never reached a recipient")
    )
    func reusedTwice() throws {
        let f = try PopfetchFixture()
        let (a, b, c) = (faultMessage("twice A"), faultMessage("twice B"), faultMessage("twice C"))
        let server = try FaultServer.start(f, messages: [.init(uid: "x", body: a, id: "a")])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true\ndelete_after = \"1s\"", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 0)
        Thread.sleep(forTimeInterval: 1.5)
        try server.set(messages: [.init(uid: "x", body: b, id: "b")])
        #expect(try f.poll().status == 0)
        try server.set(messages: [.init(uid: "x", body: c, id: "c")])
        for _ in 0..<2 { #expect(try f.poll().status == 0) }
        #expect(server.deleted().isEmpty, "nothing deleted unread")
        #expect(Set(try f.delivered()) == [self.local(a), self.local(c)])
        #expect(try f.delivered().count == 2)
    }

    @Test(
        "a partial delivery's rest goes out only if the UIDL still holds that content; a new message goes to all",
        .fault(
            .pop3,
            "two recipients, one deferred; the message deleted elsewhere and its UIDL given to a new one of the "
                + "same size",
            expect:
                "held once (exit 75), then the new one delivered to both and deleted; the old never sent to the other"))
    func partialThenReused() throws {
        let f = try PopfetchFixture()
        let (a, b) = (faultMessage("partial A"), faultMessage("partial B"))
        let server = try FaultServer.start(f, messages: [.init(uid: "p", body: a, id: "a")])
        defer { server.stop() }
        let flag = f.directory + "/defer-you"
        let mda = try f.writePerRecipientMDA(deferYou: flag)
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        try f.writeConfig(
            extra: "recipient = [\"me\", \"you\"]", mda: "\(mda) %T", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 75, "you deferred")
        try FileManager.default.removeItem(atPath: flag)
        try server.set(messages: [.init(uid: "p", body: b, id: "b")])
        let held = try f.poll()
        #expect(held.status == 75, "held, said so: \(held.stderr)")
        #expect(server.deleted().isEmpty)
        #expect(try f.poll().status == 0)
        #expect(server.deleted() == ["b"])
        #expect(Set(try f.delivered(to: "me")) == [self.local(a), self.local(b)])
        #expect(try f.delivered(to: "you") == [self.local(b)])
    }

    @Test(
        "%T: a recipient whose MDA run fails does not keep the message from the recipients after it",
        .fault(
            .mda, "three recipients, the MDA defers the middle one (exit 75)",
            expect:
                "the first and the third get it in the same poll (exit 75); the next poll gives it to the second only"))
    func laterRecipientsStillTried() throws {
        let f = try PopfetchFixture()
        let a = faultMessage("three recipients")
        let server = try FaultServer.start(f, messages: [.init(uid: "t", body: a, id: "a")])
        defer { server.stop() }
        let flag = f.directory + "/defer-you"
        let mda = try f.writePerRecipientMDA(deferYou: flag)
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        try f.writeConfig(
            extra: "recipient = [\"me\", \"you\", \"them\"]", mda: "\(mda) %T", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 75, "you deferred")
        #expect(try f.delivered(to: "me") == [self.local(a)])
        #expect(try f.delivered(to: "them") == [self.local(a)], "the recipient after the deferred one has it")
        #expect(server.deleted().isEmpty)
        try FileManager.default.removeItem(atPath: flag)
        #expect(try f.poll().status == 0)
        #expect(try f.delivered(to: "you") == [self.local(a)])
        #expect(try f.delivered(to: "me").count == 1 && f.delivered(to: "them").count == 1, "nothing twice")
        #expect(server.deleted() == ["a"])
    }

    @Test(
        "a content that comes back under its UIDL is not sent again to the recipients that got it",
        .fault(
            .pop3,
            "two recipients, one deferring throughout; the UIDL's content flips A, B, A, each held for two polls",
            expect:
                "the other recipient gets A once and B once (not A again); the deferring one gets A when it accepts"))
    func flipFlopWhileDeferring() throws {
        let f = try PopfetchFixture()
        let (a, b) = (faultMessage("flip A"), faultMessage("flip B"))
        let server = try FaultServer.start(f, messages: [.init(uid: "p", body: a, id: "a")])
        defer { server.stop() }
        let flag = f.directory + "/defer-you"
        let mda = try f.writePerRecipientMDA(deferYou: flag)
        #expect(FileManager.default.createFile(atPath: flag, contents: nil))
        try f.writeConfig(
            extra: "recipient = [\"me\", \"you\"]", mda: "\(mda) %T", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 75, "A to me; you deferred")
        try server.set(messages: [.init(uid: "p", body: b, id: "b")])
        #expect(try f.poll().status == 75, "B held")
        #expect(try f.poll().status == 75, "B again: to me; you deferred")
        try server.set(messages: [.init(uid: "p", body: a, id: "a")])
        #expect(try f.poll().status == 75, "A held")
        let back = try f.poll()
        #expect(back.status == 75, "A again: me has it; you deferred: \(back.stderr)")
        #expect(try f.delivered(to: "me").count == 2, "me got A once and B once")
        #expect(server.deleted().isEmpty)
        try FileManager.default.removeItem(atPath: flag)
        let done = try f.poll()
        #expect(done.status == 0, "\(done.stderr)")
        #expect(server.deleted() == ["a"])
        let me = try f.delivered(to: "me")
        #expect(me.count == 2 && Set(me) == [self.local(a), self.local(b)])
        #expect(try f.delivered(to: "you") == [self.local(a)])
    }

    @Test(
        "kill -9 at random instants while shared-UIDL messages are delivered: none lost, at most 1 duplicate per kill",
        .fault(
            .process,
            "popfetch killed with SIGKILL at 5 random instants; 12 messages, 8 of them under one UIDL, "
                + "a slow MDA, two recipients",
            expect: "a clean poll then exits 0; every recipient has every message; ≤ 1 duplicate per kill each"))
    func killNine() throws {
        let f = try PopfetchFixture()
        let bodies = (0..<12).map { faultMessage("killed \($0)", lines: 3 + $0 % 4) }
        let msgs = bodies.enumerated().map { i, b in
            FaultServer.Message(uid: i < 8 ? "dup" : "u\(i)", body: b, id: "k\(i)")
        }
        let server = try FaultServer.start(f, messages: msgs)
        defer { server.stop() }
        // One run per recipient, each a little slow, so kills land mid-delivery as well as between.
        let mda = try f.writePerRecipientMDA(delay: "0.05")
        try f.writeConfig(
            extra: "recipient = [\"me\", \"you\"]", mda: "\(mda) %T", port: server.port, timeout: "5s")
        var rng = SplitMix(seed: 777)
        var kills = 0
        for _ in 0..<5 {
            let child = try Child.spawn(
                [Package.binary, "--config", f.configPath, "--state", f.statePath, "poll", "-q"],
                stdout: "/dev/null", stderr: "/dev/null")
            usleep(UInt32((40 + Int(rng.next() % 400)) * 1000))
            if child.isRunning {
                kill(child.pid, SIGKILL)
                kills += 1
            }
            _ = child.wait()
            usleep(200_000)  // an orphaned MDA finishes its (complete) message
        }
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        for who in ["me", "you"] {
            let got = try f.delivered(to: who)
            for b in bodies {
                #expect(got.contains(self.local(b)), "\(who) lacks a message")
            }
            #expect(got.count - bodies.count <= kills, "\(who): \(got.count - bodies.count) duplicates, \(kills) kills")
        }
        #expect(Set(server.deleted()) == Set(msgs.compactMap(\.id)))
    }

    @Test(
        "a UIDL first listed once, then shared: the message delivered under it is recognised, not delivered again",
        .fault(
            .pop3, "a delivered message's UIDL (keep = true) is then also given to a new message",
            expect: "the first is not delivered again; the new one is delivered once"))
    func plainThenShared() throws {
        let f = try PopfetchFixture()
        let a = faultMessage("first under x")
        let b = faultMessage("second under x")
        let server = try FaultServer.start(f, messages: [.init(uid: "x", body: a, id: "a")])
        defer { server.stop() }
        try f.writeConfig(extra: "keep = true", port: server.port, timeout: "5s")
        #expect(try f.poll().status == 0)
        try server.set(messages: [.init(uid: "x", body: a, id: "a"), .init(uid: "x", body: b, id: "b")])
        for _ in 0..<2 {
            let r = try f.poll()
            #expect(r.status == 0, "\(r.stderr)")
        }
        let got = try f.delivered()
        #expect(got.count == 2 && Set(got) == [self.local(a), self.local(b)], "each once")
        #expect(server.deleted().isEmpty)
    }
}
