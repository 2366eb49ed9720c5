//! A tiny systemd-style service for the notify and watchdog tests: reads `NOTIFY_SOCKET`,
//! `WATCHDOG_USEC` and `WATCHDOG_PID` like a real daemon, sends `READY=1`, runs the
//! watchdog keepalive for a while, sends `STOPPING=1` and exits.
//!
//! ```text
//! sd_notify_child [--watch-ms N]
//! ```
//!
//! It prints one line per decision (`notify: …`, `watchdog: …`) so a test can check what
//! was read from the environment. Exits 1 with the error on stderr when anything fails.

use std::time::Duration;

use daemonkit::systemd::notify::Notifier;
use daemonkit::systemd::watchdog::Watchdog;
use tokio_util::sync::CancellationToken;

fn main() {
    if let Err(error) = run() {
        eprintln!("sd_notify_child: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut watch = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--watch-ms" => {
                let ms: u64 = args.next().ok_or("--watch-ms needs a value")?.parse()?;
                watch = Duration::from_millis(ms);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }

    let notifier = Notifier::from_env()?;
    match notifier.address() {
        Some(address) => println!("notify: enabled address={address}"),
        None => println!("notify: disabled"),
    }
    notifier.ready()?;

    let watchdog = Watchdog::from_env(notifier.clone())?;
    match watchdog.interval() {
        Some(interval) => println!("watchdog: enabled interval_us={}", interval.as_micros()),
        None => println!("watchdog: disabled"),
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(watchdog.run(cancel.clone()));
        tokio::time::sleep(watch).await;
        cancel.cancel();
        task.await
    })?;

    notifier.stopping()?;
    Ok(())
}
