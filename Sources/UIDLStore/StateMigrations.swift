import Foundation
import GRDB

/// The schema, version by version (GRDB migrations), and the v4 move of mailbox keys.
extension StateStore {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE messages (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        first_seen REAL NOT NULL,
                        missing_count INTEGER NOT NULL DEFAULT 0,
                        size INTEGER,
                        delivered_at REAL,
                        deleted_at REAL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT,
                        failed_at REAL,
                        PRIMARY KEY (account, uidl)
                    ) WITHOUT ROWID;
                    CREATE TABLE deliveries (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        recipient TEXT NOT NULL,
                        delivered_at REAL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        last_error TEXT,
                        PRIMARY KEY (account, uidl, recipient)
                    ) WITHOUT ROWID;
                    CREATE TABLE polls (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        account TEXT NOT NULL,
                        account_name TEXT NOT NULL,
                        started REAL NOT NULL,
                        finished REAL,
                        outcome TEXT NOT NULL DEFAULT 'running',
                        listed INTEGER NOT NULL DEFAULT 0,
                        new INTEGER NOT NULL DEFAULT 0,
                        delivered INTEGER NOT NULL DEFAULT 0,
                        bytes INTEGER NOT NULL DEFAULT 0,
                        deleted INTEGER NOT NULL DEFAULT 0,
                        deferred INTEGER NOT NULL DEFAULT 0,
                        failed INTEGER NOT NULL DEFAULT 0,
                        skipped INTEGER NOT NULL DEFAULT 0,
                        error TEXT,
                        exit_code INTEGER
                    );
                    CREATE INDEX polls_by_name ON polls(account_name, id);
                    CREATE INDEX polls_by_account ON polls(account, id);
                    """)
        }
        m.registerMigration("v2: pending count per poll, daemon schedule") { db in
            try db.execute(
                sql: """
                    ALTER TABLE polls ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE schedule (
                        account_name TEXT PRIMARY KEY NOT NULL,
                        next_poll REAL,
                        consecutive_failures INTEGER NOT NULL DEFAULT 0
                    );
                    """)
        }
        m.registerMigration("v3: OAuth2 tokens") { db in
            try db.execute(
                sql: """
                    CREATE TABLE oauth_tokens (
                        account TEXT PRIMARY KEY NOT NULL,
                        refresh_token TEXT,
                        access_token TEXT,
                        expires_at REAL
                    );
                    """)
        }
        m.registerMigration("v4: mailbox identity without port, retrieval attempts, age-based forgetting, pauses") {
            db in
            try db.execute(
                sql: """
                    ALTER TABLE messages ADD COLUMN retrieval_attempts INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE messages ADD COLUMN last_seen REAL;
                    ALTER TABLE messages ADD COLUMN digest TEXT;
                    ALTER TABLE messages ADD COLUMN seen_only INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE messages ADD COLUMN delete_pending INTEGER NOT NULL DEFAULT 0;
                    UPDATE messages SET last_seen = first_seen;
                    CREATE TABLE pause_keys (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        PRIMARY KEY (account, uidl)
                    ) WITHOUT ROWID;
                    CREATE TABLE mailboxes (
                        account TEXT PRIMARY KEY NOT NULL,
                        first_listed REAL,
                        paused_reason TEXT,
                        paused_at REAL,
                        decision TEXT
                    );
                    """)
            // The mailbox identity was user@host:port; it is now user@host, so a port or TLS change keeps it. A
            // key moves only when it is the one key of its user@host: two mailboxes of one user@host on different
            // ports stay apart under their old keys (the configuration then names each with `mailbox_id`).
            let keys = Set(
                try String.fetchAll(db, sql: "SELECT DISTINCT account FROM messages")
                    + String.fetchAll(db, sql: "SELECT account FROM oauth_tokens"))
            var byNew: [String: [String]] = [:]
            for old in keys { byNew[Self.portlessKey(old), default: []].append(old) }
            for (new, olds) in byNew where olds.count == 1 && olds[0] != new {
                let old = olds[0]
                for table in ["messages", "deliveries", "oauth_tokens", "polls"] {
                    try db.execute(sql: "UPDATE \(table) SET account = ? WHERE account = ?", arguments: [new, old])
                }
                try db.execute(
                    sql: "INSERT OR IGNORE INTO mailboxes (account, first_listed) VALUES (?, ?)",
                    arguments: [new, Date().timeIntervalSince1970])
            }
            for (_, olds) in byNew where olds.count > 1 {
                for old in olds {
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO mailboxes (account, first_listed) VALUES (?, ?)",
                        arguments: [old, Date().timeIntervalSince1970])
                }
            }
        }
        m.registerMigration("v5: quiet listings") { db in
            // A mailbox's last listing that needed nothing done: its SHA-256 with the policy, until when that stays
            // true, and the mailbox's generation then. A poll listing the same again at the same generation skips
            // the state load. Triggers count every write to the mailbox's messages and deliveries, by any program
            // (sqlite3, `popfetch forget` while a poll runs, an older popfetch), so a fingerprint recorded from a
            // state that has since changed is never trusted.
            var sql = """
                ALTER TABLE mailboxes ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE mailboxes ADD COLUMN quiet_listing BLOB;
                ALTER TABLE mailboxes ADD COLUMN quiet_until REAL;
                ALTER TABLE mailboxes ADD COLUMN quiet_generation INTEGER;

