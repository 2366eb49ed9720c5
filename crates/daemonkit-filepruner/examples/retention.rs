//! Retention, dry run first: what a pass *would* remove, file by file, and why — then
//! the real pass.
//!
//! Run it with `cargo run --example retention`. It works in a
//! temporary directory of rolled audit files, one a month for a year, plus the live file.

use std::time::Duration;

use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner, Report};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    for month in 1..=12 {
        let name = format!("audit-2026{month:02}01T000000Z.jsonl");
        std::fs::write(dir.path().join(name), b"{}\n")?;
    }
    std::fs::write(dir.path().join("audit-current.jsonl"), b"{}\n")?;

    // Files older than 90 days go; of the rest, at most 2 stay (the oldest go first).
    // A name without a timestamp cannot be judged and is protected: kept, never counted.
    let strategy = FilenameTimestamp::new("%Y%m%dT%H%M%SZ", Duration::from_secs(90 * 86_400))?;
    let pattern = Pattern::new("audit-*.jsonl")?;
    let now = "2026-12-15T00:00:00Z".parse()?;

    let preview =
        Pruner::new(strategy.clone())
            .dry_run(true)
            .prune_at(dir.path(), &pattern, 2, now)?;
    print("dry run", &preview);
    assert_eq!(
        std::fs::read_dir(dir.path())?.count(),
        13,
        "a dry run removes nothing"
    );

    let done = Pruner::new(strategy).prune_at(dir.path(), &pattern, 2, now)?;
    print("real pass", &done);
    assert!(done.is_success());
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 3);
    // The report serialises as `daemonctl prune --json` prints it.
    println!("{}", serde_json::to_string(&done)?);
    Ok(())
}

fn print(title: &str, report: &Report) {
    println!("== {title} of {}", report.dir.display());
    let mut removed: Vec<_> = report.removed.iter().collect();
    removed.sort_by(|a, b| a.name.cmp(&b.name));
    for r in removed {
        println!("  remove   {} ({:?})", r.name.display(), r.reason);
    }
    let mut kept = report.kept.clone();
    kept.sort();
    for name in kept {
        println!("  keep     {}", name.display());
    }
    for p in &report.protected {
        println!("  protect  {} ({})", p.name.display(), p.reason);
    }
}
