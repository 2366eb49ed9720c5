//! Control-plane throughput and latency over the Unix socket.
//!
//! `GET /status` (a tracker of 10 monitors, serialised on every request) with 1 and 16
//! keep-alive connections, and `GET /health` measured the same way in the same run as
//! the baseline: the difference between the two is the cost of building the status
//! document; `/health` itself is the cost of the transport, HTTP parsing and dispatch.
//! Each is run against a server on tokio's current-thread runtime and on a two-worker
//! multi-thread runtime.
//!
//! Then the run under attack (issue 11): 1,000 hostile connections are held open — 500
//! request bodies that never arrive on a body-reading component route, 500 idle
//! keep-alive connections — and `/health` is measured again at 1 and 16 connections,
//! beside the clean run of the same server as its baseline, so the cost of the defences
//! (and of a thousand open connections) shows in latency and in server CPU per request.
//! Last, 100 more are opened — 1,100, over the default cap of 1,024 — and `/health` is
//! measured on a new connection per request, as a health checker makes them, beside the
//! same clean run: each new connection at the cap makes the server close an idle or slow
//! one first.
//!
//! The server runs in a child process (this binary re-executed with
//! `DK_BENCH_SERVER_SOCKET` set) so that its CPU time can be read apart from the
//! client's: the sum of its threads' on-CPU time from `/proc/<pid>/task/*/schedstat`
//! before and after each run. The client sends a request and reads the whole response
//! before the next on each connection (no pipelining): one blocking thread for a single
//! connection, one epoll loop (a current-thread tokio runtime) for 16, so that on a small
//! machine the client's own CPU use, printed beside the server's, stays low.
//!
//! ```text
//! cargo bench -p daemonkit --bench control_plane
//! DK_BENCH_SECONDS=10 cargo bench -p daemonkit --bench control_plane
//! BENCH_JSON=figures.jsonl cargo bench -p daemonkit --bench control_plane
//! ```
//!
//! `/status` is served as a daemon with one tracker serves it: from the cached body,
//! rebuilt when the tracker's version moves. A last server serialises it on every request
//! (a status function without a version) and is measured beside the cached runs.
//!
//! With `BENCH_JSON=<file>`, one JSON object per figure is appended to the file:
//! `{"bench":"control_plane","figure":…,"value":…,"unit":…,"baseline":…}`, the baseline
//! being the same figure of `/health` (for `/status`) or of the clean run (under attack),
//! and `null` for the clean `/health` rows, which are the baselines. The stable names
//! (current-thread runtime, the demo's): `status_c1_server_us`, `status_c16_server_us`
//! (baseline: `/health` at the same connections), `health_c1_server_us`,
//! `health_c16_server_us`, `status_uncached_c1_server_us`,
//! `status_uncached_c16_server_us` and `status_reporting_c1_server_us`,
//! `status_reporting_c16_server_us` (an eleventh monitor reports connectivity; baseline
//! for both: the cached `/status`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use daemonkit::server::ControlPlane;
use daemonkit::{MonitorState, StatusError, StatusTracker};
use tokio_util::sync::CancellationToken;

const SERVER_ENV: &str = "DK_BENCH_SERVER_SOCKET";
/// The server's runtime: 0 for tokio's current-thread runtime, n for n worker threads.
const THREADS_ENV: &str = "DK_BENCH_SERVER_THREADS";
const SECONDS_ENV: &str = "DK_BENCH_SECONDS";
/// Set in the server's environment: serve `/status` with the plain status function
/// (serialised on every request) rather than the tracker's cached body.
const UNCACHED_ENV: &str = "DK_BENCH_STATUS_UNCACHED";
/// Set in the server child: one of the ten monitors reports connectivity (a steady
/// failure), so each request calls its check.
const REPORTING_ENV: &str = "DK_BENCH_STATUS_REPORTING";

