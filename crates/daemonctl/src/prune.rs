//! `daemonctl prune DIR --pattern GLOB --keep N …`: retention pruning from the
//! command line, with daemonkit-filepruner.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use daemonkit_filepruner::{
    All, Any, FileSize, FilenameTimestamp, ModifiedTime, Order, Pattern, Pruner, RemovalReason,
    Report, Strategy,
};
use jiff::{Span, SpanRelativeTo};

use crate::escape;

/// Every removal succeeded (or nothing had to go).
const OK: u8 = 0;
/// Some removals failed; the report lists them.
const SOME_FAILED: u8 = 1;
/// Bad input (pattern, format, duration, size, directory): nothing was removed.
const BAD_INPUT: u8 = 2;

/// Arguments of `daemonctl prune`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Durations: 30s, 90m, 36h, 7d, 2w, 1d12h, or ISO 8601 (P7D).\n\
        Exit codes: 0 success, 1 some removals failed (listed), 2 bad input (nothing removed).\n\
        The full rules and an example: daemonctl prune --help",
    after_long_help = "How a pass works: pass 1 removes every file the strategies mark \
        prunable (--max-age with --timestamp-format: a timestamp in the name is older than \
        DUR; --mtime-age: the modification time is older than DUR; --max-size: the file is \
        larger than BYTES). Several strategies must all agree, or any one with --any. \
        Pass 2 removes the oldest of the remaining files (lowest names, or --order mtime) \
        until --keep remain.\n\n\
        A file a strategy cannot judge (e.g. no timestamp in its name) is protected: never \
        removed and not counted toward --keep. Only regular files and symlinks are removed \
        (a symlink is unlinked, never followed); nothing outside DIR is touched.\n\n\
        Durations: 30s, 90m, 36h, 7d, 2w, 1d12h, or ISO 8601 (P7D); days are 24 hours.\n\
        Exit codes: 0 success, 1 some removals failed (listed), 2 bad input (nothing removed).\n\n\
        Example:\n  daemonctl prune /var/log/app --pattern 'audit-*.jsonl' --keep 50 \\\n    \
        --max-age 90d --timestamp-format '%Y%m%dT%H%M%SZ' --dry-run"
)]
#[command(group(
    clap::ArgGroup::new("strategy")
        .args(["max_age", "mtime_age", "max_size"])
        .required(true)
        .multiple(true)
))]
pub struct PruneArgs {
    /// The directory holding the files; only its direct entries are considered.
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// File-name glob (`*`, `?`, `[...]`, `{a,b}`), e.g. 'audit-*.jsonl'; no '/'.
    #[arg(long, value_name = "GLOB")]
    pattern: String,

    /// How many of the files no strategy marks prunable to keep at most.
    #[arg(long, value_name = "N")]
    keep: usize,

    /// Prune files whose name holds a timestamp older than DUR (needs --timestamp-format).
    #[arg(long, value_name = "DUR", requires = "timestamp_format")]
    max_age: Option<String>,

    /// The strftime format of the timestamp in the names, e.g. '%Y%m%dT%H%M%SZ'.
    #[arg(long, value_name = "FMT", requires = "max_age")]
    timestamp_format: Option<String>,

    /// Prune files last modified more than DUR ago.
    #[arg(long, value_name = "DUR")]
    mtime_age: Option<String>,

    /// Prune files larger than BYTES.
    #[arg(long, value_name = "BYTES")]
    max_size: Option<String>,

    /// Prune a file when any strategy says so (default: all must agree).
    #[arg(long)]
    any: bool,

    /// Which files --keep removes first: the lowest names (`name`, default) or the
    /// least recently modified (`mtime`).
    #[arg(long, value_name = "ORDER", default_value = "name", value_parser = ["name", "mtime"])]
    order: String,

    /// Remove nothing; report what would be removed.
    #[arg(long)]
    dry_run: bool,

    /// Print the report as one JSON object. Names are exact: a JSON string when the name
    /// is UTF-8, else {"bytes": [..]} with its raw bytes.
    #[arg(long)]
    json: bool,
}

