import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The state directory (SQLite database and spool) under faults: a full disk, a read-only directory, a corrupted
/// file, a lock held by another process, two popfetch processes at once. Mounts happen in a private mount namespace
/// (`unshare -m`), so nothing outside the test sees them.
@Suite("State and disk faults")
struct StateFaultTests {
    /// Runs `script` with `sh -c` in a private mount namespace; `$POPFETCH` is `popfetch --config … --state …`.
    static func inNamespace(_ f: PopfetchFixture, _ script: String, timeout: Double = 120) throws -> RunResult {
        let popfetch = "\(Package.binary) --config \(f.configPath) --state \(f.statePath)"
        return try runProgram(
            ["/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script],
            environment: ["POPFETCH": popfetch], timeout: timeout)
    }

    static var stateDirectory: (PopfetchFixture) -> String { { $0.directory + "/state" } }

    /// A message of about `megabytes` MB.
    static func large(_ megabytes: Int, seed: Int) -> [UInt8] {
        var m = Corpus.message(900, seed: seed)
        let line = Array(repeating: UInt8(ascii: "x"), count: 76) + [10]
        for _ in 0..<(megabytes * 1_048_576 / line.count) { m += line }
        return m
    }

    @Test(
        "less than 1 MB free in the state directory: popfetch stops before delivering, since a commit could fail",
        .fault(
            .state, "state directory (spool and database) on a tmpfs with under 1 MB free",
            expect: "exit 74 naming the directory and its free space; nothing delivered; every message left"))
    func lowSpace() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(3, seed: 31))
        try f.writeConfig()
        let dir = Self.stateDirectory(f)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Self.inNamespace(
            f, "mount -t tmpfs -o size=1m,mode=0700 tmpfs \(dir) && $POPFETCH poll; echo \"poll=$?\"")
        #expect(r.stdout.contains("poll=74"), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("KB free") && r.stderr.contains(dir), "\(r.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 3)
    }

    @Test(
        "the disk fills while a message is spooled: the poll stops loudly; once space is freed, nothing is delivered twice",
        .fault(
            .state, "state directory on a 3 MB tmpfs; a 6 MB message fills it mid-RETR, after two small ones",
            expect:
                "exit 74 \"No space left\"; small ones delivered whole; after more space: big one delivered, none twice"
        ))
    func diskFillsMidMessage() throws {
        let f = try PopfetchFixture()
        let small = Corpus.messages(2, seed: 38)
        let big = Self.large(6, seed: 38)
        try f.user.deliver(small)
        sleep(1)  // Maildir names start with the second: the big message is listed last
        try f.user.deliver([big])
        try f.writeConfig()
        let dir = Self.stateDirectory(f)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Self.inNamespace(
            f,
            """
            mount -t tmpfs -o size=3m,mode=0700 tmpfs \(dir) || exit 1
            $POPFETCH poll; echo "poll=$?"
            mount -o remount,size=32m \(dir) && $POPFETCH poll; echo "again=$?"
            """)
        #expect(r.stdout.contains("poll=74") && r.stdout.contains("again=0"), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("No space left on device"), "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 3 && sameMessages(got, small + [big]), "each message once, whole: \(got.count)")
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "a read-only state directory: nothing is delivered or deleted, and the error names the file",
        .fault(
            .state, "state directory mounted read-only after a first poll; new mail waiting",
            expect:
                "exit non-zero naming state.sqlite; nothing delivered or deleted; a later poll delivers only new mail"))
    func readOnly() throws {
        let f = try PopfetchFixture()
        let first = Corpus.messages(2, seed: 32)
        try f.user.deliver(first)
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        try f.clearDelivered()
        let later = Corpus.messages(1, seed: 33)
        try f.user.deliver(later)
        let dir = Self.stateDirectory(f)
        let r = try Self.inNamespace(
            f, "mount --bind \(dir) \(dir) && mount -o remount,ro,bind \(dir) && $POPFETCH poll; echo \"poll=$?\"")
        #expect(!r.stdout.contains("poll=0") && r.stdout.contains("poll="), "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("state.sqlite"), "the error names the file: \(r.stderr)")
        #expect(try f.delivered().isEmpty, "nothing delivered without a writable state")
        #expect(f.user.messageCount() == 3)
        let after = try f.poll()
        #expect(after.status == 0, "\(after.stderr)")
        let got = try f.delivered()
        #expect(got.count == 1 && sameMessages(got, later), "only the new message, once")
    }

    @Test(
        "a corrupted state database: refused with its path; nothing delivered or deleted",
        .fault(
            .state, "state database overwritten with garbage",
            expect: "poll and status exit non-zero naming the file; nothing delivered; every message left on the server"
        ))
    func corrupted() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(3, seed: 34))
        try f.writeConfig(extra: "keep = true")
        #expect(try f.poll().status == 0)
        try f.clearDelivered()
        for suffix in ["-wal", "-shm"] { unlink(f.statePath + suffix) }
        let garbage = Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 13) })
        try garbage.write(to: URL(fileURLWithPath: f.statePath))
        let r = try f.poll()
        #expect(r.status != 0, "\(r.stderr)")
        #expect(r.stderr.contains(f.statePath), "\(r.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 3)
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(s.status != 0 && s.stderr.contains(f.statePath), "\(s.stdout)\n\(s.stderr)")
    }

    @Test(
        "another process holding the database's write lock: the poll waits for it, then delivers each message once",
        .fault(
            .state, "another process holds an exclusive SQLite transaction on the state for 3 s",
            expect: "the poll waits (busy time-out 30 s), exits 0; every message delivered once and deleted"))
    func busyBriefly() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 35)
        try f.user.deliver(corpus)
        try f.writeConfig()
        #expect(try popfetch(["--config", f.configPath, "--state", f.statePath, "status"]).status == 0)
        let r = try Self.holdingLock(f, seconds: 3)
        #expect(r.stdout.contains("locked") && r.stdout.contains("poll=0"), "\(r.stdout)\n\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 3 && sameMessages(got, corpus))
        #expect(f.user.messageCount() == 0)
    }

    @Test(
        "another process holding the write lock past the busy time-out: the poll fails as temporary, loses nothing",
        .fault(
            .state, "another process holds an exclusive SQLite transaction on the state for 40 s (time-out 30 s)",
            expect: "exit 75 after the time-out; no message deleted; the next poll delivers each message once"))
    func busyPastTimeout() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(3, seed: 36)
        try f.user.deliver(corpus)
        try f.writeConfig()
        #expect(try popfetch(["--config", f.configPath, "--state", f.statePath, "status"]).status == 0)
        let r = try Self.holdingLock(f, seconds: 40)
        #expect(r.stdout.contains("locked") && r.stdout.contains("poll=75"), "\(r.stdout)\n\(r.stderr)")
        #expect(f.user.messageCount() == 3, "nothing deleted")
        let again = try f.poll()
        #expect(again.status == 0, "\(again.stderr)")
        let got = try f.delivered()
        #expect(got.count == 3 && sameMessages(got, corpus), "each message once")
    }

    /// Runs a Python script with `sqlite3` on the state database (its path is `sys.argv[1]`).
    static func sql(_ f: PopfetchFixture, _ script: String, _ arguments: [String] = []) throws -> RunResult {
        let path = f.directory + "/edit-state.py"
        try ("import os, sqlite3, sys\n" + script).write(toFile: path, atomically: true, encoding: .utf8)
        return try runProgram(["/usr/bin/python3", path, f.statePath] + arguments)
    }

    /// popfetch's first schema, as it wrote it (migration "v1").
    static let schemaV1 = """
        CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
        INSERT INTO grdb_migrations VALUES ('v1');
        CREATE TABLE messages (account TEXT NOT NULL, uidl TEXT NOT NULL, first_seen REAL NOT NULL,
            missing_count INTEGER NOT NULL DEFAULT 0, size INTEGER, delivered_at REAL, deleted_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, failed_at REAL,
            PRIMARY KEY (account, uidl)) WITHOUT ROWID;
        CREATE TABLE deliveries (account TEXT NOT NULL, uidl TEXT NOT NULL, recipient TEXT NOT NULL,
            delivered_at REAL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
            PRIMARY KEY (account, uidl, recipient)) WITHOUT ROWID;
        CREATE TABLE polls (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL,
            account_name TEXT NOT NULL, started REAL NOT NULL, finished REAL,
            outcome TEXT NOT NULL DEFAULT 'running', listed INTEGER NOT NULL DEFAULT 0,
            new INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
            deferred INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0, error TEXT, exit_code INTEGER);
        CREATE INDEX polls_by_name ON polls(account_name, id);
        CREATE INDEX polls_by_account ON polls(account, id);
        """

    @Test(
        "a state database written by the first schema (v1) is migrated: known mail stays known, new mail is fetched",
        .fault(
            .state, "state database from popfetch's first schema (v1: keys user@host:port, no mailboxes table)",
            expect: "migrated to the current schema; exit 0; only the new message delivered; no flood pause"))
    func olderSchema() throws {
        let f = try PopfetchFixture()
        try Self.deliveredUnderSchemaV1(f)
        let later = Corpus.messages(1, seed: 40)
        try f.user.deliver(later)
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 1 && sameMessages(got, later), "only the new message: \(got.count) delivered")
        // Every migration a fresh database gets, this one got too.
        let count = "print(len(sqlite3.connect(sys.argv[1]).execute('SELECT * FROM grdb_migrations').fetchall()))"
        let fresh = f.directory + "/fresh/state.sqlite"
        _ = try popfetch(["--config", f.configPath, "--state", fresh, "status"])
        let expected = try runProgram(["/usr/bin/python3", "-c", "import sqlite3, sys\n" + count, fresh])
        let versions = try Self.sql(f, count)
        #expect(Int(expected.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 >= 6)
        #expect(versions.stdout == expected.stdout, "every migration applied: \(versions.stdout) \(expected.stdout)")
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(s.status == 0, "\(s.stdout)\n\(s.stderr)")
    }

    @Test(
        "an upgrade of the state database waits until no other popfetch has it open (an older daemon left running)",
        .fault(
            .state, "state database of an older schema (v1) held open by another popfetch process",
            expect:
                "exit 75 after 5 s saying what to restart; the schema untouched; upgraded and polled once it is gone"))
    func upgradeWhileInUse() throws {
        let f = try PopfetchFixture()
        try Self.deliveredUnderSchemaV1(f)
        let later = Corpus.messages(1, seed: 41)
        try f.user.deliver(later)
        // What every popfetch process holds while it has the database open (a daemon: for its lifetime).
        let holder = try Holder.start(
            "import fcntl, os, sys, time\n"
                + "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
                + "fcntl.flock(fd, fcntl.LOCK_SH)\n"
                + "open(sys.argv[2], 'w').close()\n"
                + "time.sleep(60)\n",
            [f.statePath + ".inuse"], ready: f.directory + "/holding")
        let schema =
            "print(sqlite3.connect(sys.argv[1]).execute('SELECT name, sql FROM sqlite_master ORDER BY name').fetchall())"
        let before = try Self.sql(f, schema)
        let refused = try f.poll()
        #expect(refused.status == 75, "\(refused.stderr)")
        #expect(refused.stderr.contains("another popfetch process has it open"), "\(refused.stderr)")
        #expect(refused.stderr.contains("systemctl --user restart popfetch"), "\(refused.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(try Self.sql(f, schema).stdout == before.stdout, "the schema was left as it was")
        holder.stop()
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
        let got = try f.delivered()
        #expect(got.count == 1 && sameMessages(got, later), "only the new message: \(got.count) delivered")
    }

    @Test(
        "an upgrade of the state database waits while a process without the in-use lock has it open (an older popfetch)",
        .fault(
            .state, "state database of an older schema (v1) held open by a process that takes no .inuse lock",
            expect: "exit 75 after 5 s saying what to restart; the schema untouched; upgraded once it is gone"))
    func upgradeWhileOpenByOlderPopfetch() throws {
        let f = try PopfetchFixture()
        try Self.deliveredUnderSchemaV1(f)
        // What a popfetch from before `.inuse` does while it runs: the database open in WAL mode, no lock file.
        let holder = try Holder.start(
            "import sqlite3, sys, time\n"
                + "db = sqlite3.connect(sys.argv[1])\n"
                + "db.execute('PRAGMA journal_mode=WAL').fetchall()\n"
                + "db.execute('SELECT * FROM grdb_migrations').fetchall()\n"
                + "open(sys.argv[2], 'w').close()\n"
                + "time.sleep(60)\n",
            [f.statePath], ready: f.directory + "/holding")
        let count = "print(len(sqlite3.connect(sys.argv[1]).execute('SELECT * FROM grdb_migrations').fetchall()))"
        let refused = try f.poll()
        #expect(refused.status == 75, "\(refused.stderr)")
        #expect(refused.stderr.contains("systemctl --user restart popfetch"), "\(refused.stderr)")
        #expect(try Self.sql(f, count).stdout == "1\n", "the schema was left as it was")
        holder.stop()
        let r = try f.poll()
        #expect(r.status == 0, "\(r.stderr)")
    }

    /// Three messages delivered and kept on the server, then the state database rewritten as popfetch's first
    /// schema (v1) held their records.
    static func deliveredUnderSchemaV1(_ f: PopfetchFixture) throws {
        let first = Corpus.messages(3, seed: 39)
        try f.user.deliver(first)
        try f.writeConfig(extra: "keep = true\nflood_limit = 2")
        // The first poll pauses (3 unknown messages above flood_limit); the user says fetch all.
        #expect(try f.poll().status == 75)
        _ = try popfetch(["--config", f.configPath, "--state", f.statePath, "fetch-all", "--account", "test"])
        #expect(try f.poll().status == 0)
        try f.clearDelivered()
        // The same records, written as the v1 schema held them (keys with the port), in place of the database.
        let rewrite = try Self.sql(
            f,
            """
            path, port, schema = sys.argv[1], sys.argv[2], sys.argv[3]
            rows = sqlite3.connect(path).execute(
                "SELECT account, uidl, first_seen, size, delivered_at FROM messages").fetchall()
            assert len(rows) == 3, rows
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix): os.unlink(path + suffix)
            db = sqlite3.connect(path)
            db.executescript(schema)
            for account, uidl, seen, size, delivered in rows:
                key = account + ":" + port
                db.execute("INSERT INTO messages (account, uidl, first_seen, size, delivered_at) VALUES (?,?,?,?,?)",
                           (key, uidl, seen, size, delivered))
                db.execute("INSERT INTO deliveries (account, uidl, recipient, delivered_at) VALUES (?,?,'',?)",
                           (key, uidl, delivered))
            db.execute("INSERT INTO polls (account, account_name, started, finished, outcome, listed, new, delivered)"
                       " VALUES (?, 'test', 1, 2, 'ok', 3, 3, 3)", (rows[0][0] + ":" + port,))
            db.commit()
            """, [String(f.server.pop3Port), Self.schemaV1])
        #expect(rewrite.status == 0, "\(rewrite.stderr)")
    }

    @Test(
        "processes creating one fresh state database at once: one migrates it, the others wait and use it",
        .fault(
            .state, "six `popfetch status` started at once on a state database that does not exist yet (5 rounds)",
            expect: "every one exits 0; the schema is created once (no \"duplicate column\")"))
    func concurrentCreation() throws {
        let f = try PopfetchFixture()
        try f.writeConfig()
        for round in 0..<5 {
            let state = f.directory + "/fresh-\(round)/state.sqlite"
            let script = """
                for i in 1 2 3 4 5 6; do
                  $POPFETCH --state \(state) status >/dev/null 2>>errors-\(round) & eval "p$i=$!"
                done
                for i in 1 2 3 4 5 6; do eval "wait \\$p$i"; echo "status=$?"; done
                """
            let r = try runProgram(
                ["/bin/sh", "-c", "cd \(f.directory) || exit 1\n" + script],
                environment: ["POPFETCH": "\(Package.binary) --config \(f.configPath)"])
            let errors = (try? String(contentsOfFile: f.directory + "/errors-\(round)", encoding: .utf8)) ?? ""
            let statuses = r.stdout.split(separator: "\n").filter { $0.hasPrefix("status=") }
            #expect(
                statuses.count == 6 && statuses.allSatisfy { $0 == "status=0" },
                "round \(round): \(r.stdout)\n\(errors)")
        }
    }

    @Test(
        "a state database a newer popfetch has migrated further is refused, not used",
        .fault(
            .state, "state database carrying a schema version this popfetch does not know (a downgrade)",
            expect: "poll and status exit 74 saying a newer popfetch wrote it; nothing delivered or deleted"))
    func newerSchema() throws {
        let f = try PopfetchFixture()
        try f.writeConfig()
        #expect(try popfetch(["--config", f.configPath, "--state", f.statePath, "status"]).status == 0)
        let edit = try Self.sql(
            f,
            """
            db = sqlite3.connect(sys.argv[1])
            db.execute("INSERT INTO grdb_migrations VALUES ('v99: from the future')")
            db.commit()
            """)
        #expect(edit.status == 0, "\(edit.stderr)")
        try f.user.deliver(Corpus.messages(2, seed: 41))
        let r = try f.poll()
        #expect(r.status == 74, "\(r.stderr)")
        #expect(r.stderr.contains("newer popfetch") && r.stderr.contains(f.statePath), "\(r.stderr)")
        #expect(try f.delivered().isEmpty)
        #expect(f.user.messageCount() == 2)
        let s = try popfetch(["--config", f.configPath, "--state", f.statePath, "status"])
        #expect(s.status == 74 && s.stderr.contains("newer popfetch"), "\(s.stdout)\n\(s.stderr)")
    }

    /// A poll while another process holds `BEGIN EXCLUSIVE` on the state database for `seconds`.
    static func holdingLock(_ f: PopfetchFixture, seconds: Int) throws -> RunResult {
        let locker = """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
            c.execute("BEGIN EXCLUSIVE")
            print("locked", flush=True)
            time.sleep(float(sys.argv[2]))
            c.execute("COMMIT")
            """
        let path = f.directory + "/locker.py"
        try locker.write(toFile: path, atomically: true, encoding: .utf8)
        let script = """
            python3 \(path) \(f.statePath) \(seconds) & 
            while ! kill -0 $! 2>/dev/null; do sleep 0.1; done; sleep 1
            $POPFETCH poll; echo "poll=$?"; wait
            """
        return try runProgram(
            ["/bin/sh", "-c", script],
            environment: ["POPFETCH": "\(Package.binary) --config \(f.configPath) --state \(f.statePath)"],
            timeout: Double(seconds) + 120)
    }

    @Test(
        "two popfetch processes polling one mailbox at once: one waits for the other; no message is delivered twice",
        .fault(
            .process, "a second `popfetch poll` started on the same mailbox while the first delivers (slow MDA)",
            expect: "both exit 0; the second waits for the account lock; every message delivered exactly once"))
    func twoProcesses() throws {
        let f = try PopfetchFixture()
        let corpus = Corpus.messages(6, seed: 37)
        try f.user.deliver(corpus)
        let slow = f.directory + "/slow-mda"
        try writeExecutable("#!/bin/sh\nsleep 0.3\nexec \(f.mdaScript)\n", to: slow)
        try f.writeConfig(mda: slow)
        let script = """
            $POPFETCH poll 2>first.err & first=$!
            sleep 0.5
            $POPFETCH poll 2>second.err; echo "second=$?"
            wait $first; echo "first=$?"
            """
        let r = try runProgram(
            ["/bin/sh", "-c", "cd \(f.directory) || exit 1\n" + script],
            environment: ["POPFETCH": "\(Package.binary) --config \(f.configPath) --state \(f.statePath)"])
        #expect(r.stdout.contains("first=0") && r.stdout.contains("second=0"), "\(r.stdout)")
        let got = try f.delivered()
        #expect(got.count == 6 && sameMessages(got, corpus), "each message exactly once")
        #expect(f.user.messageCount() == 0)
    }
}
