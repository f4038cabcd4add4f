import Configuration
import IMAPCore
import Logging
import MailTransport
import Spool
import Synchronization

/// One message: looked up when an APPEND of it may have been stored before, then appended (creating the folder
/// when allowed), and what the server's answer means for it.
extension IMAPDeliverer {
    struct FolderState {
        /// EXAMINE was done (for SEARCH), and found the folder.
        var examined = false
        var exists = true
        var created = false
    }

    func deliverOne(_ message: SpooledMessage, on conn: IMAPConnection, folder: inout FolderState) async throws
        -> DeliveryResult
    {
        if message.hasNUL {
            return .permanentFailure("the message contains NUL bytes, which IMAP cannot carry (RFC 3501 §4.3)")
        }
        let header = message.deliveryID.map { Array("\(Self.idHeader): \($0)\r\n".utf8) } ?? []
        var entry: IMAPPendingAppend?
        if let key = message.deliveryKey, let id = message.deliveryID { entry = IMAPPendingAppend(key: key, id: id) }
        self.session.withLock { $0.entry = entry }
        if let entry, let late = try self.pendingAppends()[entry] {
            let found: UInt32?
            do {
                found = try await self.lookUp(entry.id, on: conn, folder: &folder)
            } catch let e as IMAPCommandError where e.status.condition != .bye {
                // The server will not say whether it has it: not sent again. Said to be passing (UNAVAILABLE, INUSE,
                // SERVERBUG): deferred. Otherwise a failure that counts toward max_attempts, so a server that always
                // refuses ends with the message marked failed, not deferred for ever (`popfetch forget` drops the
                // entry, accepting a second copy).
                let why = "cannot tell whether the message is in \(self.destination) already (\(e))"
                return e.status.code?.isTransient == true ? .temporaryFailure(why) : .failure(why)
            }
            if let uid = found {
                let text =
                    "message \(entry.id) is in \(self.destination) already (UID \(uid), appended before without a "
                    + "record): not appended again"
                self.logger.notice("\(text)")
                return .delivered
            }
            if let at = late, Self.now() - at < self.lateGrace {
                return .temporaryFailure(
                    "its APPEND to \(self.destination) timed out after the message was sent, "
                        + "\(Int(Self.now() - at)) s ago: it may still arrive there, so it is not sent again yet")
            }
        }
        let size = header.count + Self.wireSize(message)
        guard size <= IMAPDefaults.maximumAppendSize else {
            return .permanentFailure("the message (\(size) bytes) is larger than IMAP can append (4 GiB)")
        }
        if let limit = conn.capabilities.appendLimit, size > limit {
            return .permanentFailure("the message (\(size) bytes) is above the server's APPENDLIMIT (\(limit) bytes)")
        }
        let date = Self.internalDate(of: message)
        if let entry, let journal = self.journal, try self.pendingAppends()[entry] == nil {
            // Committed before a byte of it is sent: whatever happens next, the next poll knows to look for it.
            try journal.willAppend(entry)
            self.session.withLock { _ = $0.pending?.updateValue(nil, forKey: entry) }
        }
        while true {
            self.session.withLock { $0.append = .sending }
            let done = try await conn.append(
                mailbox: self.destination.folder, flags: self.flags, date: date, size: size
            ) { writer in
                try await Self.writeMessage(message, header: header, to: writer)
                self.session.withLock { $0.append = .sent }
            }
            self.session.withLock { $0.append = .none }
            if done.isOK { return .delivered }
            if done.status.code == .tryCreate && self.createFolder && !folder.created {
                let created = try await conn.execute(.create(mailbox: self.destination.folder))
                guard created.isOK || created.status.code == .alreadyExists else {
                    try self.notAppended(entry)
                    return .temporaryFailure(
                        "folder \(self.destination.folder) does not exist and could not be created: \(created.status)")
                }
                self.logger.notice("created folder \(self.destination.folder) on \(self.destination.host)")
                folder.created = true
                continue
            }
            // A refusal said to be temporary may come from a server that stored it anyway: the entry stays, and
            // the next attempt looks first.
            if !(done.status.code?.isTransient ?? false) { try self.notAppended(entry) }
            return self.result(of: done.status)
        }
    }

    /// The server refused the APPEND: the message is not in the folder (an entry pending from before was looked up
    /// and not found on the way here), so its entry goes.
    func notAppended(_ entry: IMAPPendingAppend?) throws {
        guard let entry, let journal = self.journal else { return }
        try journal.refused(entry)
        self.session.withLock { _ = $0.pending?.removeValue(forKey: entry) }
    }

    /// What a refused APPEND means for the message.
    func result(of status: IMAPStatus) -> DeliveryResult {
        let said = "IMAP server answered APPEND with \(status)"
        switch status.code {
        case .overQuota?:
            return .temporaryFailure(said)
        case .tryCreate?, .nonExistent?:
            return .temporaryFailure(
                "\(said) (folder \(self.destination.folder) does not exist; create it, or set imap_create_folder)")
        case .limit?:
            return .permanentFailure(said)
        case let code? where code.isTransient:
            return .temporaryFailure(said)
        default:
            return .failure(said)
        }
    }

    /// The UID of a message carrying `id` in the folder, if one is there.
    func lookUp(_ id: String, on conn: IMAPConnection, folder: inout FolderState) async throws -> UInt32? {
        if !folder.examined {
            let examined = try await conn.execute(.examine(mailbox: self.destination.folder))
            folder.examined = true
            guard examined.isOK else {
                if try await Self.folderMissing(examined, self.destination.folder, on: conn) {
                    // Nothing can be in a folder that does not exist.
                    folder.exists = false
                    return nil
                }
                throw IMAPCommandError(command: "EXAMINE", status: examined.status)
            }
        }
        guard folder.exists else { return nil }
        let found = try await conn.execute(.uidSearchHeader(field: Self.idHeader, value: id, fromUID: nil))
        guard found.isOK else { throw IMAPCommandError(command: "UID SEARCH", status: found.status) }
        return found.searchResults.first
    }

    /// Whether a refused EXAMINE means the folder does not exist: its code says so, or LIST finds no such folder
    /// (servers such as Dovecot refuse without a code).
    static func folderMissing(_ refused: IMAPCompletion, _ folder: String, on conn: IMAPConnection) async throws -> Bool
    {
        if refused.status.code == .nonExistent || refused.status.code == .tryCreate { return true }
        let listed = try await conn.execute(.list(mailbox: folder))
        return listed.isOK && listed.listed == 0
    }
}