/// Runs `daemonctl prune`.
pub fn run(args: PruneArgs) -> ExitCode {
    let (pruner, pattern) = match configure(&args) {
        Ok(configured) => configured,
        Err(message) => {
            eprintln!("daemonctl: {}", escape::text(&message));
            return ExitCode::from(BAD_INPUT);
        }
    };
    let mut report = match pruner.prune(&args.dir, &pattern, args.keep) {
        // The library treats a missing directory as "nothing yet" (for daemons); an operator
        // who names one gets the error, as before.
        Ok(report) if report.dir_missing => {
            eprintln!(
                "daemonctl: cannot open directory {}: No such file or directory (os error 2)",
                args.dir.display()
            );
            return ExitCode::from(BAD_INPUT);
        }
        Ok(report) => report,
        Err(err) => {
            eprintln!("daemonctl: {}", escape::text(&err.to_string()));
            return ExitCode::from(BAD_INPUT);
        }
    };
    sort_for_display(&mut report);
    if args.json {
        println!("{}", escape::json_value(&exact_json(&report), false));
    } else {
        print_human(&report);
    }
    ExitCode::from(if report.is_success() { OK } else { SOME_FAILED })
}

/// Builds the pruner and pattern, or a one-line explanation of the bad input.
fn configure(args: &PruneArgs) -> Result<(Pruner, Pattern), String> {
    let pattern = Pattern::new(&args.pattern).map_err(|e| e.to_string())?;
    let mut strategies: Vec<Box<dyn Strategy>> = Vec::new();
    if let (Some(age), Some(format)) = (&args.max_age, &args.timestamp_format) {
        let age = parse_duration("--max-age", age)?;
        strategies.push(Box::new(
            FilenameTimestamp::new(format, age).map_err(|e| e.to_string())?,
        ));
    }
    if let Some(age) = &args.mtime_age {
        strategies.push(Box::new(ModifiedTime::new(parse_duration(
            "--mtime-age",
            age,
        )?)));
    }
    if let Some(size) = &args.max_size {
        let bytes = size.trim().parse::<u64>().map_err(|_| {
            format!("invalid --max-size `{size}`: give a whole number of bytes, e.g. 10485760")
        })?;
        strategies.push(Box::new(FileSize::new(bytes)));
    }
    let mut strategies = strategies.into_iter();
    // clap's required "strategy" group guarantees at least one; the check
    // stays so that a change there cannot make a pruner with no strategy.
    let first = strategies.next().ok_or_else(|| {
        "give at least one of --max-age (with --timestamp-format), --mtime-age, --max-size"
            .to_owned()
    })?;
    let strategy: Box<dyn Strategy> = if args.any {
        Box::new(strategies.fold(Any::new(first), Any::or))
    } else {
        Box::new(strategies.fold(All::new(first), All::and))
    };
    let order = if args.order == "mtime" {
        Order::Modified
    } else {
        Order::Name
    };
    let pruner = Pruner::new(strategy).order(order).dry_run(args.dry_run);
    Ok((pruner, pattern))
}

/// Parses `30s`, `90m`, `36h`, `7d`, `2w`, `1d12h`, `P7D`… with days of 24 hours.
fn parse_duration(flag: &str, text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid {flag} `{text}`: {why}");
    let span: Span = text
        .trim()
        .parse()
        .map_err(|_| invalid("give a duration such as 30s, 90m, 36h, 7d or 2w"))?;
    if span.get_months() != 0 || span.get_years() != 0 {
        return Err(invalid(
            "months and years have no fixed length; use days, e.g. 365d",
        ));
    }
    let signed = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .map_err(|_| invalid("the duration is out of range"))?;
    Duration::try_from(signed).map_err(|_| invalid("the duration must not be negative"))
}

/// Sorts the report's lists by name for a stable display, keeping the hard-cap
/// removals (which follow the strategy removals) in their oldest-first order.
fn sort_for_display(report: &mut Report) {
    let by_strategy = report
        .removed
        .iter()
        .take_while(|r| r.reason == RemovalReason::Prunable)
        .count();
    report.removed[..by_strategy].sort_by(|a, b| a.name.cmp(&b.name));
    report.kept.sort();
    report.protected.sort_by(|a, b| a.name.cmp(&b.name));
    report.failures.sort_by(|a, b| a.name.cmp(&b.name));
    report.vanished.sort();
}

