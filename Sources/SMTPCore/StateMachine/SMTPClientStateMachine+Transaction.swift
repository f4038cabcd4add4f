extension SMTPClientStateMachine {
    /// A server's verdict on one recipient, before it is known which recipients it applies to.
    struct Verdict: Hashable, Sendable {
        var status: RecipientResult.Status
        var reply: SMTPReply
        var step: Step
    }

    /// One mail transaction (RFC 5321 §3.3): what was sent and every reply that came back.
    struct Transaction: Sendable {
        var recipients: [String]
        var pipelined: Bool
        /// Sent after the RSET reply when not pipelining.
        var mailCommand: SMTPCommand
        var mail: Verdict?
        /// One per RCPT reply received, in RCPT order.
        var rcpt: [Verdict] = []
        /// DATA was refused (a `354` is not kept).
        var dataRefusal: Verdict?
        /// `354` came although no recipient can take the message; the lone `.` was asked for.
        var emptyBody = false
        /// Per recipient: its reply after the end of data (SMTP: the one reply, for every accepted recipient).
        var endOfData: [Verdict?]
        /// The accepted recipients, fixed when the body was sent: whom the end-of-data replies are for.
        var acceptedAtEndOfData: [Int] = []
        var endOfDataReceived = 0
        var endOfDataExpected = 0
        /// Some end-of-data reply was not 2xx.
        var endOfDataRefused = false
        /// The NOOP behind the end of data was answered in step: the end-of-data replies stand. Until then they
        /// are only read, not believed (one sent before the server had the whole message shifts every other).
        var proven = false

        init(recipients: [String], pipelined: Bool, mailCommand: SMTPCommand) {
            self.recipients = recipients
            self.pipelined = pipelined
            self.mailCommand = mailCommand
            self.endOfData = Array(repeating: nil, count: recipients.count)
        }

        var mailAccepted: Bool { self.mail?.status == .accepted }

        /// Indices of the recipients whose RCPT was accepted, in RCPT order.
        var acceptedRecipients: [Int] { self.rcpt.indices.filter { self.rcpt[$0].status == .accepted } }

        /// Every recipient's outcome. A recipient nothing decided yet gets `fallback`; without one, every recipient
        /// must have been decided.
        func results(fallback: Verdict?) -> [RecipientResult] {
            self.recipients.indices.map { i in
                let verdict: Verdict
                if let mail = self.mail, mail.status != .accepted {
                    verdict = mail
                } else if i < self.rcpt.count, self.rcpt[i].status != .accepted {
                    verdict = self.rcpt[i]
                } else if i < self.rcpt.count, let refusal = self.dataRefusal {
                    verdict = refusal
                } else if self.proven, let reply = self.endOfData[i] {
                    verdict = reply
                } else if let fallback {
                    verdict = fallback
                } else {
                    preconditionFailure("transaction complete with recipient \(i) undecided")
                }
                return RecipientResult(
                    recipient: self.recipients[i], status: verdict.status, reply: verdict.reply, step: verdict.step)
            }
        }
    }

    /// RFC 5321 §4.2.1: `2yz` accepted, `4yz` temporary, `5yz` permanent; the RFC 5321 §4.3.2 sequences give MAIL,
    /// RCPT and the end of data no `3yz`. RFC 5321 §4.5.3.1.10: a `552` to RCPT ("too many recipients", the RFC 821
    /// code) is temporary.
    private func verdict(_ reply: SMTPReply, step: Step) throws -> Verdict {
        let status: RecipientResult.Status
        if reply.isPositive {
            status = .accepted
        } else if reply.isTransient || (step == .rcptTo && reply.code == 552) {
            status = .temporaryFailure
        } else if reply.isPermanent {
            status = .permanentFailure
        } else {
            throw self.failure(.unexpectedReply, reply, step: step, "\(step) cannot be answered \(reply.code)")
        }
        return Verdict(status: status, reply: reply, step: step)
    }

    mutating func handleTransactionReply(_ reply: SMTPReply, step: Step) throws -> Action {
        guard var t = self.transaction else {
            preconditionFailure("\(step) reply awaited without a transaction")
        }
        let action: Action
        switch step {
        case .rset:
            // RFC 5321 §4.1.1.5. A refusal is ignored, as popfetch's deliverer does: the MAIL reply that follows
            // tells whether the server is in step.
            if reply.isPositive {
                self.serverTransactionOpen = false
            } else if !(reply.isTransient || reply.isPermanent) {
                throw self.failure(.unexpectedReply, reply, step: step, "RSET answered \(reply.code)")
            }
            if t.pipelined {
                action = .waitForReply
            } else {
                self.expect(.mailFrom)
                action = .send([t.mailCommand])
            }
        case .mailFrom:
            var v = try self.verdict(reply, step: step)
            if reply.code == 503 {
                // "Bad sequence of commands": the server's state, not the message, is at fault (a transaction it
                // kept open). Temporary, never a permanent refusal of this message.
                v.status = .temporaryFailure
                self.serverTransactionOpen = true
            }
            t.mail = v
            if v.status == .accepted { self.serverTransactionOpen = true }
            if t.pipelined {
                action = .waitForReply
            } else if v.status == .accepted {
                self.expect(.rcptTo)
                action = .send([.rcptTo(t.recipients[0])])
            } else {
                // Nothing else was sent; the MAIL refusal decides for every recipient.
                return self.complete(t)
            }
        case .rcptTo:
            t.rcpt.append(try self.verdict(reply, step: step))
            if t.pipelined {
                action = .waitForReply
            } else if t.rcpt.count < t.recipients.count {
                self.expect(.rcptTo)
                action = .send([.rcptTo(t.recipients[t.rcpt.count])])
            } else if t.acceptedRecipients.isEmpty {
                // RFC 5321 §3.3: no recipient, no DATA.
                return self.complete(t)
            } else {
                self.expect(.data)
                action = .send([.data])
            }
        case .data:
            if reply.code == 354 {
                if t.mailAccepted && !t.acceptedRecipients.isEmpty {
                    self.state = .sendingBody
                    action = .sendBody
                } else {
                    // RFC 2920 §3.1: DATA accepted though no recipient was: send a single dot.
                    // RFC 2033 §4.2: an LMTP server must refuse DATA (503) without a successful RCPT, and would
                    // owe no reply to the dot.
                    if self.configuration.dialect == .lmtp && t.acceptedRecipients.isEmpty {
                        throw self.failure(
                            .unexpectedReply, reply, step: step,
                            "354 to DATA without an accepted recipient (RFC 2033 §4.2 requires 503)")
                    }
                    t.emptyBody = true
                    self.state = .sendingBody
                    action = .sendEmptyBody
                }
            } else if reply.isTransient || reply.isPermanent {
                // RFC 5321 §4.3.2 DATA: E: 450, 451, 452, 503, 550, 552, 554.
                let v = try self.verdict(reply, step: step)
                if t.mailAccepted && !t.acceptedRecipients.isEmpty { t.dataRefusal = v }
                return self.complete(t)
            } else {
                // A 2xx to DATA is a reply out of step (a stale one read as MAIL's, every reply since shifted by one):
                // none of this group's replies can be trusted, the MAIL and RCPT verdicts included.
                throw self.failure(
                    .unexpectedReply, reply, step: .noop,
                    "DATA answered \(reply.code): the replies are out of step with the commands, so none of this "
                        + "transaction's stands")
            }
        case .endOfData:
            let v = try self.verdict(reply, step: step)
            if !t.emptyBody {
                if self.configuration.dialect == .lmtp {
                    // RFC 2033 §4.2: one reply per accepted recipient, in RCPT order.
                    t.endOfData[t.acceptedAtEndOfData[t.endOfDataReceived]] = v
                } else {
                    for i in t.acceptedAtEndOfData { t.endOfData[i] = v }
                }
            }
            t.endOfDataReceived += 1
            if v.status != .accepted { t.endOfDataRefused = true }
            if t.endOfDataReceived == t.endOfDataExpected {
                // RFC 5321 §4.1.1.4: the end of data consumes the server's transaction state, whatever the reply. Not
                // every server does: Postfix, refusing at the end of data, answers the next MAIL "503 nested MAIL
                // command". After a refusal the next transaction starts with RSET (one pipelined command).
                self.serverTransactionOpen = t.endOfDataRefused
                if t.emptyBody {
                    return self.complete(t)
                }
                if t.pipelined {
                    // The NOOP went out behind the end of data: its reply decides.
                    action = .waitForReply
                } else {
                    self.expect(.noop)
                    action = .send([.noop])
                }
            } else {
                action = .waitForReply
            }
        case .noop:
            guard reply.isPositive else {
                throw self.failure(
                    .unexpectedReply, reply, step: step,
                    "NOOP after the end of data answered \(reply.code): the replies are out of step with the commands "
                        + "(a reply sent before the server had the whole message, or one too many), so none of this "
                        + "transaction's stands")
            }
            t.proven = true
            return self.complete(t)
        default:
            preconditionFailure("not a transaction step: \(step)")
        }
        self.transaction = t
        return action
    }

    private mutating func complete(_ t: Transaction) -> Action {
        self.transaction = nil
        self.state = .ready
        return .transactionComplete(t.results(fallback: nil))
    }
}