                """
            for table in ["messages", "deliveries"] {
                for (event, rows) in [("INSERT", ["NEW"]), ("UPDATE", ["OLD", "NEW"]), ("DELETE", ["OLD"])] {
                    let accounts = rows.map { "\($0).account" }.joined(separator: ", ")
                    sql += """
                        CREATE TRIGGER \(table)_\(event.lowercased())_generation AFTER \(event) ON \(table) BEGIN
                            UPDATE mailboxes SET generation = generation + 1 WHERE account IN (\(accounts));
                        END;

                        """
                }
            }
            try db.execute(sql: sql)
        }
        m.registerMigration("v6: delivered totals, bounded poll history") { db in
            // `status` summed every poll an account ever had; the polls table now keeps the last `pollsKept` per
            // account (see finishPoll), and the running total of messages delivered lives here.
            try db.execute(
                sql: """
                    CREATE TABLE account_totals (
                        account_name TEXT PRIMARY KEY NOT NULL,
                        delivered INTEGER NOT NULL DEFAULT 0
                    );
                    INSERT INTO account_totals (account_name, delivered)
                        SELECT account_name, COALESCE(SUM(delivered), 0) FROM polls WHERE true GROUP BY account_name;
                    """)
        }
        m.registerMigration("v7: IMAP appends pending") { db in
            // Exactly-once delivery by IMAP APPEND: an entry per APPEND, written (committed) before it is sent and
            // deleted in the transaction that records the message's delivery (or when the server refuses it). An
            // entry found is a message that may be in the folder unrecorded: it is looked up before it is appended
            // again. `late`: its APPEND timed out after the whole message was sent, at `appended_at` (the server may
            // still store it).
            try db.execute(
                sql: """
                    CREATE TABLE imap_pending (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        delivery_id TEXT NOT NULL,
                        appended_at REAL NOT NULL,
                        late INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (account, uidl, delivery_id)
                    );
                    """)
        }
        m.registerMigration("v8: other content at a due DELE") { db in
            // A delivered message whose DELE fell due was fetched and found to differ from the copy delivered: the
            // digest of that other content, so the next comparison tells a new message (the same other content
            // again) from a server that rewrites the message at every RETR (yet another content).
            try db.execute(sql: "ALTER TABLE messages ADD COLUMN other_digest TEXT")
        }
        m.registerMigration("v9: contents each recipient got under a key") { db in
            // Append-only while the key's record lives: which recipient got which content (by digest) under a key,
            // kept when the record starts over for another content (and when a delivery made in parts is
            // complete), so that a content seen again under that key is not sent again to those who have it.
            try db.execute(
                sql: """
                    CREATE TABLE content_deliveries (
                        account TEXT NOT NULL,
                        uidl TEXT NOT NULL,
                        digest TEXT NOT NULL,
                        recipient TEXT NOT NULL,
                        PRIMARY KEY (account, uidl, digest, recipient)
                    ) WITHOUT ROWID;
                    """)
        }
        return m
    }

    /// `user@host:port` (the identity before v4) without its `:port`.
    static func portlessKey(_ key: String) -> String {
        guard let colon = key.lastIndex(of: ":"), let at = key.lastIndex(of: "@"), colon > at else { return key }
        let port = key[key.index(after: colon)...]
        guard !port.isEmpty, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber) else { return key }
        return String(key[..<colon])
    }
}
