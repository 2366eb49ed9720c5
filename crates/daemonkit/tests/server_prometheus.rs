//! A real Prometheus server (Debian's `prometheus` package, installed by `.ci/run`)
//! scrapes the control plane's TCP listener, and a monitor's restart counter is read back
//! through Prometheus' HTTP API.

mod server_support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use daemonkit::server::ControlPlane;
use daemonkit::{MonitorState, StatusTracker};
use server_support::{Server, socket_dir, tcp_get};

/// Kills the Prometheus server when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    // Released again at once; the small window before Prometheus binds it is acceptable in
    // a test (a clash shows as Prometheus failing to start, reported below).
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn prometheus_scrapes_a_monitor_s_restart_counter() {
    let tracker = StatusTracker::new();
    tracker.update("ingest", |s| {
        s.state = MonitorState::Running;
        s.restarts = 7;
    });
    let dir = socket_dir();
    let server = Server::start(
        ControlPlane::builder(dir.path().join("control.sock"))
            .metrics(&tracker)
            .tcp("127.0.0.1:0".parse().unwrap()),
    )
    .await;
    let target = server.tcp.expect("TCP listener");

    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n\
             scrape_configs:\n  - job_name: daemonkit\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = std::fs::File::create(work.path().join("prometheus.log")).unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            work.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run prometheus (apt-get install prometheus)");
    let mut prometheus = Killed(prometheus);

    let query = "/api/v1/query?query=daemonkit_monitor_restarts_total%7Bmonitor%3D%22ingest%22%7D";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let value = loop {
        if let Ok(Some(status)) = prometheus.0.try_wait() {
            panic!(
                "prometheus exited ({status}):\n{}",
                std::fs::read_to_string(work.path().join("prometheus.log")).unwrap_or_default()
            );
        }
        if tokio::net::TcpStream::connect(web).await.is_ok() {
            let answer = tcp_get(web, query).await;
            if answer.status == 200 {
                let json = answer.json();
                assert_eq!(json["status"], "success", "{json}");
                if let Some(sample) = json["data"]["result"].as_array().and_then(|r| r.first()) {
                    assert_eq!(sample["metric"]["job"], "daemonkit");
                    break sample["value"][1].as_str().unwrap().to_owned();
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never returned the sample; its log:\n{}",
            std::fs::read_to_string(work.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(value, "7");

    // The control plane saw the scrapes over TCP and still serves.
    assert_eq!(tcp_get(target, "/health").await.status, 200);
    drop(prometheus);
    server.stop().await.unwrap();
}