fn main() {
    if let Ok(socket) = std::env::var(SERVER_ENV) {
        raise_fd_limit(4 * HOSTILE as u64);
        serve(Path::new(&socket));
        return;
    }
    raise_fd_limit(4 * HOSTILE as u64);
    let started = Instant::now();
    let seconds: f64 = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("dk-bench-{}", std::process::id()));
    let socket = dir.join("control.sock");
    let mut figures = Figures::default();

    println!("control plane over a Unix socket, GET with keep-alive, {seconds} s per run");
    println!(
        "machine: {} CPUs, shared by the client and the server",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "client: 1 conn = one blocking thread; 16 conns = 16 tasks on one tokio current-thread runtime"
    );
    println!(
        "baselines, same server, same run: /health for /status (transport + HTTP + dispatch only);"
    );
    println!(
        "  the clean run for the run under attack ({} connections held open: {} request bodies that never",
        HOSTILE,
        HOSTILE / 2
    );
    println!(
        "  arrive on a body-reading component route, {} idle keep-alive connections)",
        HOSTILE / 2
    );
    // The cached /status of the current-thread runs, the baseline of the uncached one.
    let mut cached_status: [Option<Run>; 2] = [None, None];
    // 0 worker threads = tokio's current-thread runtime.
    for threads in [0, 2] {
        let server = Server::spawn(&socket, threads, None);
        let runtime = if threads == 0 {
            "current-thread".to_owned()
        } else {
            format!("multi-thread ({threads})")
        };
        println!();
        println!(
            "server runtime: {runtime}; idle RSS after start {} KiB",
            server.rss_kib()
        );
        println!(
            "{:<8} {:>5} {:>12} {:>10} {:>9} {:>9} {:>9} {:>13} {:>13}",
            "route",
            "conns",
            "load",
            "req/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "server µs/req",
            "client µs/req"
        );
        let mut clean_health = [None, None, None];
        for (slot, conns) in [1, 16, FRESH].into_iter().enumerate() {
            for path in ["/health", "/status"] {
                if conns == FRESH && path == "/status" {
                    continue;
                }
                let r = measure(&socket, path, conns, seconds, server.pid());
                r.print(path, conns, "clean");
                let baseline = (path == "/status")
                    .then(|| clean_health[slot].clone())
                    .flatten();
                figures.add(&runtime, path, conns, "clean", &r, baseline.as_ref());
                if threads == 0 && conns != FRESH {
                    // The stable names (docs/benchmarks.md): the demo's runtime.
                    let name = format!("{}_c{conns}_server_us", &path[1..]);
                    let base = baseline.as_ref().map(Run::server_cpu_per_request);
                    figures.named(&name, r.server_cpu_per_request(), "us", base);
                    if path == "/status" {
                        cached_status[slot] = Some(r.clone());
                    }
                }
                if path == "/health" {
                    clean_health[slot] = Some(r);
                }
            }
        }

        let hostile = Hostile::open(&socket, HOSTILE);
        let rss_hostile = server.rss_kib();
        for (slot, conns) in [1, 16].into_iter().enumerate() {
            let r = measure(&socket, "/health", conns, seconds, server.pid());
            r.print("/health", conns, &format!("{HOSTILE} hostile"));
            figures.add(
                &runtime,
                "/health",
                conns,
                "hostile",
                &r,
                clean_health[slot].as_ref(),
            );
        }
        let held = hostile.still_open();
        println!(
            "hostile connections still held open by the server after the keep-alive runs: {held} of {HOSTILE}; server RSS with them {rss_hostile} KiB"
        );
        // Over the cap: a health check on a new connection must make room.
        let more = Hostile::open(&socket, OVER_CAP - HOSTILE);
        let r = measure(&socket, "/health", FRESH, seconds, server.pid());
        r.print("/health", FRESH, &format!("{OVER_CAP} hostile"));
        figures.add(
            &runtime,
            "/health",
            FRESH,
            "hostile over the cap",
            &r,
            clean_health[2].as_ref(),
        );
        println!(
            "over the cap: {} of {OVER_CAP} hostile connections still open after the new-connection run (the others were closed to make room)",
            hostile.still_open() + more.still_open()
        );
        hostile.close();
        more.close();
        println!("server RSS after the runs: {} KiB", server.rss_kib());
        server.stop();
    }

    // Two more current-thread servers, each measured against the cached /status above:
    // the same /status serialised on every request (the kit before its cache, and any
    // daemon status function without a version); and the cached /status with one running
    // monitor that reports connectivity (each request calls its check, for the version,
    // and serves the cached body while the answer holds).
    for (mode, load, title) in [
        (
            UNCACHED_ENV,
            "uncached",
            "/status serialised on every request (no cache)",
        ),
        (
            REPORTING_ENV,
            "reporting",
            "/status cached, one monitor reporting connectivity",
        ),
    ] {
        let server = Server::spawn(&socket, 0, Some(mode));
        println!();
        println!("server runtime: current-thread; {title}");
        for (slot, conns) in [1, 16].into_iter().enumerate() {
            let r = measure(&socket, "/status", conns, seconds, server.pid());
            r.print("/status", conns, load);
            figures.named(
                &format!("status_{load}_c{conns}_server_us"),
                r.server_cpu_per_request(),
                "us",
                cached_status[slot]
                    .as_ref()
                    .map(Run::server_cpu_per_request),
            );
        }
        server.stop();
    }

    figures.write();
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!(
        "control_plane bench total: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// How many hostile connections the run under attack holds open.
const HOSTILE: usize = 1000;
/// How many the new-connection run under attack holds: more than the default cap (1024).
const OVER_CAP: usize = 1100;
/// `conns` for a run that opens a new connection per request (`Connection: close`), as a
/// health checker does.
const FRESH: usize = 0;

/// A warm-up run, then the measured run (the previous run's connections are given a
/// moment to be seen closed by the server, so they do not count against its cap).
fn measure(socket: &Path, path: &str, conns: usize, seconds: f64, server: u32) -> Run {
    std::thread::sleep(Duration::from_millis(50));
    // Warm up the connections, the allocator and the CPU frequency.
    let _ = run(socket, path, conns, Duration::from_millis(300), server);
    std::thread::sleep(Duration::from_millis(50));
    run(
        socket,
        path,
        conns,
        Duration::from_secs_f64(seconds),
        server,
    )
}

/// Makes room for `n` descriptors: the run under attack holds a thousand connections.
fn raise_fd_limit(n: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = limit.current.unwrap_or(u64::MAX).max(n);
    let want = limit.maximum.map_or(want, |max| want.min(max));
    limit.current = Some(want);
    setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE");
}

// ===== the attackers =====

/// Connections held open against the server: half have sent a request head promising a
/// 1000-byte body to a body-reading route and 10 bytes of it; half sent one request,
/// read the answer, and idle.
struct Hostile {
    conns: Vec<UnixStream>,
}

impl Hostile {
    fn open(socket: &Path, n: usize) -> Hostile {
        let mut conns = Vec::with_capacity(n);
        let mut buf = vec![0u8; 64 * 1024];
        for i in 0..n {
            let mut conn = UnixStream::connect(socket).expect("connect an attacker");
            if i % 2 == 0 {
                conn.write_all(
                    b"POST /bench/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789",
                )
                .expect("send a slow body's head");
            } else {
                conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    .expect("send a request");
                read_response(&mut conn, &mut buf);
            }
            conns.push(conn);
        }
        Hostile { conns }
    }

    /// The connections the server has not closed (nothing to read, no EOF).
    fn still_open(&self) -> usize {
        self.conns
            .iter()
            .filter(|conn| {
                conn.set_nonblocking(true).expect("non-blocking");
                let mut byte = [0u8; 1];
                matches!((&**conn).read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    }

    fn close(self) {
        drop(self.conns);
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ===== BENCH_JSON =====

/// A figure's name, how to read it from a run, and its unit.
type Figure = (&'static str, fn(&Run) -> f64, &'static str);

/// The figures, written to the file named by `BENCH_JSON` (one JSON object per line,
/// appended) when it is set.
#[derive(Default)]
struct Figures {
    lines: Vec<String>,
}

impl Figures {
    fn add(
        &mut self,
        runtime: &str,
        path: &str,
        conns: usize,
        load: &str,
        run: &Run,
        baseline: Option<&Run>,
    ) {
        let name = format!("{path} {} {load}, {runtime}", conns_name(conns));
        let figures: [Figure; 4] = [
            ("req/s", Run::per_second, "req/s"),
            ("p50", |r| r.percentile(0.50), "µs"),
            ("p99", |r| r.percentile(0.99), "µs"),
            ("server CPU per request", Run::server_cpu_per_request, "µs"),
        ];
        for (figure, value, unit) in figures {
            self.lines.push(
                serde_json::json!({
                    "bench": "control_plane",
                    "figure": format!("{figure}: {name}"),
                    "value": value(run),
                    "unit": unit,
                    "baseline": baseline.map(value),
                })
                .to_string(),
            );
        }
    }

    /// A figure under one of the stable names listed in docs/benchmarks.md.
    fn named(&mut self, figure: &str, value: f64, unit: &str, baseline: Option<f64>) {
        self.lines.push(
            serde_json::json!({
                "bench": "control_plane",
                "figure": figure,
                "value": value,
                "unit": unit,
                "baseline": baseline,
            })
            .to_string(),
        );
    }

    fn write(&self) {
        let Some(path) = std::env::var_os("BENCH_JSON") else {
            return;
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open BENCH_JSON");
        for line in &self.lines {
            writeln!(file, "{line}").expect("write BENCH_JSON");
        }
    }
}

// ===== the server (child process) =====

/// Serves the control plane on `socket` until stdin closes.
fn serve(socket: &Path) {
    let threads: usize = std::env::var(THREADS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("build the runtime");
    runtime.block_on(async {
        let tracker = ten_monitors();
        // Kept for the server's life: dropping a handle does not unregister, but keep it
        // plain that the monitor is live.
        let _reporting = std::env::var_os(REPORTING_ENV).is_some().then(|| {
            let link = tracker
                .register_reporting("monitor-10", || {
                    Err(StatusError::new(
                        "UpstreamDown",
                        "dial 10.0.0.7:443: refused",
                    ))
                })
                .expect("a unique name");
            link.set_state(MonitorState::Running);
            link
        });
        let status = tracker.clone();
        let echo = Router::new().route("/echo", post(|body: Bytes| async move { body }));
        let builder = ControlPlane::builder(socket);
        let builder = if std::env::var_os(UNCACHED_ENV).is_some() {
            builder.status(move || status.snapshot())
        } else {
            builder.tracker_status(&status)
        };
        let bound = builder
            .metrics(&tracker)
            .component("bench", echo)
            // Long enough that the attackers are held for the whole run under attack
            // (with the defaults, 10 s and 60 s, they would be closed during a long one).
            .body_read_timeout(Duration::from_secs(600))
            .idle_timeout(Duration::from_secs(600))
            .build()
            .expect("a valid control-plane configuration")
            .bind()
            .await
            .expect("bind the control plane");
        let cancel = CancellationToken::new();
        let server = tokio::spawn(bound.serve(cancel.clone()));
        println!("ready");
        // The parent closes our stdin to stop us.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .expect("stdin watcher");
        cancel.cancel();
        server.await.expect("join").expect("serve");
    });
}

/// Ten monitors in a realistic mix of states, with errors where they have them.
fn ten_monitors() -> StatusTracker {
    let tracker = StatusTracker::new();
    for i in 0..10 {
        let name = format!("monitor-{i:02}");
        tracker.register(&name).expect("a unique name").update(|s| {
            s.restarts = i * 3;
            match i % 4 {
                0 | 1 => s.state = MonitorState::Running,
                2 => {
                    s.state = MonitorState::Backoff(Duration::from_secs(5 << (i % 3)));
                    s.consecutive_crashes = 2;
                    s.error = Some(
                        StatusError::new(
                            "MonitorCrash",
                            "connect to 10.0.0.5:5432: connection refused",
                        )
                        .with_resolution("systemctl status postgresql"),
                    );
                    s.last_error = Some("connect to 10.0.0.5:5432: connection refused".into());
                }
                _ => s.state = MonitorState::Stopped,
            }
        });
    }
    tracker
}

struct Server {
    child: Child,
}

impl Server {
    /// The server child, with `mode` (an environment variable's name) set if given.
    fn spawn(socket: &Path, threads: usize, mode: Option<&str>) -> Server {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        if let Some(mode) = mode {
            command.env(mode, "1");
        }
        let mut child = command
            .env(SERVER_ENV, socket)
            .env(THREADS_ENV, threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read the server's ready line");
        assert_eq!(line.trim(), "ready", "the server did not start");
        Server { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// On-CPU time of every thread of process `pid`, in nanoseconds.
fn cpu_nanos(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| {
            let path: PathBuf = task.ok()?.path().join("schedstat");
            let text = std::fs::read_to_string(path).ok()?;
            text.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

// ===== the client =====

#[derive(Clone)]
struct Run {
    requests: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
    server_cpu_ns: u64,
    client_cpu_ns: u64,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let at = ((self.latencies_ns.len() - 1) as f64 * p).round() as usize;
        self.latencies_ns[at] as f64 / 1000.0
    }

    fn print(&self, path: &str, conns: usize, load: &str) {
        println!(
            "{:<8} {:>5} {:>12} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>13.2} {:>13.2}",
            path,
            if conns == FRESH {
                "new".to_owned()
            } else {
                conns.to_string()
            },
            load,
            self.per_second(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
            self.server_cpu_per_request(),
            self.client_cpu_per_request(),
        );
    }

    fn server_cpu_per_request(&self) -> f64 {
        self.server_cpu_ns as f64 / 1000.0 / self.requests.max(1) as f64
    }

    fn client_cpu_per_request(&self) -> f64 {
        self.client_cpu_ns as f64 / 1000.0 / self.requests.max(1) as f64
    }
}

fn conns_name(conns: usize) -> String {
    if conns == FRESH {
        "new conn per request".to_owned()
    } else {
        format!("{conns} conns")
    }
}

fn run(socket: &Path, path: &str, conns: usize, duration: Duration, server: u32) -> Run {
    let close = if conns == FRESH {
        "Connection: close\r\n"
    } else {
        ""
    };
    let request: Arc<[u8]> = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n")
        .into_bytes()
        .into();
    let stop = Arc::new(AtomicBool::new(false));
    let streams: Vec<UnixStream> = (0..conns)
        .map(|_| UnixStream::connect(socket).expect("connect"))
        .collect();
    let server = server.to_string();
    let server_before = cpu_nanos(&server);
    let started = Instant::now();
    let client = {
        let stop = stop.clone();
        if conns == FRESH {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || fresh_client(&socket, &request, &stop))
        } else if conns == 1 {
            std::thread::spawn(move || blocking_client(streams, &request, &stop))
        } else {
            std::thread::spawn(move || async_client(streams, request, stop))
        }
    };
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let (mut latencies_ns, client_cpu_ns) = client.join().expect("client thread");
    let elapsed = started.elapsed();
    let server_cpu_ns = cpu_nanos(&server).saturating_sub(server_before);
    latencies_ns.sort_unstable();
    Run {
        requests: latencies_ns.len() as u64,
        elapsed,
        latencies_ns,
        server_cpu_ns,
        client_cpu_ns,
    }
}

/// The calling thread's CPU time.
fn thread_cpu_nanos() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// One blocking connection: sends `request` and reads the response until `stop`.
/// Returns each round trip's time and the thread's CPU time.
fn blocking_client(streams: Vec<UnixStream>, request: &[u8], stop: &AtomicBool) -> (Vec<u64>, u64) {
    let cpu_before = thread_cpu_nanos();
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut buf = vec![0u8; 64 * 1024];
    for mut stream in streams {
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            stream.write_all(request).expect("send");
            read_response(&mut stream, &mut buf);
            latencies.push(sent.elapsed().as_nanos() as u64);
        }
    }
    (latencies, thread_cpu_nanos() - cpu_before)
}

/// A new connection per request, as a health checker makes: connect, send, read the
/// response, close; the round trip includes the connect.
fn fresh_client(socket: &Path, request: &[u8], stop: &AtomicBool) -> (Vec<u64>, u64) {
    let cpu_before = thread_cpu_nanos();
    let mut latencies = Vec::with_capacity(1 << 18);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let mut stream = UnixStream::connect(socket).expect("connect");
        stream.write_all(request).expect("send");
        read_response(&mut stream, &mut buf);
        drop(stream);
        latencies.push(sent.elapsed().as_nanos() as u64);
    }
    (latencies, thread_cpu_nanos() - cpu_before)
}

/// Every connection as a task on one current-thread runtime (one epoll loop), so the
/// client spends its CPU on requests rather than on switching between threads.
fn async_client(
    streams: Vec<UnixStream>,
    request: Arc<[u8]>,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, u64) {
    let cpu_before = thread_cpu_nanos();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let latencies = runtime.block_on(async {
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                stream.set_nonblocking(true).expect("non-blocking");
                let stream = tokio::net::UnixStream::from_std(stream).expect("register");
                tokio::spawn(connection(stream, request.clone(), stop.clone()))
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("client task"));
        }
        all
    });
    (latencies, thread_cpu_nanos() - cpu_before)
}

async fn connection(
    mut stream: tokio::net::UnixStream,
    request: Arc<[u8]>,
    stop: Arc<AtomicBool>,
) -> Vec<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut latencies = Vec::with_capacity(1 << 18);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        stream.write_all(&request).await.expect("send");
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            filled += n;
            if let Some(head_end) = find(&buf[..filled], b"\r\n\r\n") {
                let total = head_end + 4 + content_length(&buf[..head_end]);
                while filled < total {
                    let n = stream.read(&mut buf[filled..]).await.expect("read body");
                    assert!(n > 0, "the server closed the connection");
                    filled += n;
                }
                assert!(buf.starts_with(b"HTTP/1.1 200"), "not a 200");
                break;
            }
        }
        latencies.push(sent.elapsed().as_nanos() as u64);
    }
    latencies
}

/// Reads one response with a Content-Length body into `buf`.
fn read_response(stream: &mut UnixStream, buf: &mut [u8]) {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).expect("read");
        assert!(n > 0, "the server closed the connection");
        filled += n;
        if let Some(head_end) = find(&buf[..filled], b"\r\n\r\n") {
            let length = content_length(&buf[..head_end]);
            let total = head_end + 4 + length;
            while filled < total {
                let n = stream.read(&mut buf[filled..]).expect("read body");
                assert!(n > 0, "the server closed the connection");
                filled += n;
            }
            assert!(buf.starts_with(b"HTTP/1.1 200"), "not a 200");
            return;
        }
    }
}

fn content_length(head: &[u8]) -> usize {
    let head = std::str::from_utf8(head).expect("UTF-8 head");
    head.split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
