import NIOCore
import NIOTLS

/// Marks where TLS begins after SMTP STARTTLS (RFC 3207 §4.2: nothing received in clear text counts once TLS is
/// up), against the STARTTLS command-injection class of bugs.
///
/// Armed when the server's `220` to STARTTLS has been read and the TLS handler is put in front of it: from then on
/// it drops every read until the handshake completes, and then sends one empty buffer up the pipeline as a
/// boundary marker, ahead of the first decrypted byte. Whatever the connection reads before that marker — bytes
/// the channel had already handed up in clear, after the `220` — is thrown away. (The socket never delivers an
/// empty read, so the marker cannot be mistaken.)
final class STARTTLSBoundaryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var awaitingHandshake = false

    /// The TLS handler goes in front now: drop reads until the handshake completes, then send the marker.
    func arm() { self.awaitingHandshake = true }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.awaitingHandshake else { return }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        context.fireUserInboundEventTriggered(event)
        if self.awaitingHandshake, let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            self.awaitingHandshake = false
            context.fireChannelRead(self.wrapInboundOut(ByteBuffer()))
            context.fireChannelReadComplete()
        }
    }
}
