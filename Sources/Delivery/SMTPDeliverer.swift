#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MailTransport
public import NIOCore
public import NIOSSL
public import SMTPCore
public import Spool

/// Delivery into the local MTA over SMTP (RFC 5321) or LMTP (RFC 2033), from the spool.
///
/// One connection serves the whole poll (RSET between messages); if the MTA drops it, the message is sent again
/// on a new connection. Everything MAIL FROM needs is known from the spool before it is sent: the envelope sender
/// (Return-Path, else From, else `<>`), `SIZE=`, `BODY=8BITMIME` when the message has 8-bit bytes and the server
/// offers it, `SMTPUTF8` when an address needs it. MAIL, RCPT and DATA are pipelined when offered (RFC 2920).
/// Acceptance is the reply after the final dot (SMTP: one for all recipients; LMTP: one per accepted recipient).
public actor SMTPDeliverer: Deliverer {
    public let endpoint: SMTPEndpoint
    public let lmtp: Bool
    private let heloName: String
    private let connectTimeout: TimeAmount
    private let tls: SMTPTLSMode
    private let tlsContext: NIOSSLContext?
    private let credentials: (user: String, password: String)?
    /// Credentials may go over a clear connection (loopback host or unix socket).
    private let clearTextAuthAllowed: Bool
    private var connection: SMTPConnection?
    private var capabilities = SMTPCapabilities()
    private var needsReset = false
    /// `smtp_timeout`: every SMTP/LMTP wait is at most this (default: RFC 5321 §4.5.3.2's time-outs).
    private let timeoutCap: TimeAmount?

    public init(
        endpoint: SMTPEndpoint, lmtp: Bool, heloName: String, connectTimeout: TimeAmount,
        tls: SMTPTLSMode = .none, tlsContext: NIOSSLContext? = nil, credentials: (user: String, password: String)? = nil,
        clearTextAuthAllowed: Bool = false, timeoutCap: TimeAmount? = nil
    ) {
        self.timeoutCap = timeoutCap
        self.endpoint = endpoint
        self.lmtp = lmtp
        self.heloName = heloName
        self.connectTimeout = connectTimeout
        self.tls = tls
        self.tlsContext = tlsContext
        self.credentials = credentials
        self.clearTextAuthAllowed = clearTextAuthAllowed
    }

    /// An RFC 5321 time-out, capped by `smtp_timeout`.
    private func limit(_ rfc: TimeAmount) -> TimeAmount {
        guard let cap = self.timeoutCap else { return rfc }
        return min(rfc, cap)
    }

    public nonisolated func recipientGroups(_ recipients: [String]) -> [[String]] { [recipients] }

    public func deliver(_ message: SpooledMessage, to recipients: [String]) async throws -> [RecipientOutcome] {
        var lastError = ""
        for attempt in 0..<2 {
            do {
                return try await self.transaction(message, recipients: recipients)
            } catch let e as SMTPTransportError {
                lastError = e.description
            } catch let e as SMTPProtocolError {
                lastError = e.description
            } catch let e as SMTPCommand.EncodingError {
                return [RecipientOutcome(recipients: recipients, result: .failure(e.description))]
            } catch let e as SMTPAuthError {
                return [RecipientOutcome(recipients: recipients, result: .temporaryFailure(e.description))]
            } catch let e as SpoolError {
                // Mid-DATA: the connection must go (an end-of-data line now would commit part of the message).
                self.connection?.close()
                self.connection = nil
                return [RecipientOutcome(recipients: recipients, result: .temporaryFailure(e.description))]
            }
            // The MTA dropped the connection (or broke the protocol): reconnect and send again from the spool.
            self.connection?.close()
            self.connection = nil
            if attempt == 0 { continue }
        }
        return [RecipientOutcome(recipients: recipients, result: .temporaryFailure(lastError))]
    }

    public func finish() async {
        guard let c = self.connection else { return }
        self.connection = nil
        if c.isActive {
            try? await c.send([.quit], phase: "QUIT")
            _ = try? await c.reply(timeout: .seconds(5), phase: "QUIT")
        }
        c.close()
    }

    private var name: String { self.lmtp ? "LMTP" : "SMTP" }

    private func connect() async throws -> SMTPConnection {
        if let c = self.connection, c.isActive { return c }
        let implicit = self.tls == .implicit ? self.tlsContext : nil
        let c = try await SMTPConnection.connect(
            to: self.endpoint, connectTimeout: self.connectTimeout, implicitTLS: implicit)
        let greeting = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.greeting), phase: "waiting for the greeting")
        guard greeting.code == 220 else {
            c.close()
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: "greeting", detail: "MTA said \(greeting)")
        }
        let hello: SMTPCommand = self.lmtp ? .lhlo(self.heloName) : .ehlo(self.heloName)
        try await c.send([hello], phase: self.lmtp ? "LHLO" : "EHLO")
        var reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "EHLO")
        if !reply.isPositive && !self.lmtp {
            // RFC 5321 §4.1.4: fall back to HELO.
            try await c.send([.helo(self.heloName)], phase: "HELO")
            reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "HELO")
            self.capabilities = SMTPCapabilities()
        } else {
            self.capabilities = SMTPCapabilities(ehloReply: reply)
        }
        guard reply.isPositive else {
            c.close()
            throw SMTPTransportError(endpoint: self.endpoint.description, phase: "EHLO", detail: "MTA said \(reply)")
        }
        var encrypted = self.tls == .implicit
        if self.tls == .starttls {
            // RFC 3207; never continue in clear text when STARTTLS is missing or refused.
            guard self.capabilities.startTLS, let context = self.tlsContext else {
                c.close()
                throw SMTPTransportError(
                    endpoint: self.endpoint.description, phase: "EHLO",
                    detail: "smtp_tls = \"starttls\" but the MTA does not offer STARTTLS")
            }
            try await c.send([.startTLS], phase: "STARTTLS")
            let go = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "STARTTLS")
            guard go.code == 220 else {
                c.close()
                throw SMTPTransportError(
                    endpoint: self.endpoint.description, phase: "STARTTLS", detail: "MTA refused STARTTLS: \(go)")
            }
            try await c.startTLS(context: context, timeout: self.connectTimeout)
            encrypted = true
            try await c.send([hello], phase: "EHLO after STARTTLS")
            let again = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "EHLO after STARTTLS")
            guard again.isPositive else {
                c.close()
                throw SMTPTransportError(endpoint: self.endpoint.description, phase: "EHLO", detail: "MTA said \(again)")
            }
            self.capabilities = SMTPCapabilities(ehloReply: again)
        }
        if let credentials = self.credentials {
            try await self.authenticate(c, credentials, encrypted: encrypted)
        }
        self.connection = c
        self.needsReset = false
        return c
    }

    /// RFC 4954 AUTH with PLAIN (preferred) or LOGIN.
    private func authenticate(_ c: SMTPConnection, _ cred: (user: String, password: String), encrypted: Bool)
        async throws
    {
        guard encrypted || self.clearTextAuthAllowed else {
            c.close()
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: "AUTH",
                detail: "refusing to send SMTP credentials in clear text; set smtp_tls")
        }
        let mechanisms = (self.capabilities.keywords["AUTH"] ?? []).map { $0.uppercased() }
        func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
        var reply: SMTPReply
        if mechanisms.contains("PLAIN") {
            try await c.write(Array("AUTH PLAIN \(b64("\0\(cred.user)\0\(cred.password)"))\r\n".utf8), phase: "AUTH", timeout: self.limit(SMTPConnection.Timeouts.dataBlock))
            reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "AUTH PLAIN")
        } else if mechanisms.contains("LOGIN") {
            try await c.write(Array("AUTH LOGIN\r\n".utf8), phase: "AUTH", timeout: self.limit(SMTPConnection.Timeouts.dataBlock))
            reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "AUTH LOGIN")
            if reply.code == 334 {
                try await c.write(Array("\(b64(cred.user))\r\n".utf8), phase: "AUTH", timeout: self.limit(SMTPConnection.Timeouts.dataBlock))
                reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "AUTH LOGIN")
            }
            if reply.code == 334 {
                try await c.write(Array("\(b64(cred.password))\r\n".utf8), phase: "AUTH", timeout: self.limit(SMTPConnection.Timeouts.dataBlock))
                reply = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "AUTH LOGIN")
            }
        } else {
            c.close()
            throw SMTPTransportError(
                endpoint: self.endpoint.description, phase: "AUTH",
                detail: "smtp_user is set but the MTA offers neither AUTH PLAIN nor LOGIN")
        }
        guard reply.code == 235 else {
            c.close()
            throw SMTPAuthError(endpoint: self.endpoint.description, reply: reply)
        }
    }

    private static func outcome(_ reply: SMTPReply, _ what: String) -> DeliveryResult {
        if reply.isPositive { return .delivered }
        let text = "\(what): MTA said \(reply)"
        return reply.isPermanent ? .permanentFailure(text) : .temporaryFailure(text)
    }

    private func transaction(_ message: SpooledMessage, recipients: [String]) async throws -> [RecipientOutcome] {
        let c = try await self.connect()
        let caps = self.capabilities
        let pipelining = caps.pipelining
        var sender = message.envelopeSender
        if sender.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == "<" || $0 == ">" }) { sender = "" }
        let rcpts = recipients.map { self.lmtp || $0.contains("@") ? $0 : $0 + "@localhost" }
        var params: [String] = []
        if caps.size != nil { params.append("SIZE=\(message.length)") }
        if message.has8Bit && caps.eightBitMIME { params.append("BODY=8BITMIME") }
        let needsUTF8 =
            message.headerHas8Bit || ([sender] + rcpts).contains { $0.unicodeScalars.contains { $0.value > 0x7F } }
        if needsUTF8 && caps.smtpUTF8 { params.append("SMTPUTF8") }

        var commands: [SMTPCommand] = []
        if self.needsReset { commands.append(.rset) }
        commands.append(.mailFrom(sender, parameters: params))
        commands += rcpts.map { .rcptTo($0) }
        commands.append(.data)
        self.needsReset = true

        // Replies come in order; without PIPELINING each command waits for its reply.
        if pipelining {
            try await c.send(commands, phase: "MAIL/RCPT/DATA")
        }
        if commands.first == .rset {
            _ = try await Self.exchange(
                .rset, on: c, pipelined: pipelining, phase: "RSET", timeout: self.limit(SMTPConnection.Timeouts.command))
        }
        let mail = try await Self.exchange(
            .mailFrom(sender, parameters: params), on: c, pipelined: pipelining, phase: "MAIL FROM",
            timeout: self.limit(SMTPConnection.Timeouts.command))
        if !mail.isPositive {
            if pipelining {
                // The RCPTs and DATA were sent too: read their (negative) replies to stay in step.
                for _ in rcpts { _ = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.command), phase: "RCPT TO") }
                _ = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.dataInitiation), phase: "DATA")
            }
            return [RecipientOutcome(recipients: recipients, result: Self.outcome(mail, "MAIL FROM"))]
        }
        var outcomes: [RecipientOutcome] = []
        var accepted: [(original: String, address: String)] = []
        for (original, address) in zip(recipients, rcpts) {
            let r = try await Self.exchange(
                .rcptTo(address), on: c, pipelined: pipelining, phase: "RCPT TO",
                timeout: self.limit(SMTPConnection.Timeouts.command))
            if r.isPositive {
                accepted.append((original, address))
            } else {
                outcomes.append(RecipientOutcome(recipients: [original], result: Self.outcome(r, "RCPT TO:<\(address)>")))
            }
        }
        if accepted.isEmpty {
            if pipelining {
                _ = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.dataInitiation), phase: "DATA")
            }
            return outcomes
        }
        let data = try await Self.exchange(
            .data, on: c, pipelined: pipelining, phase: "DATA", timeout: self.limit(SMTPConnection.Timeouts.dataInitiation))
        guard data.code == 354 else {
            let result = Self.outcome(data, "DATA")
            outcomes.append(RecipientOutcome(recipients: accepted.map(\.original), result: result))
            return outcomes
        }
        try await self.sendBody(message, on: c)
        if self.lmtp {
            // RFC 2033 §4.2: one reply per accepted recipient, in order.
            for (original, address) in accepted {
                let r = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.dataTermination), phase: "end of data")
                outcomes.append(RecipientOutcome(recipients: [original], result: Self.outcome(r, "LMTP <\(address)>")))
            }
        } else {
            let r = try await c.reply(timeout: self.limit(SMTPConnection.Timeouts.dataTermination), phase: "end of data")
            outcomes.append(RecipientOutcome(recipients: accepted.map(\.original), result: Self.outcome(r, "end of data")))
        }
        return outcomes
    }

    /// Sends `command` (unless it went out pipelined already) and reads its reply.
    private static func exchange(
        _ command: SMTPCommand, on c: SMTPConnection, pipelined: Bool, phase: String,
        timeout: TimeAmount
    ) async throws -> SMTPReply {
        if !pipelined { try await c.send([command], phase: phase) }
        return try await c.reply(timeout: timeout, phase: phase)
    }

    /// Streams the spool file (trace header and message) as DATA: CRLF, dot-stuffed, `.CRLF` at the end, which
    /// rides in the last block (one write and one wait fewer per message). The spool reader ends exactly at the
    /// recorded length, or throws.
    private func sendBody(_ message: SpooledMessage, on c: SMTPConnection) async throws {
        var encoder = DataEncoder()
        var reader = message.makeReader()
        var out: [UInt8] = []
        repeat {
            out.removeAll(keepingCapacity: true)
            _ = try reader.nextChunk { encoder.encode($0, into: &out) }
            if reader.isAtEnd { encoder.finish(into: &out) }
            try await c.write(out, phase: "sending the message", timeout: self.limit(SMTPConnection.Timeouts.dataBlock))
        } while !reader.isAtEnd
    }
}

/// SMTP authentication to the relay failed: the message stays on the POP3 server.
struct SMTPAuthError: Error, CustomStringConvertible {
    var endpoint: String
    var reply: SMTPReply
    var description: String { "SMTP authentication to \(self.endpoint) failed: MTA said \(self.reply)" }
}
