import Foundation
import MailTestKit
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 12: `--syslog` for cron users: the poll's lines go to the local syslog socket, facility mail.
@Suite("Logging to syslog")
struct SyslogTests {
    @Test("--syslog: each line a datagram <PRI>popfetch[PID]: ..., facility mail; stderr silent; stderr if no socket")
    func syslog() throws {
        let f = try PopfetchFixture()
        try f.user.deliver(Corpus.messages(1, seed: 126))
        try f.writeConfig()
        let socketPath = f.directory + "/log"
        let received = f.directory + "/received"
        let ready = f.directory + "/ready"
        let listener = try Holder.start(
            "import socket, sys\n"
                + "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(30)\n"
                + "open(sys.argv[3], 'w').close()\n"
                + "out = open(sys.argv[2], 'ab', buffering=0)\n"
                + "while True:\n    out.write(s.recv(65536) + b'\\n')\n",
            [socketPath, received], ready: ready)
        defer { listener.stop() }
        let r = try f.poll(["--syslog"], environment: ["POPFETCH_SYSLOG_SOCKET": socketPath])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty, "nothing on stderr: \(r.stderr)")
        #expect(
            eventually(10) {
                ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").contains("poll finished")
            })
        let lines = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
        let finished = try #require(lines.first { $0.contains("poll finished") })
        // <22>: facility mail (2) × 8 + severity info (6).
        #expect(finished.hasPrefix("<22>popfetch["), "\(finished)")
        #expect(finished.contains("]: account=test ") && finished.contains("delivered=1"), "\(finished)")
        // No socket: the lines go to stderr, not nowhere.
        let lost = try f.poll(["--syslog"], environment: ["POPFETCH_SYSLOG_SOCKET": f.directory + "/none"])
        #expect(lost.status == 0)
        #expect(lost.stderr.contains("poll finished"), "\(lost.stderr)")
    }
}
