import IMAPCore
import NIOCore

/// Responses: tags, completions, continuations, untagged data, within deadlines.
extension IMAPConnection {
    func makeTag() -> String {
        defer { self.nextTag += 1 }
        let digits = String(self.nextTag)
        return "A" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// Reads responses up to the completion of `tag`.
    func completion(of tag: String) async throws -> IMAPCompletion {
        let deadline = NIODeadline.now() + self.timeouts.command
        var gathered = IMAPCompletion(status: IMAPStatus(condition: .ok, text: ""))
        while true {
            let response = try await self.nextResponse(deadline: deadline)
            switch response {
            case .tagged(let t, let status) where t == tag:
                self.trace?("< \(t) \(status)")
                self.takeCapabilities(from: status)
                gathered.status = status
                return gathered
            case .continuation:
                throw IMAPProtocolError("a continuation request where none was expected (\(self.phase))")
            default:
                try self.untagged(response, into: &gathered)
            }
        }
    }

    /// Waits for the `+` that lets a synchronizing literal go; returns the command's completion instead when the
    /// server ends the command first (a refusal).
    func awaitContinuation(tag: String) async throws -> IMAPCompletion? {
        let deadline = NIODeadline.now() + self.timeouts.command
        while true {
            let response = try await self.nextResponse(deadline: deadline)
            switch response {
            case .continuation:
                return nil
            case .tagged(let t, let status) where t == tag:
                self.trace?("< \(t) \(status)")
                guard status.condition != .ok else {
                    // Only a refusal may end a command before its literal was sent: an OK would claim a message
                    // (or a password) the server never received.
                    throw IMAPProtocolError("\(self.phase) answered OK before its literal was sent")
                }
                return IMAPCompletion(status: status)
            default:
                var ignored = IMAPCompletion(status: IMAPStatus(condition: .ok, text: ""))
                try self.untagged(response, into: &ignored)
            }
        }
    }

    /// Untagged data on the way to a completion: capabilities kept, SEARCH results gathered, a tagged response for
    /// another command refused (popfetch has one command in flight).
    func untagged(_ response: IMAPResponse, into gathered: inout IMAPCompletion) throws {
        switch response {
        case .capability(let names):
            self.trace?("< * CAPABILITY \(names.joined(separator: " "))")
            self.capabilities = IMAPCapabilities(names)
        case .search(let numbers):
            self.trace?("< * SEARCH (\(numbers.count) results)")
            gathered.searchResults += numbers.prefix(
                max(0, IMAPDefaults.maximumSearchResults - gathered.searchResults.count))
        case .untaggedStatus(let status):
            self.trace?("< * \(status)")
            self.takeCapabilities(from: status)
            if let code = status.code, gathered.untaggedCodes.count < 100 { gathered.untaggedCodes.append(code) }
        case .exists(let n):
            self.trace?("< * \(n) EXISTS")
        case .untaggedOther(let keyword):
            self.trace?("< * \(keyword) ...")
            if keyword == "LIST" { gathered.listed += 1 }
        case .tagged(let t, let status):
            throw IMAPProtocolError("a completion for tag \(t), which was never sent (\(status))")
        case .continuation:
            throw IMAPProtocolError("a continuation request where none was expected (\(self.phase))")
        }
    }

    func takeCapabilities(from status: IMAPStatus) {
        if case .capability(let names) = status.code { self.capabilities = IMAPCapabilities(names) }
    }

    /// The next response, within `deadline`. BYE marks the session closing and, unless `allowBye`, throws.
    func nextResponse(deadline: NIODeadline, allowBye: Bool = false) async throws -> IMAPResponse {
        while true {
            if let response = try self.parser.parse(&self.buffer) {
                if self.buffer.readableBytes == 0 { self.buffer.clear() }
                if case .untaggedStatus(let status) = response, status.condition == .bye {
                    self.closing = true
                    self.trace?("< * \(status)")
                    if !allowBye { throw IMAPCommandError(command: self.phase, status: status) }
                }
                return response
            }
            var chunk = try await self.readChunk(deadline: deadline)
            if self.buffer.readableBytes == 0 {
                self.buffer = chunk
            } else {
                self.buffer.discardReadBytes()
                self.buffer.writeBuffer(&chunk)
            }
        }
    }
}
