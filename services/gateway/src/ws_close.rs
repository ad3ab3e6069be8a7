//! How a connection ends when its client breaks the WebSocket protocol
//! itself (RFC 6455 §7.4.1), as opposed to sending a bad BowChat frame (which
//! costs an `ERROR` frame and nothing else, see `ws`).
//!
//! The transport rejects the frame before the gateway sees a message; the
//! gateway then sends a Close frame with the code the RFC names for that
//! failure instead of dropping the TCP connection without a word, so the
//! client can tell a protocol bug from a network fault.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::SinkExt;
use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};

use crate::metrics::metrics;

/// 1002: the peer broke the framing rules (unmasked frame, reserved opcode or
/// bits, a bad continuation, a fragmented or oversized control frame).
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1007: a text frame (or a close reason) that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1009: a frame or message above `gateway.max_transport_frame_bytes`.
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// A protocol violation the transport reported, as the close it deserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    pub code: u16,
    /// Short, for the close frame's reason (at most 123 bytes) and metrics.
    pub reason: &'static str,
}

/// The close code for a read error, or `None` when the error is not the
/// client's protocol violation (the connection is already gone: nothing can
/// be sent).
pub fn violation(error: &WsError) -> Option<Violation> {
    let (code, reason) = match error {
        WsError::Utf8(_) => (INVALID_PAYLOAD, "invalid utf-8"),
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            (MESSAGE_TOO_BIG, "message too big")
        }
        WsError::Capacity(_) => (MESSAGE_TOO_BIG, "frame too big"),
        WsError::Protocol(p) => match p {
            // The peer vanished: there is nobody to tell.
            ProtocolError::ResetWithoutClosingHandshake
            | ProtocolError::SendAfterClosing
            | ProtocolError::ReceivedAfterClosing => return None,
            ProtocolError::UnmaskedFrameFromClient => (PROTOCOL_ERROR, "unmasked frame"),
            ProtocolError::UnknownDataFrameType(_) | ProtocolError::UnknownControlFrameType(_) => {
                (PROTOCOL_ERROR, "reserved opcode")
            }
            ProtocolError::NonZeroReservedBits => (PROTOCOL_ERROR, "reserved bits set"),
            _ => (PROTOCOL_ERROR, "protocol violation"),
        },
        _ => return None,
    };
    Some(Violation { code, reason })
}

/// Ends a connection whose read failed: a Close frame with the RFC code when
/// the client broke the protocol, nothing when the connection is gone.
pub async fn fail(socket: &mut WebSocket, error: axum::Error) {
    let inner = error.into_inner();
    let Some(violation) = inner.downcast_ref::<WsError>().and_then(violation) else {
        return;
    };
    metrics()
        .frames_in
        .with_label_values(&["PROTOCOL_VIOLATION"])
        .inc();
    tracing::debug!(code = violation.code, reason = violation.reason, error = %inner, "closing a connection that broke the WebSocket protocol");
    let close = Message::Close(Some(CloseFrame {
        code: violation.code,
        reason: violation.reason.into(),
    }));
    // Best effort: the client may already be gone.
    let _ = socket.send(close).await;
    let _ = socket.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_gets_its_rfc_code() {
        let code = |e: WsError| violation(&e).map(|v| v.code);
        assert_eq!(code(WsError::Utf8("x".into())), Some(1007));
        assert_eq!(
            code(WsError::Capacity(CapacityError::MessageTooLong {
                size: 2,
                max_size: 1
            })),
            Some(1009)
        );
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnknownDataFrameType(3))),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnknownControlFrameType(
                11
            ))),
            Some(1002)
        );
        assert_eq!(
            code(WsError::Protocol(
                ProtocolError::ResetWithoutClosingHandshake
            )),
            None
        );
        assert_eq!(code(WsError::ConnectionClosed), None);
    }
}
