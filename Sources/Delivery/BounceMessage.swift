package import Foundation
package import Spool

#if canImport(Glibc)
    import Glibc
#endif

/// A delivery status notification (RFC 3464 multipart/report) for a message the local MTA rejected permanently.
/// It goes to the local recipient, never to the message's claimed sender.
package enum BounceMessage {
    package static func make(
        original: SpooledMessage, reason: String, rejectedRecipients: [String], bounceTo: String,
        accountName: String, mailbox: String, localHost: String, date: Date
    ) -> [UInt8] {
        let headers = Self.originalHeaders(original)
        let subject = Self.header("Subject", in: headers).map { " (" + Self.oneLine($0).prefix(100) + ")" } ?? ""
        let boundary = "popfetch-dsn-\(UInt64.random(in: 0...UInt64.max))"
        let when = TraceHeader.rfc5322Date(date)
        let reasonLine = Self.oneLine(reason)
        var text = """
            Return-Path: <>
            From: Mail Delivery System <MAILER-DAEMON@\(localHost)>
            To: <\(bounceTo)>
            Subject: Undelivered fetched mail\(subject)
            Date: \(when)
            Auto-Submitted: auto-replied
            MIME-Version: 1.0
            Content-Type: multipart/report; report-type=delivery-status; boundary="\(boundary)"

            --\(boundary)
            Content-Type: text/plain; charset=utf-8

            popfetch fetched this message from account \(accountName) (\(mailbox)), but the local
            mail system rejected it permanently:

                \(reasonLine)

            The message was deleted from the POP3 server (on_permanent_failure = "bounce"). Its headers follow.

            --\(boundary)
            Content-Type: message/delivery-status

            Reporting-MTA: dns; \(localHost)
            Arrival-Date: \(when)

            """
        for r in rejectedRecipients {
            text +=
                "Final-Recipient: rfc822; \(r)\nAction: failed\nStatus: 5.0.0\nDiagnostic-Code: smtp; \(reasonLine)\n\n"
        }
        text += "--\(boundary)\nContent-Type: text/rfc822-headers\n\n"
        var bytes = Array(text.utf8)
        bytes += headers
        if bytes.last != 10 { bytes.append(10) }
        bytes += Array("\n--\(boundary)--\n".utf8)
        return bytes
    }

    /// The original header section (bounded), read from the spool after the trace header.
    static func originalHeaders(_ m: SpooledMessage) -> [UInt8] {
        guard let bytes = try? m.prefix(64 * 1024), !bytes.isEmpty else { return [] }
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 10 && bytes[i + 1] == 10 { return Array(bytes[0...i]) }
            i += 1
        }
        return bytes
    }

    static func header(_ name: String, in headers: [UInt8]) -> String? {
        let text = String(decoding: headers, as: UTF8.self)
        for line in text.split(separator: "\n") where line.lowercased().hasPrefix(name.lowercased() + ":") {
            return String(line.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }

    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