/// The report as JSON with every name exact: a string when it is UTF-8, else
/// `{"bytes": [..]}` (see [`escape::json_name`]). The library's own serialisation
/// writes names lossily; this one starts from it (so fields it gains later still appear)
/// and replaces every name it knows.
fn exact_json(report: &Report) -> serde_json::Value {
    use serde_json::Value;
    // Serialising the report cannot fail: it holds only strings, numbers and lists.
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    let Some(obj) = value.as_object_mut() else {
        return value;
    };
    obj.insert("dir".to_owned(), escape::json_name(report.dir.as_os_str()));
    let names =
        |obj: &mut serde_json::Map<String, Value>, key: &str, names: Vec<&std::ffi::OsStr>| {
            match obj.get_mut(key).and_then(Value::as_array_mut) {
                Some(list) if list.len() == names.len() => {
                    for (item, name) in list.iter_mut().zip(names) {
                        match item {
                            Value::Object(entry) => {
                                entry.insert("name".to_owned(), escape::json_name(name));
                            }
                            other => *other = escape::json_name(name),
                        }
                    }
                }
                _ => {}
            }
        };
    names(
        obj,
        "removed",
        report.removed.iter().map(|r| r.name.as_os_str()).collect(),
    );
    names(
        obj,
        "kept",
        report.kept.iter().map(|n| n.as_os_str()).collect(),
    );
    names(
        obj,
        "protected",
        report
            .protected
            .iter()
            .map(|p| p.name.as_os_str())
            .collect(),
    );
    names(
        obj,
        "failures",
        report.failures.iter().map(|f| f.name.as_os_str()).collect(),
    );
    names(
        obj,
        "vanished",
        report.vanished.iter().map(|n| n.as_os_str()).collect(),
    );
    value
}

fn print_human(report: &Report) {
    let removed_verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for removed in &report.removed {
        let why = match removed.reason {
            RemovalReason::Prunable => "prunable",
            RemovalReason::OverCap => "over the --keep cap",
        };
        println!("{removed_verb:<12}  {}  ({why})", escape::os(&removed.name));
    }
    for failure in &report.failures {
        println!(
            "{:<12}  {}  ({})",
            "FAILED",
            escape::os(&failure.name),
            escape::text(&failure.error.to_string())
        );
    }
    for protected in &report.protected {
        println!(
            "{:<12}  {}  ({})",
            "protected",
            escape::os(&protected.name),
            escape::text(&protected.reason.to_string())
        );
    }
    for vanished in &report.vanished {
        println!(
            "{:<12}  {}  (removed by someone else meanwhile)",
            "vanished",
            escape::os(vanished)
        );
    }
    let counts = format!(
        "{} kept, {} protected, {} failed, {} vanished",
        report.kept.len(),
        report.protected.len(),
        report.failures.len(),
        report.vanished.len(),
    );
    let dir = escape::path(&report.dir);
    if report.dry_run {
        println!(
            "{dir}: {} would be removed, {counts} (dry run: nothing was removed)",
            report.removed.len()
        );
    } else {
        println!("{dir}: {} removed, {counts}", report.removed.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_the_short_forms() {
        let d = |s| parse_duration("--max-age", s).unwrap();
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("90m"), Duration::from_secs(90 * 60));
        assert_eq!(d("36h"), Duration::from_secs(36 * 3600));
        assert_eq!(d("7d"), Duration::from_secs(7 * 86_400));
        assert_eq!(d("2w"), Duration::from_secs(14 * 86_400));
        assert_eq!(d("1d12h"), Duration::from_secs(36 * 3600));
        assert_eq!(d("P7D"), Duration::from_secs(7 * 86_400));
    }

    #[test]
    fn durations_reject_what_has_no_fixed_length_or_is_negative() {
        let e = |s| parse_duration("--max-age", s).unwrap_err();
        assert!(e("7x").contains("invalid --max-age `7x`"), "{}", e("7x"));
        assert!(e("1mo").contains("no fixed length"), "{}", e("1mo"));
        assert!(e("1y").contains("no fixed length"), "{}", e("1y"));
        assert!(e("-7d").contains("negative"), "{}", e("-7d"));
        assert!(e("").contains("give a duration"), "{}", e(""));
    }
}
