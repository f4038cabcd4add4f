import SMTPCore
import Testing

typealias Machine = SMTPClientStateMachine
typealias Action = SMTPClientStateMachine.Action
typealias Step = SMTPClientStateMachine.Step
typealias RecipientResult = SMTPClientStateMachine.RecipientResult

// MARK: - Replies

/// A reply of one or more lines.
func r(_ code: Int, _ lines: String...) -> SMTPReply { SMTPReply(code: code, lines: lines.isEmpty ? [""] : lines) }

/// A `250` EHLO/LHLO reply announcing `extensions` (the first line is the server's name).
func ehlo(_ extensions: String...) -> SMTPReply { SMTPReply(code: 250, lines: ["mx.test"] + extensions) }

func caps(_ reply: SMTPReply) -> SMTPCapabilities { SMTPCapabilities(ehloReply: reply) }

let client = "client.test"
let greeting = r(220, "mx.test ESMTP")
let mailOK = r(250, "2.1.0 Ok")
let rcptOK = r(250, "2.1.5 Ok")
let goAhead = r(354, "End data with <CR><LF>.<CR><LF>")
let queued = r(250, "2.0.0 Ok: queued as 4F2B1")
let noopOK = r(250, "2.0.0 Ok")
let bye = r(221, "2.0.0 Bye")
let closing = r(421, "4.3.2 Service shutting down")
let resetOK = r(250, "2.0.0 Ok")

// MARK: - Results

func accepted(_ rcpt: String, _ reply: SMTPReply, _ step: Step = .endOfData) -> RecipientResult {
    RecipientResult(recipient: rcpt, status: .accepted, reply: reply, step: step)
}
func temporary(_ rcpt: String, _ reply: SMTPReply, _ step: Step) -> RecipientResult {
    RecipientResult(recipient: rcpt, status: .temporaryFailure, reply: reply, step: step)
}
func permanent(_ rcpt: String, _ reply: SMTPReply, _ step: Step) -> RecipientResult {
    RecipientResult(recipient: rcpt, status: .permanentFailure, reply: reply, step: step)
}

// MARK: - Script

/// Something that happens to the machine.
enum Input: Sendable, CustomStringConvertible {
    case reply(SMTPReply)
    case tlsEstablished
    case authenticate(String, String?)
    case authenticationStep(String)
    case begin(sender: String, recipients: [String], size: Int?, needsUTF8: Bool, eightBit: Bool)
    case bodySent
    case quit
    /// The connection dropped: the machine's verdict on what was decided (thrown), or `.close` when nothing was.
    case connectionLost

    static func begin(
        _ sender: String, _ recipients: [String], size: Int? = nil, utf8: Bool = false, eightBit: Bool = false
    )
        -> Input
    {
        .begin(sender: sender, recipients: recipients, size: size, needsUTF8: utf8, eightBit: eightBit)
    }

    var description: String {
        switch self {
        case .reply(let reply): return "S: \(reply)"
        case .tlsEstablished: return "tlsEstablished()"
        case .authenticate(let m, let ir): return "authenticate(\(m), \(ir == nil ? "nil" : "<ir>"))"
        case .authenticationStep(let s): return "authenticationStep(\(s.count) chars)"
        case .begin(let s, let rs, let size, let u, let e):
            return "beginTransaction(<\(s)>, \(rs), size: \(size.map(String.init) ?? "nil"), utf8: \(u), 8bit: \(e))"
        case .bodySent: return "bodySent()"
        case .quit: return "quit()"
        case .connectionLost: return "connectionLost()"
        }
    }

    func apply(to machine: inout Machine) throws -> Action {
        switch self {
        case .reply(let reply): return try machine.receivedReply(reply)
        case .tlsEstablished: return try machine.tlsEstablished()
        case .authenticate(let m, let ir): return try machine.authenticate(mechanism: m, initialResponse: ir)
        case .authenticationStep(let s): return try machine.authenticationStep(response: s)
        case .begin(let s, let rs, let size, let u, let e):
            return try machine.beginTransaction(sender: s, recipients: rs, size: size, needsUTF8: u, eightBit: e)
        case .bodySent: return try machine.bodySent()
        case .quit: return machine.quit()
        case .connectionLost:
            if let error = machine.connectionLost("dropped") { throw error }
            return .close
        }
    }
}

