#!/usr/bin/env python3
"""Leaves a state database as a kill -9 between IMAP APPENDs and their commits would (test kit only):

  imap-cut-off.py STATE.sqlite

Every delivered message becomes undelivered again (its record, first listed when it was, stays), and gets the
pending-append entry popfetch wrote before its APPEND: delivery ID = the first 32 hex digits of
SHA-256(mailbox NUL uidl NUL digest), as popfetch computes it. Prints the IDs.
"""
import hashlib, sqlite3, sys, time

db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT account, uidl, digest FROM messages WHERE delivered_at IS NOT NULL").fetchall()
for account, uidl, digest in rows:
    ident = hashlib.sha256(account.encode() + b"\0" + uidl.encode() + b"\0" + digest.encode()).hexdigest()[:32]
    db.execute("INSERT OR REPLACE INTO imap_pending (account, uidl, delivery_id, appended_at, late) VALUES (?, ?, ?, ?, 0)",
               (account, uidl, ident, time.time()))
    print(ident)
db.execute("UPDATE messages SET delivered_at = NULL, digest = NULL")
db.execute("DELETE FROM deliveries")
db.commit()
