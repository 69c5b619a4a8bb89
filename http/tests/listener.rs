//! The listener against misbehaving clients, over real sockets: each test provokes a short,
//! configured timeout or limit and checks the connection is cut or refused (margins are wide).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use kan_api::wire::{ErrorBody, ErrorCode};
use kan_http::ListenerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Far longer than any limit a test sets: a connection still open after it was not cut.
const CUT_WITHIN: Duration = Duration::from_secs(5);

fn limits() -> ListenerLimits {
    ListenerLimits {
        name: "test".into(),
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        max_header_bytes: 1024,
        max_connections: 64,
    }
}

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/echo",
        // Reads the body without a size limit, so only the deadline can stop it.
        post(|body: Body| async move {
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(bytes) => format!("{} bytes", bytes.len()),
                Err(e) => format!("body failed: {e}"),
            }
        }),
    )
}

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(limits: ListenerLimits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(kan_http::serve(listener, app(), limits, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop: Some(stop),
        served,
    }
}

/// Everything the server sends until it closes the connection, or `None` if it does not
/// close within [`CUT_WITHIN`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(CUT_WITHIN, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

fn json_error(response: &str) -> ErrorBody {
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("the JSON error body")
}

#[tokio::test]
async fn headers_trickled_byte_by_byte_are_cut_after_the_header_read_timeout() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let (mut read, mut write) = stream.split();
    let trickle = async {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let cut = async {
        let mut buf = [0u8; 64];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let outcome = tokio::time::timeout(CUT_WITHIN, async {
        tokio::select! {
            () = cut => "cut",
            () = trickle => "write failed",
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "a client trickling its headers was still connected after {CUT_WITHIN:?}"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_is_answered_408_and_the_connection_closed() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}")
        .await
        .expect("write");
    let response = read_until_closed(&mut stream)
        .await
        .expect("the connection is closed after the body deadline");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_eq!(
        json_error(&response).error.code,
        ErrorCode::DeadlineExceeded
    );
}

#[tokio::test]
async fn a_body_trickled_byte_by_byte_is_cut_at_the_body_deadline() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
        .await
        .expect("write");
    let (mut read, mut write) = stream.split();
    let trickle = async {
        for _ in 0..1000 {
            if write.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::future::pending::<()>().await;
    };
    let response = async {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let response = tokio::time::timeout(CUT_WITHIN, async {
        tokio::select! {
            r = response => r,
            () = trickle => unreachable!("the trickle never ends"),
        }
    })
    .await
    .expect("a trickled body is cut");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let response = read_until_closed(&mut stream)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_answered_431_with_the_json_error_body() {
    let server = start(limits()).await;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let big = "y".repeat(2000);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let response = read_until_closed(&mut stream).await.expect("closed");
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert_eq!(json_error(&response).error.code, ErrorCode::HeadersTooLarge);
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once_and_a_freed_slot_is_reused() {
    let server = start(ListenerLimits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let held_1 = TcpStream::connect(server.addr).await.expect("connect");
    let mut held_2 = TcpStream::connect(server.addr).await.expect("connect");
    // A full round trip on the second proves both were accepted before the third arrives.
    held_2
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = held_2.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let mut refused = TcpStream::connect(server.addr).await.expect("connect");
    let _ = refused
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut refused)
        .await
        .expect("the connection over the limit is closed at once");
    assert!(answer.is_empty(), "served over the limit: {answer}");

    drop(held_1);
    let served = tokio::time::timeout(CUT_WITHIN, async {
        loop {
            let mut again = TcpStream::connect(server.addr).await.expect("connect");
            again
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .expect("write");
            if let Some(r) = read_until_closed(&mut again).await
                && r.starts_with("HTTP/1.1 200")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "a freed slot was never reused");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = start(ListenerLimits {
        header_read_timeout: Duration::from_secs(30),
        ..limits()
    })
    .await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let _ = idle.read(&mut buf).await.expect("read");
    let _ = server.stop.take().map(|s| s.send(()));
    let served = tokio::time::timeout(CUT_WITHIN, &mut server.served)
        .await
        .expect("serve returns after shutdown")
        .expect("join");
    assert!(served.is_ok());
    assert!(read_until_closed(&mut idle).await.is_some());
}