/// What the machine must answer.
enum Outcome: Sendable {
    case action(Action)
    /// An ``SMTPClientError`` with this code and temporariness; `results` checks
    /// ``SMTPClientError/transactionResults``.
    case error(SMTPClientError.Code, temporary: Bool, results: [RecipientResult] = [])
    case usageError
    case encodingError

    static let wait = Outcome.action(.waitForReply)
    static func send(_ commands: SMTPCommand...) -> Outcome { .action(.send(commands)) }
    static func complete(_ results: RecipientResult...) -> Outcome { .action(.transactionComplete(results)) }
}

/// One step of a row: an input, the expected outcome, and optionally the replies awaited afterwards.
struct Exchange: Sendable {
    var input: Input
    var outcome: Outcome
    var awaiting: [Step]?
}

func x(_ input: Input, _ outcome: Outcome, awaiting: [Step]? = nil) -> Exchange {
    Exchange(input: input, outcome: outcome, awaiting: awaiting)
}

/// One table row: a configuration and a sequence of events with their expected actions or errors.
struct Row: Sendable, CustomTestStringConvertible {
    var name: String
    var configuration: Machine.Configuration
    var script: [Exchange]
    var finalState: Machine.SessionState?

    init(
        _ name: String, _ configuration: Machine.Configuration, _ script: [Exchange],
        final finalState: Machine.SessionState? = nil
    ) {
        self.name = name
        self.configuration = configuration
        self.script = script
        self.finalState = finalState
    }

    /// A plain SMTP session, no TLS.
    init(_ name: String, _ script: [Exchange], final finalState: Machine.SessionState? = nil) {
        self.init(name, .init(clientName: client), script, final: finalState)
    }

    var testDescription: String { self.name }
}

let lmtp = Machine.Configuration(dialect: .lmtp, clientName: client)
let startTLS = Machine.Configuration(clientName: client, security: .startTLS)

/// Greeting and EHLO (LHLO for LMTP) answered with `hello`: the session is ready.
func connected(_ hello: SMTPReply = ehlo(), lmtp: Bool = false) -> [Exchange] {
    [
        x(.reply(greeting), .send(lmtp ? .lhlo(client) : .ehlo(client)), awaiting: [.hello]),
        x(.reply(hello), .action(.ready(caps(hello))), awaiting: []),
    ]
}

/// Runs a row, checking every outcome.
func run(_ row: Row) {
    var machine = Machine(configuration: row.configuration)
    for (i, exchange) in row.script.enumerated() {
        let step = "step \(i + 1) \(exchange.input)"
        let result = Result { try exchange.input.apply(to: &machine) }
        switch (exchange.outcome, result) {
        case (.action(let expected), .success(let action)):
            #expect(action == expected, "\(step)")
        case (.error(let code, let temporary, let results), .failure(let error as SMTPClientError)):
            #expect(error.code == code, "\(step): \(error)")
            #expect(error.isTemporary == temporary, "\(step): \(error)")
            #expect(error.transactionResults == results, "\(step)")
            #expect(machine.state == .failed, "\(step)")
            #expect(machine.awaitedReplies.isEmpty, "\(step)")
        case (.usageError, .failure(let error)):
            #expect(error is Machine.UsageError, "\(step): \(error)")
        case (.encodingError, .failure(let error)):
            #expect(error is SMTPCommand.EncodingError, "\(step): \(error)")
        case (let expected, let got):
            Issue.record("\(step): expected \(expected), got \(got)")
        }
        if let awaiting = exchange.awaiting {
            #expect(machine.awaitedReplies == awaiting, "\(step)")
        }
    }
    if let state = row.finalState {
        #expect(machine.state == state)
    }
}
