//! Test support for the control-plane tests: a running server and a small HTTP/1.1 client
//! written against the raw socket, so the tests see exactly what goes over the wire.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemonkit::server::ControlPlaneBuilder;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long any single client operation may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

// ===== Server =====

/// A control plane serving on its own task.
pub struct Server {
    pub path: PathBuf,
    pub tcp: Option<SocketAddr>,
    pub cancel: CancellationToken,
    pub task: JoinHandle<Result<(), daemonkit::Error>>,
}

impl Server {
    /// Binds `builder` and serves it on a spawned task.
    pub async fn start(builder: ControlPlaneBuilder) -> Server {
        let bound = builder
            .build()
            .expect("a valid control-plane configuration")
            .bind()
            .await
            .expect("bind the control plane");
        let path = bound.socket_path().to_owned();
        let tcp = bound.tcp_addr();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(bound.serve(cancel.clone()));
        Server {
            path,
            tcp,
            cancel,
            task,
        }
    }

    /// Opens a new connection to the Unix socket.
    pub async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.path)
            .await
            .expect("connect to the control socket")
    }

    /// `GET path` on a new connection.
    pub async fn get(&self, path: &str) -> Response {
        let mut conn = self.connect().await;
        request(&mut conn, "GET", path, &[], b"").await
    }

    /// Cancels the server and waits for `serve` to return.
    pub async fn stop(self) -> Result<(), daemonkit::Error> {
        self.cancel.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("serve returns after cancellation")
            .expect("serve does not panic")
    }
}

// ===== Response =====

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

// ===== client =====

/// Sends one request on `conn` (keep-alive) and reads its response.
pub async fn request<S>(
    conn: &mut S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    tokio::time::timeout(PATIENCE, conn.write_all(&raw))
        .await
        .expect("write the request in time")
        .expect("write the request");
    read_response(conn).await
}

/// Reads one response (Content-Length, chunked, or until EOF).
pub async fn read_response<S: AsyncRead + Unpin>(conn: &mut S) -> Response {
    tokio::time::timeout(PATIENCE, read_response_inner(conn))
        .await
        .expect("the response arrives in time")
}

async fn read_response_inner<S: AsyncRead + Unpin>(conn: &mut S) -> Response {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.expect("read the response");
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("UTF-8 head");
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let find_header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = find_header("content-length") {
        let len: usize = len.parse().expect("numeric content-length");
        while rest.len() < len {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.expect("read the body");
            assert!(n > 0, "connection closed in the body");
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if find_header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(conn, rest).await
    } else {
        conn.read_to_end(&mut rest).await.expect("read to EOF");
        rest
    };
    Response {
        status,
        headers,
        body,
    }
}

async fn read_chunked<S: AsyncRead + Unpin>(conn: &mut S, mut buf: Vec<u8>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(at) = find(&buf, b"\r\n") {
                break at;
            }
            fill(conn, &mut buf).await;
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            fill(conn, &mut buf).await;
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return body;
        }
    }
}

async fn fill<S: AsyncRead + Unpin>(conn: &mut S, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = conn.read(&mut chunk).await.expect("read");
    assert!(n > 0, "connection closed in a chunked body");
    buf.extend_from_slice(&chunk[..n]);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `GET path` over TCP on a new connection.
pub async fn tcp_get(addr: SocketAddr, path: &str) -> Response {
    let mut conn = TcpStream::connect(addr).await.expect("connect over TCP");
    request(&mut conn, "GET", path, &[("Connection", "close")], b"").await
}

/// Waits until the server closes `conn` (a read returns EOF or a reset), within `within`.
/// Returns false if it is still open then.
pub async fn closed_within<S: AsyncRead + Unpin>(conn: &mut S, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(within, conn.read(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => panic!("unexpected data on a connection expected to close"),
        Err(_) => false,
    }
}

/// A fresh directory for one test's sockets, removed when dropped.
pub fn socket_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dk-srv")
        .tempdir()
        .expect("create a temporary directory")
}

/// The mode bits (permissions only) of `path`, not following symbolic links.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

// ===== log capture =====

/// Every tracing record of this test process, with the thread that emitted it.
///
/// One global subscriber, installed once: thread-local subscribers set and dropped by
/// concurrently running tests race with tracing's per-callsite interest cache, which
/// occasionally drops an event.
static RECORDS: std::sync::OnceLock<std::sync::Mutex<Vec<Record>>> = std::sync::OnceLock::new();

/// One captured record.
#[derive(Debug, Clone)]
pub struct Record {
    pub thread: std::thread::ThreadId,
    pub fields: std::collections::BTreeMap<String, String>,
}

impl Record {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// The records emitted on the calling thread (with a current-thread runtime: by the test
/// and every task it spawned) since [`capture`] was called.
pub struct Captured {
    thread: std::thread::ThreadId,
    from: usize,
}

impl Captured {
    pub fn with_reason(&self, reason: &str) -> Vec<Record> {
        let records = RECORDS.get().expect("installed").lock().unwrap();
        records[self.from..]
            .iter()
            .filter(|r| r.thread == self.thread && r.field("reason") == Some(reason))
            .cloned()
            .collect()
    }

    pub fn count(&self, reason: &str) -> usize {
        self.with_reason(reason).len()
    }
}

/// Starts capturing the calling thread's records.
pub fn capture() -> Captured {
    use tracing_subscriber::layer::SubscriberExt;
    let records = RECORDS.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(GlobalCapture);
        // Fails only if another global subscriber was set, which these tests never do.
        tracing::subscriber::set_global_default(subscriber).expect("install the capture");
        std::sync::Mutex::new(Vec::new())
    });
    let from = records.lock().unwrap().len();
    Captured {
        thread: std::thread::current().id(),
        from,
    }
}

struct GlobalCapture;

struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for GlobalCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = std::collections::BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        if let Some(records) = RECORDS.get() {
            records.lock().unwrap().push(Record {
                thread: std::thread::current().id(),
                fields,
            });
        }
    }
}

/// The value of the sample `series` (`name{labels}`, labels written as in the exposition)
/// in a Prometheus text exposition; panics, showing the text, when there is none.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .parse()
        .unwrap()
}
