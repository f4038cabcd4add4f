import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@testable import MailTransport

@Suite("STARTTLS boundary")
struct STARTTLSBoundaryHandlerTests {
    @Test("armed: reads are dropped until the handshake completes, then an empty marker goes first, then data flows")
    func boundary() throws {
        let handler = STARTTLSBoundaryHandler()
        let channel = EmbeddedChannel(handler: handler)
        try channel.writeInbound(ByteBuffer(string: "220 ready\r\n"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "220 ready\r\n"))

        handler.arm()
        try channel.writeInbound(ByteBuffer(string: "250 injected\r\n"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "clear text before the handshake is dropped")

        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(), "the boundary marker")
        try channel.writeInbound(ByteBuffer(string: "250 over TLS\r\n"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "250 over TLS\r\n"))

        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: nil))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil, "one marker per STARTTLS, none when not armed")
        _ = try channel.finish()
    }
}
