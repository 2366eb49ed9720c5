//! Connectivity: a monitor that is alive but failing shows as `degraded` (not crashed,
//! not restarted) until its dependency is back. Here the "uplink" is a local TCP port
//! the example opens and closes every few seconds.
//!
//! ```text
//! cargo run --example connectivity
//! daemonctl --daemon connectivity watch      # running → degraded (UplinkDown) → running
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use daemonkit::monitor::{OnError, every};
use daemonkit::{Daemon, StatusError};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::stderr)
        .init();

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let address = listener
        .local_addr()
        .expect("a bound socket has an address");
    // The "remote service": up for 3 s, down for 3 s, forever.
    std::thread::spawn(move || {
        let mut listener = Some(listener);
        loop {
            std::thread::sleep(Duration::from_secs(3));
            listener = match listener.take() {
                Some(_up) => None,
                None => std::net::TcpListener::bind(address).ok(),
            };
        }
    });

    // A check every second. With `OnError::Degrade` a failed tick is a connectivity
    // report: the monitor stays running and shows `degraded` with this error; the
    // default (`OnError::Crash`) would restart it after a back-off instead, which is
    // right for state a fresh start cures, not for a peer that is away.
    let uplink = every("uplink", Duration::from_secs(1), move || async move {
        match tokio::net::TcpStream::connect(address).await {
            Ok(_) => Ok(()),
            Err(err) => Err(StatusError::new("UplinkDown", format!("{address}: {err}"))
                .with_resolution("check that the uplink service is running")
                .into()),
        }
    })
    .on_error(OnError::Degrade);

    match Daemon::builder("connectivity")
        .monitor(Arc::new(uplink))
        .build()
    {
        Ok(daemon) => {
            println!("control socket: {}", daemon.socket_path().display());
            daemon.run_main().into()
        }
        Err(err) => {
            eprintln!("connectivity: {err}");
            ExitCode::from(78)
        }
    }
}
