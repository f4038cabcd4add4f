import SMTPCore

/// The table: each row is a session, event by event, with the action (or error) each event must produce.
enum Table {
    static let pipelining = ehlo("PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8")

    // MARK: Connection: greeting, EHLO, HELO fallback (RFC 5321 §3.1, §4.1.4, §4.3.2; RFC 2033 §4.1)

    static let connection: [Row] = [
        Row(
            "greeting, EHLO, ready with the announced capabilities",
            connected(ehlo("PIPELINING", "SIZE 1000", "8BITMIME", "AUTH PLAIN LOGIN")), final: .ready),
        Row(
            "a 421 greeting is a temporary connection failure",
            [x(.reply(r(421, "4.7.0 Too many connections")), .error(.serviceClosing, temporary: true))],
            final: .failed),
        Row(
            "a 554 greeting refuses the session permanently",
            [x(.reply(r(554, "5.7.1 No SMTP service here")), .error(.greetingRefused, temporary: false))]),
        Row(
            "a 450 greeting refuses the session temporarily",
            [x(.reply(r(450, "busy")), .error(.greetingRefused, temporary: true))]),
        Row(
            "a 250 greeting is not a greeting",
            [x(.reply(r(250, "hello?")), .error(.unexpectedReply, temporary: true))]),
        Row(
            "a reply code outside 2yz-5yz is a protocol error",
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(r(600, "what")), .error(.unexpectedReply, temporary: true)),
            ]),
        Row(
            "EHLO answered 354 is a protocol error",
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(goAhead), .error(.unexpectedReply, temporary: true)),
            ]),
        Row(
            "EHLO 502 falls back to HELO, without extensions",
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(r(502, "5.5.2 Error: command not recognized")), .send(.helo(client)), awaiting: [.helo]),
                x(.reply(r(250, "mx.test")), .action(.ready(SMTPCapabilities())), awaiting: []),
            ], final: .ready),
        Row(
            "EHLO 550 then HELO 501: hello refused, permanently",
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(r(550, "no")), .send(.helo(client))),
                x(.reply(r(501, "5.5.4 Syntax")), .error(.helloRefused, temporary: false)),
            ]),
        Row(
            "EHLO 421 closes: no HELO fallback",
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(closing), .error(.serviceClosing, temporary: true)),
            ]),
        Row("LMTP greets with LHLO", lmtp, connected(ehlo("PIPELINING", "8BITMIME"), lmtp: true), final: .ready),
        Row(
            "LHLO 500: no HELO fallback in LMTP (RFC 2033 §4.1)", lmtp,
            [
                x(.reply(greeting), .send(.lhlo(client))),
                x(.reply(r(500, "5.5.1 Unknown command")), .error(.helloRefused, temporary: false)),
            ]),
    ]

    // MARK: STARTTLS (RFC 3207)

    static let beforeTLS = ehlo("PIPELINING", "STARTTLS", "AUTH LOGIN")
    static let afterTLS = ehlo("PIPELINING", "SIZE 5000", "AUTH PLAIN LOGIN")

    static let tls: [Row] = [
        Row(
            "STARTTLS: 220, handshake, EHLO again; only the capabilities after TLS count", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS), awaiting: [.startTLS]),
                x(.reply(r(220, "2.0.0 Ready to start TLS")), .action(.startTLS), awaiting: []),
                x(.tlsEstablished, .send(.ehlo(client)), awaiting: [.hello]),
                x(.reply(afterTLS), .action(.ready(caps(afterTLS)))),
            ], final: .ready),
        Row(
            "STARTTLS required but not offered: fail rather than go on in clear text", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(ehlo("PIPELINING", "AUTH PLAIN")), .error(.startTLSNotOffered, temporary: true)),
            ]),
        Row(
            "STARTTLS required after a HELO fallback: not offered", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(r(500, "what")), .send(.helo(client))),
                x(.reply(r(250, "mx.test")), .error(.startTLSNotOffered, temporary: true)),
            ]),
        Row(
            "STARTTLS 454: refused, temporarily", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(454, "4.7.0 TLS not available")), .error(.startTLSRefused, temporary: true)),
            ]),
        Row(
            "STARTTLS 501: refused, permanently", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(501, "5.5.4 Syntax error")), .error(.startTLSRefused, temporary: false)),
            ]),
        Row(
            "STARTTLS answered 250 is a protocol error", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(250, "sure")), .error(.unexpectedReply, temporary: true)),
            ]),
        Row(
            "a reply between the 220 to STARTTLS and the handshake is rejected (clear-text injection)", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(220, "go ahead")), .action(.startTLS)),
                x(.reply(r(250, "mx.test injected")), .error(.unexpectedReply, temporary: true)),
                x(.tlsEstablished, .usageError),
            ], final: .failed),
        Row(
            "EHLO refused after STARTTLS: no HELO fallback", startTLS,
            [
                x(.reply(greeting), .send(.ehlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(220, "go ahead")), .action(.startTLS)),
                x(.tlsEstablished, .send(.ehlo(client))),
                x(.reply(r(550, "no")), .error(.helloRefused, temporary: false)),
            ]),
        Row(
            "tlsEstablished without an accepted STARTTLS is a usage error",
            connected() + [x(.tlsEstablished, .usageError)], final: .ready),
        Row(
            "implicit TLS: no STARTTLS, even when offered",
            Machine.Configuration(clientName: client, security: .implicitTLS), connected(beforeTLS), final: .ready),
        Row(
            "LMTP with STARTTLS sends LHLO again after the handshake",
            Machine.Configuration(dialect: .lmtp, clientName: client, security: .startTLS),
            [
                x(.reply(greeting), .send(.lhlo(client))),
                x(.reply(beforeTLS), .send(.startTLS)),
                x(.reply(r(220, "go ahead")), .action(.startTLS)),
                x(.tlsEstablished, .send(.lhlo(client))),
                x(.reply(afterTLS), .action(.ready(caps(afterTLS)))),
            ]),
    ]

    // MARK: AUTH (RFC 4954)

    static let authReady = ehlo("AUTH PLAIN LOGIN XOAUTH2")
    static let authOK = r(235, "2.7.0 Authentication successful")
    static let longToken = String(repeating: "QUJD", count: 130)  // 520 base64 characters

    static let auth: [Row] = [
        Row(
            "AUTH PLAIN with an initial response; 235",
            connected(authReady) + [
                x(
                    .authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="),
                    .action(.sendAuthentication(.auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="))),
                    awaiting: [.authentication]),
                x(.reply(authOK), .action(.authenticated), awaiting: []),
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
            ]),
        Row(
            "AUTH LOGIN: two challenges, two responses, 235",
            connected(authReady) + [
                x(
                    .authenticate("LOGIN", nil),
                    .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil)))),
                x(.reply(r(334, "VXNlcm5hbWU6")), .action(.authenticationChallenge("VXNlcm5hbWU6")), awaiting: []),
                x(.authenticationStep("YWxpY2U="), .action(.sendAuthentication(.response("YWxpY2U=")))),
                x(.reply(r(334, "UGFzc3dvcmQ6")), .action(.authenticationChallenge("UGFzc3dvcmQ6"))),
                x(.authenticationStep("c2VjcmV0"), .action(.sendAuthentication(.response("c2VjcmV0")))),
                x(.reply(authOK), .action(.authenticated)),
            ], final: .ready),
        Row(
            "AUTH 535: permanent authentication failure",
            connected(authReady) + [
                x(
                    .authenticate("PLAIN", "AGFsaWNlAHdyb25n"),
                    .action(.sendAuthentication(.auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHdyb25n")))),
                x(
                    .reply(r(535, "5.7.8 Authentication credentials invalid")),
                    .error(.authenticationFailed, temporary: false)),
            ]),
        Row(
            "AUTH 454: temporary authentication failure",
            connected(authReady) + [
                x(
                    .authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="),
                    .action(.sendAuthentication(.auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA==")))),
                x(
                    .reply(r(454, "4.7.0 Temporary authentication failure")),
                    .error(.authenticationFailed, temporary: true)),
            ]),
        Row(
            "an initial response too long for the 512-octet line goes after the empty 334 (RFC 4954 §4)",
            connected(authReady) + [
                x(
                    .authenticate("XOAUTH2", longToken),
                    .action(.sendAuthentication(.auth(mechanism: "XOAUTH2", initialResponse: nil)))),
                x(.reply(r(334, "")), .action(.sendAuthentication(.response(longToken))), awaiting: [.authentication]),
                x(.reply(authOK), .action(.authenticated)),
            ], final: .ready),
        Row(
            "an empty initial response rides on the AUTH line",
            connected(authReady) + [
                x(
                    .authenticate("EXTERNAL", ""),
                    .action(.sendAuthentication(.auth(mechanism: "EXTERNAL", initialResponse: "")))),
                x(.reply(authOK), .action(.authenticated)),
            ]),
        Row(
            "the client cancels with *: 501 ends the session",
            connected(authReady) + [
                x(
                    .authenticate("LOGIN", nil),
                    .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil)))),
                x(.reply(r(334, "bm90IGJhc2U2NA")), .action(.authenticationChallenge("bm90IGJhc2U2NA"))),
                x(.authenticationStep("*"), .action(.sendAuthentication(.response("*")))),
                x(.reply(r(501, "5.7.0 Authentication cancelled")), .error(.authenticationFailed, temporary: false)),
            ]),
        Row(
            "AUTH again after success is a usage error (RFC 4954 §4)",
            connected(authReady) + [
                x(
                    .authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="),
                    .action(.sendAuthentication(.auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA==")))),
                x(.reply(authOK), .action(.authenticated)),
                x(.authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="), .usageError),
            ], final: .ready),
        Row(
            "a SASL response with no challenge waiting is a usage error",
            connected(authReady) + [x(.authenticationStep("YWxpY2U="), .usageError)], final: .ready),
        Row(
            "a SASL response that is not base64 is refused before anything is sent",
            connected(authReady) + [
                x(
                    .authenticate("LOGIN", nil),
                    .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil)))),
                x(.reply(r(334, "VXNlcm5hbWU6")), .action(.authenticationChallenge("VXNlcm5hbWU6"))),
                x(.authenticationStep("alice\r\nMAIL FROM:<x>"), .encodingError),
                x(.authenticationStep("YWxpY2U="), .action(.sendAuthentication(.response("YWxpY2U=")))),
            ]),
        Row(
            "a server that keeps challenging is given up",
            connected(authReady)
                + [
                    x(
                        .authenticate("LOGIN", nil),
                        .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil))))
                ]
                + (0..<SMTPDefaults.maximumAuthenticationChallenges).flatMap { _ in
                    [
                        x(.reply(r(334, "TW9yZT8=")), .action(.authenticationChallenge("TW9yZT8="))),
                        x(.authenticationStep("eWVz"), .action(.sendAuthentication(.response("eWVz")))),
                    ]
                }
                + [x(.reply(r(334, "TW9yZT8=")), .error(.unexpectedReply, temporary: true))]),
        Row(
            "AUTH answered 250 is a protocol error",
            connected(authReady) + [
                x(
                    .authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="),
                    .action(.sendAuthentication(.auth(mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA==")))),
                x(.reply(r(250, "fine")), .error(.unexpectedReply, temporary: true)),
            ]),
        Row(
            "a reply while the caller holds the challenge is unsolicited",
            connected(authReady) + [
                x(
                    .authenticate("LOGIN", nil),
                    .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil)))),
                x(.reply(r(334, "VXNlcm5hbWU6")), .action(.authenticationChallenge("VXNlcm5hbWU6"))),
                x(.reply(authOK), .error(.unexpectedReply, temporary: true)),
            ]),
        Row(
            "AUTH answered 421 closes the connection",
            connected(authReady) + [
                x(
                    .authenticate("LOGIN", nil),
                    .action(.sendAuthentication(.auth(mechanism: "LOGIN", initialResponse: nil)))),
                x(.reply(closing), .error(.serviceClosing, temporary: true)),
            ]),
        Row(
            "an invalid mechanism name is refused before anything is sent",
            connected(authReady) + [x(.authenticate("PLAIN\r\nQUIT", nil), .encodingError)], final: .ready),
    ]

    // MARK: SMTP transactions (RFC 5321 §3.3, §4.1.1; RFC 2920; RFC 1870; RFC 6152; RFC 6531)

    static let smtp: [Row] = [
        Row(
            "one recipient without PIPELINING: MAIL, RCPT and DATA one at a time",
            connected() + [
                x(
                    .begin("a@x.test", ["b@y.test"], size: 1234), .send(.mailFrom("a@x.test", parameters: [])),
                    awaiting: [.mailFrom]),
                x(.reply(mailOK), .send(.rcptTo("b@y.test")), awaiting: [.rcptTo]),
                x(.reply(rcptOK), .send(.data), awaiting: [.data]),
                x(.reply(goAhead), .action(.sendBody), awaiting: []),
                x(.bodySent, .wait, awaiting: [.endOfData]),
                x(.reply(queued), .send(.noop)),
                x(.reply(noopOK), .complete(accepted("b@y.test", queued)), awaiting: []),
                x(.quit, .send(.quit), awaiting: [.quit]),
                x(.reply(bye), .action(.close)),
            ], final: .closed),
        Row(
            "PIPELINING: MAIL, every RCPT and DATA in one group, every reply checked (RFC 2920 §3.1)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data),
                    awaiting: [.mailFrom, .rcptTo, .rcptTo, .data]),
                x(.reply(mailOK), .wait, awaiting: [.rcptTo, .rcptTo, .data]),
                x(.reply(rcptOK), .wait),
                x(.reply(rcptOK), .wait, awaiting: [.data]),
                x(.reply(goAhead), .action(.sendBody), awaiting: []),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .noop]),
                x(.reply(queued), .wait),
                x(.reply(noopOK), .complete(accepted("b@y.test", queued), accepted("c@y.test", queued))),
            ], final: .ready),
        Row(
            "SIZE=, BODY=8BITMIME and SMTPUTF8 when announced (RFC 1870, RFC 6152, RFC 6531)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"], size: 1234, utf8: true, eightBit: true),
                    .send(
                        .mailFrom("a@x.test", parameters: ["SIZE=1234", "BODY=8BITMIME", "SMTPUTF8"]),
                        .rcptTo("b@y.test"), .data))
            ]),
        Row(
            "no MAIL parameters when the extensions are not announced",
            connected(ehlo("PIPELINING")) + [
                x(
                    .begin("a@x.test", ["b@y.test"], size: 1234, utf8: true, eightBit: true),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data))
            ]),
        Row(
            "no SIZE= when the size is unknown",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"], size: nil),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data))
            ]),
        Row(
            "SMTPUTF8 for a non-ASCII address (RFC 6531 §3.4)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["jörg@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: ["SMTPUTF8"]), .rcptTo("jörg@y.test"), .data))
            ]),
        Row(
            "the null reverse-path",
            connected() + [
                x(.begin("", ["b@y.test"]), .send(.mailFrom("", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
            ]),
        Row(
            "MAIL 451 without PIPELINING: no RCPT is sent, every recipient temporary; no RSET next",
            connected() + [
                x(.begin("a@x.test", ["b@y.test", "c@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(
                    .reply(r(451, "4.3.0 try later")),
                    .complete(
                        temporary("b@y.test", r(451, "4.3.0 try later"), .mailFrom),
                        temporary("c@y.test", r(451, "4.3.0 try later"), .mailFrom)), awaiting: []),
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
            ]),
        Row(
            "MAIL 553 with PIPELINING: the RCPT and DATA replies are read, every recipient permanent",
            connected(pipelining) + [
                x(
                    .begin("bad@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("bad@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data)),
                x(.reply(r(553, "5.1.8 sender rejected")), .wait),
                x(.reply(r(503, "5.5.1 need MAIL")), .wait),
                x(.reply(r(503, "5.5.1 need MAIL")), .wait),
                x(
                    .reply(r(503, "5.5.1 need RCPT")),
                    .complete(
                        permanent("b@y.test", r(553, "5.1.8 sender rejected"), .mailFrom),
                        permanent("c@y.test", r(553, "5.1.8 sender rejected"), .mailFrom))),
            ], final: .ready),
        Row(
            "RCPT partly refused without PIPELINING: 550 permanent, 450 temporary, the rest delivered",
            connected() + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test", "d@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.rcptTo("c@y.test"))),
                x(.reply(r(550, "5.1.1 no such user")), .send(.rcptTo("d@y.test"))),
                x(.reply(r(450, "4.2.0 greylisted")), .send(.data)),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .wait),
                x(
                    .reply(queued), .send(.noop)),
                x(
                    .reply(noopOK),
                    .complete(
                        accepted("b@y.test", queued),
                        permanent("c@y.test", r(550, "5.1.1 no such user"), .rcptTo),
                        temporary("d@y.test", r(450, "4.2.0 greylisted"), .rcptTo))),
            ]),
        Row(
            "RCPT 552 is temporary (RFC 5321 §4.5.3.1.10)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data)),
                x(.reply(mailOK), .wait),
                x(.reply(rcptOK), .wait),
                x(.reply(r(552, "5.5.3 too many recipients")), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)),
                x(
                    .reply(queued), .wait),
                x(
                    .reply(noopOK),
                    .complete(
                        accepted("b@y.test", queued),
                        temporary("c@y.test", r(552, "5.5.3 too many recipients"), .rcptTo))),
            ]),
        Row(
            "every RCPT refused without PIPELINING: no DATA; the next transaction starts with RSET",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(
                    .reply(r(550, "5.1.1 no such user")),
                    .complete(permanent("b@y.test", r(550, "5.1.1 no such user"), .rcptTo)), awaiting: []),
                x(.begin("a@x.test", ["c@y.test"]), .send(.rset), awaiting: [.rset]),
                x(.reply(resetOK), .send(.mailFrom("a@x.test", parameters: [])), awaiting: [.mailFrom]),
            ]),
        Row(
            "every RCPT refused with PIPELINING, DATA 554: no body; the next group starts with RSET",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait),
                x(.reply(r(550, "5.1.1 no such user")), .wait),
                x(
                    .reply(r(554, "5.5.1 no valid recipients")),
                    .complete(permanent("b@y.test", r(550, "5.1.1 no such user"), .rcptTo))),
                x(
                    .begin("a@x.test", ["c@y.test"]),
                    .send(.rset, .mailFrom("a@x.test", parameters: []), .rcptTo("c@y.test"), .data),
                    awaiting: [.rset, .mailFrom, .rcptTo, .data]),
                x(.reply(resetOK), .wait),
            ]),
        Row(
            "every RCPT refused with PIPELINING, yet DATA 354: a lone dot, its reply ignored (RFC 2920 §3.1)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait),
                x(.reply(r(550, "5.1.1 no such user")), .wait),
                x(.reply(goAhead), .action(.sendEmptyBody), awaiting: []),
                x(.bodySent, .wait, awaiting: [.endOfData]),
                x(
                    .reply(r(554, "5.5.1 no valid recipients")),
                    .complete(permanent("b@y.test", r(550, "5.1.1 no such user"), .rcptTo))),
                x(
                    .begin("a@x.test", ["c@y.test"]),
                    .send(.rset, .mailFrom("a@x.test", parameters: []), .rcptTo("c@y.test"), .data)),
            ]),
        Row(
            "DATA 451: the accepted recipients are temporary; RSET before the next MAIL",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(.reply(r(451, "4.3.0 no")), .complete(temporary("b@y.test", r(451, "4.3.0 no"), .data))),
                x(.begin("a@x.test", ["b@y.test"]), .send(.rset)),
                x(.reply(resetOK), .send(.mailFrom("a@x.test", parameters: []))),
            ]),
        Row(
            "DATA answered 250 is a protocol error (RFC 5321 §4.3.2)",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(
                    .reply(r(250, "ok?")),
                    .error(.unexpectedReply, temporary: true, results: [temporary("b@y.test", r(250, "ok?"), .noop)])),
            ]),
        Row(
            "MAIL answered 354 is a protocol error",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(
                    .reply(goAhead),
                    .error(.unexpectedReply, temporary: true, results: [temporary("b@y.test", goAhead, .mailFrom)])),
            ]),
        Row(
            "end of data 452: temporary for every accepted recipient",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)),
                x(
                    .reply(r(452, "4.3.1 insufficient storage")), .wait),
                x(
                    .reply(noopOK),
                    .complete(
                        temporary("b@y.test", r(452, "4.3.1 insufficient storage"), .endOfData),
                        temporary("c@y.test", r(452, "4.3.1 insufficient storage"), .endOfData))),
            ]),
        Row(
            "end of data 554: permanent; RSET before the next transaction (Postfix keeps its transaction open)",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)),
                x(.reply(r(554, "5.7.1 spam")), .wait),
                x(.reply(noopOK), .complete(permanent("b@y.test", r(554, "5.7.1 spam"), .endOfData))),
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.rset, .mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
            ]),
        Row(
            "MAIL answered 503 (a transaction the server kept open): temporary, and RSET before the next",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(r(503, "5.5.1 Error: nested MAIL command")), .wait),
                x(.reply(rcptOK), .wait),
                x(
                    .reply(r(503, "5.5.1 Error: need MAIL command")),
                    .complete(temporary("b@y.test", r(503, "5.5.1 Error: nested MAIL command"), .mailFrom))),
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.rset, .mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
            ]),
        Row(
            "end of data answered 354 is a protocol error",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .wait),
                x(
                    .reply(goAhead),
                    .error(.unexpectedReply, temporary: true, results: [temporary("b@y.test", goAhead, .endOfData)])),
            ]),
    ]

    // MARK: LMTP (RFC 2033 §4.2)

    static let lmtpHello = ehlo("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME")

    static let lmtpRows: [Row] = [
        Row(
            "LMTP: one reply per recipient after the dot, in RCPT order", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test", "d@y.test"]),
                    .send(
                        .mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"),
                        .rcptTo("d@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .endOfData, .endOfData, .noop]),
                x(.reply(r(250, "2.0.0 <b@y.test> Saved")), .wait, awaiting: [.endOfData, .endOfData, .noop]),
                x(.reply(r(452, "4.2.2 <c@y.test> Mailbox full")), .wait),
                x(
                    .reply(r(550, "5.1.1 <d@y.test> gone")), .wait),
                x(
                    .reply(noopOK),
                    .complete(
                        accepted("b@y.test", r(250, "2.0.0 <b@y.test> Saved")),
                        temporary("c@y.test", r(452, "4.2.2 <c@y.test> Mailbox full"), .endOfData),
                        permanent("d@y.test", r(550, "5.1.1 <d@y.test> gone"), .endOfData))),
            ], final: .ready),
        Row(
            "LMTP: after the dot, replies only for the accepted recipients", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test", "d@y.test"]),
                    .send(
                        .mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"),
                        .rcptTo("d@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(r(550, "5.1.1 no such user")), .wait),
                x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .endOfData, .noop]),
                x(.reply(r(250, "2.0.0 b ok")), .wait),
                x(
                    .reply(r(250, "2.0.0 d ok")), .wait),
                x(
                    .reply(noopOK),
                    .complete(
                        accepted("b@y.test", r(250, "2.0.0 b ok")),
                        permanent("c@y.test", r(550, "5.1.1 no such user"), .rcptTo),
                        accepted("d@y.test", r(250, "2.0.0 d ok")))),
            ]),
        Row(
            "LMTP: a 421 after the first end-of-data reply: not proven in step, every recipient deferred", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test", "d@y.test"]),
                    .send(
                        .mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"),
                        .rcptTo("d@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)),
                x(.reply(r(250, "2.0.0 b ok")), .wait),
                x(
                    .reply(closing),
                    .error(
                        .serviceClosing, temporary: true,
                        results: [
                            temporary("b@y.test", closing, .noop),
                            temporary("c@y.test", closing, .noop),
                            temporary("d@y.test", closing, .noop),
                        ])),
            ], final: .failed),
        Row(
            "LMTP: 354 with no accepted recipient is a protocol error (RFC 2033 §4.2 requires 503)", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait),
                x(.reply(r(550, "5.1.1 no such user")), .wait),
                x(
                    .reply(goAhead),
                    .error(
                        .unexpectedReply, temporary: true,
                        results: [permanent("b@y.test", r(550, "5.1.1 no such user"), .rcptTo)])),
            ]),
        Row(
            "LMTP without PIPELINING: commands one at a time, then one reply per recipient", lmtp,
            connected(ehlo("8BITMIME"), lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"], eightBit: true),
                    .send(.mailFrom("a@x.test", parameters: ["BODY=8BITMIME"]))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.rcptTo("c@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .wait, awaiting: [.endOfData, .endOfData]),
                x(.reply(r(250, "b ok")), .wait),
                x(
                    .reply(r(250, "c ok")), .send(.noop)),
                x(
                    .reply(noopOK),
                    .complete(accepted("b@y.test", r(250, "b ok")), accepted("c@y.test", r(250, "c ok")))),
            ]),
    ]

    // MARK: Reuse, 421, unexpected replies, usage

    static let session: [Row] = [
        Row(
            "two messages on one connection: no RSET after a completed transaction",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)), x(.reply(queued), .wait),
                x(.reply(noopOK), .complete(accepted("b@y.test", queued))),
                x(
                    .begin("a@x.test", ["c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("c@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop)), x(.reply(queued), .wait),
                x(.reply(noopOK), .complete(accepted("c@y.test", queued))),
            ], final: .ready),
        Row(
            "a refused RSET is ignored; the MAIL reply decides",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(r(550, "no")), .complete(permanent("b@y.test", r(550, "no"), .rcptTo))),
                x(.begin("a@x.test", ["b@y.test"]), .send(.rset)),
                x(.reply(r(500, "5.5.1 what")), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
            ]),
        Row(
            "421 to a pipelined RCPT: every recipient temporary",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data)),
                x(.reply(mailOK), .wait),
                x(
                    .reply(closing),
                    .error(
                        .serviceClosing, temporary: true,
                        results: [temporary("b@y.test", closing, .rcptTo), temporary("c@y.test", closing, .rcptTo)])),
            ], final: .failed),
        Row(
            "a 421 after a permanent pipelined MAIL refusal keeps the refusal",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(r(550, "5.7.1 sender blocked")), .wait),
                x(
                    .reply(closing),
                    .error(
                        .serviceClosing, temporary: true,
                        results: [permanent("b@y.test", r(550, "5.7.1 sender blocked"), .mailFrom)])),
            ]),
        Row(
            "an unsolicited 421 while ready is a temporary connection failure",
            connected() + [x(.reply(closing), .error(.serviceClosing, temporary: true))], final: .failed),
        Row(
            "a 421 while the body is being sent: the accepted recipients are temporary",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(.reply(goAhead), .action(.sendBody)),
                x(
                    .reply(closing),
                    .error(.serviceClosing, temporary: true, results: [temporary("b@y.test", closing, .endOfData)])),
            ]),
        Row(
            "a reply when none is awaited is a protocol error",
            connected() + [x(.reply(r(250, "2.0.0 stray")), .error(.unexpectedReply, temporary: true))],
            final: .failed),
        Row(
            "a reply while the body is being sent is a protocol error",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.reply(mailOK), .send(.rcptTo("b@y.test"))),
                x(.reply(rcptOK), .send(.data)),
                x(.reply(goAhead), .action(.sendBody)),
                x(
                    .reply(r(250, "early")),
                    .error(
                        .unexpectedReply, temporary: true, results: [temporary("b@y.test", r(250, "early"), .endOfData)]
                    )),
            ]),
        Row(
            "after a failure, replies and transactions are usage errors; quit only closes",
            connected() + [
                x(.reply(r(250, "stray")), .error(.unexpectedReply, temporary: true)),
                x(.reply(r(250, "more")), .usageError),
                x(.begin("a@x.test", ["b@y.test"]), .usageError),
                x(.quit, .action(.close)),
            ], final: .failed),
        Row(
            "beginTransaction before the session is ready is a usage error",
            [
                x(.begin("a@x.test", ["b@y.test"]), .usageError),
                x(.reply(greeting), .send(.ehlo(client))),
                x(.begin("a@x.test", ["b@y.test"]), .usageError),
            ], final: .awaitingHello),
        Row(
            "a transaction without recipients is a usage error (RFC 5321 §3.3)",
            connected() + [x(.begin("a@x.test", []), .usageError)], final: .ready),
        Row(
            "an address SMTP cannot carry is refused before anything is sent; still ready",
            connected() + [
                x(.begin("a@x.test", ["b@y.test>\r\nRCPT TO:<evil@z.test"]), .encodingError, awaiting: []),
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
            ]),
        Row(
            "a second transaction while one is in flight is a usage error",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.begin("a@x.test", ["c@y.test"]), .usageError, awaiting: [.mailFrom]),
            ], final: .transaction),
        Row(
            "AUTH during a transaction is a usage error (RFC 4954 §4)",
            connected(authReady) + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.authenticate("PLAIN", "AGFsaWNlAHNlY3JldA=="), .usageError),
            ]),
        Row(
            "bodySent without a 354 is a usage error",
            connected() + [
                x(.bodySent, .usageError),
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.bodySent, .usageError),
            ]),
        Row(
            "QUIT when ready; any reply to it closes",
            connected() + [x(.quit, .send(.quit)), x(.reply(closing), .action(.close), awaiting: [])], final: .closed),
        Row(
            "quit during a transaction closes at once",
            connected() + [
                x(.begin("a@x.test", ["b@y.test"]), .send(.mailFrom("a@x.test", parameters: []))),
                x(.quit, .action(.close), awaiting: []),
                x(.reply(mailOK), .usageError),
            ], final: .closed),
    ]

    /// The connection drops while LMTP's end-of-data replies come in: nothing stands before the NOOP's reply.
    static let lostRows: [Row] = [
        Row(
            "LMTP: dropped after the first recipient's reply: not proven in step, both deferred", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test", "c@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .rcptTo("c@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(rcptOK), .wait),
                x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .endOfData, .noop]),
                x(.reply(r(250, "2.0.0 <b@y.test> Saved")), .wait, awaiting: [.endOfData, .noop]),
                x(
                    .connectionLost,
                    .error(
                        .connectionLost, temporary: true,
                        results: [
                            temporary("b@y.test", r(421, "4.4.2 connection lost (dropped)"), .noop),
                            temporary("c@y.test", r(421, "4.4.2 connection lost (dropped)"), .noop),
                        ])),
            ], final: .failed),
        Row(
            "LMTP: dropped before any end-of-data reply: nothing decided, the message may go again", lmtp,
            connected(lmtpHello, lmtp: true) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .noop]),
                x(.connectionLost, .action(.close)),
            ], final: .failed),
        Row(
            "SMTP: dropped after the end-of-data reply, before the NOOP's: nothing stands, deferred",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .noop]),
                x(.reply(queued), .wait, awaiting: [.noop]),
                x(
                    .connectionLost,
                    .error(
                        .connectionLost, temporary: true,
                        results: [temporary("b@y.test", r(421, "4.4.2 connection lost (dropped)"), .noop)])),
            ], final: .failed),
        Row(
            "SMTP: a 250 sent before the end of data, the real verdict after it: the NOOP finds them out of step",
            connected(pipelining) + [
                x(
                    .begin("a@x.test", ["b@y.test"]),
                    .send(.mailFrom("a@x.test", parameters: []), .rcptTo("b@y.test"), .data)),
                x(.reply(mailOK), .wait), x(.reply(rcptOK), .wait), x(.reply(goAhead), .action(.sendBody)),
                x(.bodySent, .send(.noop), awaiting: [.endOfData, .noop]),
                x(.reply(queued), .wait, awaiting: [.noop]),
                x(
                    .reply(r(554, "5.7.1 rejected after the dot")),
                    .error(
                        .unexpectedReply, temporary: true,
                        results: [temporary("b@y.test", r(554, "5.7.1 rejected after the dot"), .noop)])),
            ], final: .failed),
    ]

    static let all: [Row] = connection + tls + auth + smtp + lmtpRows + lostRows + session
}
