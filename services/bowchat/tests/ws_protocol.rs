//! Black-box: a client that breaks the WebSocket protocol itself (RFC 6455)
//! gets a Close frame with the code the RFC names for the violation, not a
//! bare TCP drop. The client here is raw TCP, so it can send what no
//! WebSocket library would.
mod support;

use std::time::Duration;

use support::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Opens `/ws` by hand and reads the response head and the WELCOME frame.
async fn handshake(server: &Server, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    let request = format!(
        "GET /ws?access_token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (opcode, payload) = read_frame(&mut stream).await.expect("welcome");
    assert_eq!(opcode, 1, "a text frame first");
    assert!(
        String::from_utf8_lossy(&payload).contains("WELCOME"),
        "{payload:?}"
    );
    stream
}

/// One unmasked server frame: (opcode, payload); None when the stream ended.
async fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).await.ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).await.ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).await.ok()?;
    Some((opcode, payload))
}

/// A masked client frame with a given first byte (FIN, RSV, opcode).
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Sends `bytes` and returns the close code the server answers with,
/// skipping any frame that is not a Close.
async fn close_code_after(server: &Server, token: &str, bytes: &[u8]) -> u16 {
    let mut stream = handshake(server, token).await;
    stream.write_all(bytes).await.expect("write");
    let outcome = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match read_frame(&mut stream).await {
                Some((8, payload)) => {
                    assert!(payload.len() >= 2, "a close frame with a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                Some(_) => continue,
                None => panic!("the connection dropped without a Close frame"),
            }
        }
    })
    .await;
    outcome.expect("a Close frame within 15 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_close_with_the_rfc_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[("BOWCHAT_GATEWAY__MAX_TRANSPORT_FRAME_BYTES", "65536")],
    );
    let ann = server.user("ann").await;

    // A text frame that is not UTF-8: 1007.
    let bad_utf8 = masked(0x81, &[0xff, 0xfe, 0xfd]);
    assert_eq!(close_code_after(&server, &ann.token, &bad_utf8).await, 1007);

    // A client frame without a mask: 1002.
    let unmasked = [0x81u8, 0x02, b'h', b'i'];
    assert_eq!(close_code_after(&server, &ann.token, &unmasked).await, 1002);

    // Reserved opcodes, a data one (0x3) and a control one (0xB): 1002.
    for first in [0x83u8, 0x8b] {
        let reserved = masked(first, b"");
        assert_eq!(
            close_code_after(&server, &ann.token, &reserved).await,
            1002,
            "opcode {first:#x}"
        );
    }

    // A frame header announcing 200 000 bytes, above the 64 KiB cap: 1009
    // (the server refuses on the header, before reading the payload).
    let mut oversize = vec![0x81u8, 0x80 | 127];
    oversize.extend_from_slice(&200_000u64.to_be_bytes());
    oversize.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(close_code_after(&server, &ann.token, &oversize).await, 1009);

    // The process and everyone else are fine.
    let mut ws = server.ws(&ann.token).await;
    ws.send(serde_json::json!({"type": "PING", "requestId": "p"}))
        .await;
    let pong = ws.recv().await;
    assert_eq!(pong["type"], "PONG", "{pong}");
    assert!(server.alive());
}
