//! Pruning 100,000 timestamped files in one directory.
//!
//! Run with `cargo bench -p daemonkit-filepruner` (add `-- steady`, `-- delete`,
//! `-- cap`, `-- threads` or `-- scan` for one section; `cap` and `threads` run only
//! when named). The files live under the target directory's `tmp/` — real disk, not
//! tmpfs; the file system type is printed — with a warm page cache. Each section
//! creates only the files it measures. Each figure is printed as wall time and as
//! this process's CPU time (user and system, and minor page faults: the machine may
//! be shared), with baselines measured in the same run, in interleaved rounds:
//!
//! - steady: 100,000 recent files, `keep` above the count, nothing to delete.
//!   Floor: opening and listing the directory and nothing else, the way the pruner
//!   lists (`getdents64` into a 64 KiB buffer); `std::fs::read_dir` is printed
//!   beside it. Baseline: a naive pruner that, as the Go daemonkit does, tries a
//!   full timestamp parse at every offset of every name.
//! - delete: 99,000 files past the maximum age and 1,000 recent, `keep` =
//!   1,000; cap: 100,000 recent files, 99,000 over the cap. Timed with the
//!   default removal threads (and, in delete, without the lock probe). Floor: the
//!   same names unlinked (`unlinkat`, in inode order as the pruner unlinks) by
//!   one thread and nothing else, divided by the threads the pruner used.
//! - threads: delete on 1, 2 and 4 threads, with and without the probe, against
//!   the plain unlink on 1 thread (inode and listing order) and 2 threads.
//! - scan: locating the timestamp in 100,000 names in memory (no files).
//!
//! With `BENCH_JSON=<file>`, one JSON object per figure is appended to the file
//! (`prune_steady_ms`, `prune_delete_ms`, … — see docs/benchmarks.md).

use std::collections::HashSet;
use std::ffi::OsString;
use std::hint::black_box;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemonkit_filepruner::{FilenameTimestamp, Pattern, Pruner};
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

const FILES: usize = 100_000;
const KEEP: usize = 1_000;
const FORMAT: &str = "%Y%m%dT%H%M%SZ";
const GLOB: &str = "consensus-upgrade-*.jsonl";
const MAX_AGE: Duration = Duration::from_secs(365 * 86_400);
const STEADY_RUNS: usize = 9;
const DELETE_RUNS: usize = 3;
/// Rounds of the `threads` section: it times eight configurations a round.
const THREADS_RUNS: usize = 2;

fn main() {
    let started = Instant::now();
    // `cargo bench -p daemonkit-filepruner -- steady` runs only the sections
    // whose name contains "steady" (sections: steady, delete, cap, threads, scan).
    // `cap` and `threads` run only when asked for: `cap` times the same removal
    // path as `delete`, `threads` six variants of it, and creating 100,000 files
    // for each takes minutes on a busy disk.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let run = |section: &str| match filter.as_deref() {
        Some(f) => section.contains(f),
        None => section != "cap" && section != "threads",
    };
    let now: Timestamp = "2026-04-15T12:00:00Z".parse().expect("valid timestamp");
    // One directory per process: two runs at once (a helper's and `cargo bench
    // --workspace`) must not remove each other's files.
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("prune-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create bench root");
    println!(
        "daemonkit-filepruner bench: {FILES} files in one directory under {} ({}), warm page cache",
        root.display(),
        fs_kind(&root)
    );
    println!("load average at start: {}\n", load_average());

    let pattern = Pattern::new(GLOB).expect("valid pattern");
    let pruner = Pruner::new(FilenameTimestamp::new(FORMAT, MAX_AGE).expect("valid format"));
    let naive = Naive::new(FORMAT, MAX_AGE, &pattern);

    if run("steady") {
        let steady = root.join("steady");
        create(&steady, now, 0);
        let unlisted = pruner.clone().list_kept(false);
        let pass = |pruner: &Pruner, listed: usize| {
            let report = pruner
                .prune_at(&steady, &pattern, FILES, now)
                .expect("prune");
            assert_eq!((report.kept.len(), report.kept_count), (listed, FILES));
            assert!(report.removed.is_empty());
        };
        let raw_floor = || assert_eq!(black_box(list_raw(&steady)), FILES);
        let std_floor = || {
            let entries = std::fs::read_dir(&steady).expect("read dir").count();
            assert_eq!(black_box(entries), FILES);
        };
        // Interleaved rounds (the order rotates each round), so that a burst of load from
        // another process falls on all four alike.
        let mut rounds: [Vec<Timing>; 4] = Default::default();
        for round in 0..=STEADY_RUNS {
            for k in 0..4 {
                let which = (round + k) % 4;
                let t = match which {
                    0 => measure(|| pass(&pruner, FILES)),
                    1 => measure(|| pass(&unlisted, 0)),
                    2 => measure(raw_floor),
                    _ => measure(std_floor),
                };
                // Round 0 is the warm-up (page cache, allocator).
                if round > 0 {
                    rounds[which].push(t);
                }
            }
        }
        let [ours, ours_unlisted, floor, std_floor] = rounds.map(median);
        let base = time_runs(STEADY_RUNS, || {
            let outcome = naive.prune(&steady, FILES, now, false);
            assert_eq!(outcome, (0, FILES));
        });
        println!("steady state, nothing to delete (median of {STEADY_RUNS}, interleaved):");
        row(
            "daemonkit-filepruner",
            ours,
            &format!(
                "-> {:.2}x wall, {:.2}x cpu the listing floor",
                ratio(ours.wall, floor.wall),
                ratio(ours.cpu, floor.cpu)
            ),
        );
        row(
            "same, list_kept(false)",
            ours_unlisted,
            &format!(
                "-> {:.2}x wall, {:.2}x cpu the listing floor",
                ratio(ours_unlisted.wall, floor.wall),
                ratio(ours_unlisted.cpu, floor.cpu)
            ),
        );
        row(
            "floor: listing only",
            floor,
            "(open + getdents64 in 64 KiB, as the pruner lists)",
        );
        row(
            "std::fs::read_dir",
            std_floor,
            &format!(
                "(the same listing through std) -> ours {:.2}x wall, {:.2}x cpu",
                ratio(ours.wall, std_floor.wall),
                ratio(ours.cpu, std_floor.cpu)
            ),
        );
        row(
            "baseline: per-offset parse",
            base,
            &format!("-> ours is {:.1}x faster", ratio(base.wall, ours.wall)),
        );
        println!();
        bench_json("prune_steady_ms", ms(ours.wall), "ms", Some(ms(floor.wall)));
        bench_json(
            "prune_steady_unlisted_ms",
            ms(ours_unlisted.wall),
            "ms",
            Some(ms(floor.wall)),
        );
        bench_json("prune_steady_naive_ms", ms(base.wall), "ms", None);
        std::fs::remove_dir_all(&steady).expect("clean steady dir");
    }

    let threads = default_threads();
    let unprobed = pruner.clone().probe_locks(false);
    if run("delete") {
        // The lock probe's cost is measured here, against the same pass without it.
        let variants = [
            Variant::new(format!("default, {threads} thr"), &pruner, threads),
            Variant::new(format!("no lock probe, {threads} thr"), &unprobed, threads),
        ];
        let out = removal_section(
            &root.join("delete"),
            now,
            &pattern,
            &variants,
            &[FLOOR],
            DELETE_RUNS,
        );
        out.print(
            "delete: 99% past the maximum age, keep = 1,000",
            &variants,
            threads,
        );
        bench_json(
            "prune_delete_ms",
            ms(out.pruner[0].wall),
            "ms",
            Some(ms(out.floor_per_thread(threads))),
        );
        bench_json(
            "prune_delete_noprobe_ms",
            ms(out.pruner[1].wall),
            "ms",
            Some(ms(out.floor_per_thread(threads))),
        );
    }
    if run("cap") {
        // The cap differs from delete only in which pass removes: one variant.
        let variants = [Variant::new(
            format!("default, {threads} thr"),
            &pruner,
            threads,
        )];
        let out = removal_section(
            &root.join("cap"),
            now,
            &pattern,
            &variants,
            &[FLOOR],
            DELETE_RUNS,
        );
        out.print(
            "cap: all recent, 99% over the cap, keep = 1,000",
            &variants,
            threads,
        );
        bench_json(
            "prune_cap_ms",
            ms(out.pruner[0].wall),
            "ms",
            Some(ms(out.floor_per_thread(threads))),
        );
    }
    if run("threads") {
        // Whether the removal threads pay: the pass on 1, 2 and 4 threads, with and without
        // the probe, against the plain unlink of the same names on 1 thread (in inode order
        // and in listing order) and on 2 threads (contiguous halves of the inode order).
        let pruners: Vec<(usize, Pruner, Pruner)> = [1, 2, 4]
            .into_iter()
            .map(|t| (t, pruner.clone().threads(t), unprobed.clone().threads(t)))
            .collect();
        let mut variants = Vec::new();
        for (t, probed, unprobed) in &pruners {
            variants.push(Variant::new(format!("default, {t} thr"), probed, *t));
            variants.push(Variant::new(
                format!("no lock probe, {t} thr"),
                unprobed,
                *t,
            ));
        }
        let out = removal_section(
            &root.join("threads"),
            now,
            &pattern,
            &variants,
            &[
                FLOOR,
                Floor {
                    threads: 1,
                    by_inode: false,
                },
                Floor {
                    threads: 2,
                    by_inode: true,
                },
            ],
            THREADS_RUNS,
        );
        out.print(
            "threads: delete 99% past the maximum age on 1, 2 and 4 threads",
            &variants,
            threads,
        );
    }

    // Scan: locating the timestamp only, names in memory.
    if run("scan") {
        let names = names(now, 0);
        let strategy = FilenameTimestamp::new(FORMAT, MAX_AGE).expect("valid format");
        let ours = time_runs(STEADY_RUNS, || {
            let found = names
                .iter()
                .filter(|n| strategy.timestamp_in(n).is_some())
                .count();
            assert_eq!(black_box(found), FILES);
        });
        let base = time_runs(STEADY_RUNS, || {
            let found = names.iter().filter(|n| naive.find(n).is_some()).count();
            assert_eq!(black_box(found), FILES);
        });
        println!("scan: find the timestamp in {FILES} names in memory (median of {STEADY_RUNS}):");
        let per_name = |t: Timing| t.cpu.as_nanos() as f64 / FILES as f64;
        row(
            "compiled template",
            ours,
            &format!("({:.0} ns/name)", per_name(ours)),
        );
        row(
            "baseline: per-offset parse",
            base,
            &format!(
                "({:.0} ns/name) -> {:.0}x faster",
                per_name(base),
                ratio(base.cpu, ours.cpu)
            ),
        );
        bench_json(
            "prune_scan_ns_per_name",
            per_name(ours),
            "ns",
            Some(per_name(base)),
        );
    }

    println!("\nload average at end: {}", load_average());
    println!("total bench time: {:.0} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&root);
}

/// Appends one figure to `$BENCH_JSON`, if set.
fn bench_json(figure: &str, value: f64, unit: &str, baseline: Option<f64>) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let mut line = serde_json::json!({
        "bench": "filepruner-prune",
        "figure": figure,
        "value": value,
        "unit": unit,
    });
    // The key is there only when the figure has a same-run baseline.
    if let Some(baseline) = baseline {
        line["baseline"] = serde_json::json!(baseline);
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!(
            "cannot append to BENCH_JSON={}: {e}",
            path.to_string_lossy()
        );
    }
}

/// What `Pruner::threads` defaults to (the available parallelism, at most 4).
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

fn ratio(slow: Duration, fast: Duration) -> f64 {
    slow.as_secs_f64() / fast.as_secs_f64()
}

/// [`FILES`] Go-suite style names: the first `old` are two years old, the rest
/// recent (minutes apart).
fn names(now: Timestamp, old: usize) -> Vec<String> {
    (0..FILES)
        .map(|i| {
            let minutes = i64::try_from(i).expect("small");
            let age = if i < old {
                SignedDuration::from_hours(2 * 365 * 24) + SignedDuration::from_mins(minutes)
            } else {
                SignedDuration::from_mins(minutes)
            };
            format!(
                "consensus-upgrade-{}-v0.{i}.0.jsonl",
                (now - age).strftime(FORMAT)
            )
        })
        .collect()
}

/// Creates `dir` with the files of [`names`] (on two threads: creating them is
/// most of the bench's time, not what it measures); returns the names.
fn create(dir: &Path, now: Timestamp, old: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).expect("create bench dir");
    let names = names(now, old);
    std::thread::scope(|s| {
        for part in names.chunks(names.len().div_ceil(2)) {
            s.spawn(move || {
                for name in part {
                    std::fs::File::create(dir.join(name)).expect("create bench file");
                }
            });
        }
    });
    names
}

/// Wall-clock and process CPU time of one measurement.
///
/// The machine is shared: CPU time (user + system of this process, all its threads) is
/// printed beside wall time because it is not inflated by waiting for a core; the user /
/// system split and the minor page faults show where it went.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    wall: Duration,
    cpu: Duration,
    user: Duration,
    sys: Duration,
    faults: u64,
}

/// This process's (user, system) CPU time and minor page faults so far.
fn usage() -> (Duration, Duration, u64) {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `getrusage` writes a whole `rusage` to the valid pointer it is given;
    // RUSAGE_SELF cannot fail (EINVAL is only for an unknown `who`).
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_usec).unwrap_or(0) * 1_000,
        )
    };
    (
        time(usage.ru_utime),
        time(usage.ru_stime),
        u64::try_from(usage.ru_minflt).unwrap_or(0),
    )
}

fn measure(f: impl FnOnce()) -> Timing {
    let (wall, cpu, (user, sys, faults)) = (Instant::now(), cpu_now(), usage());
    f();
    let (cpu, (user2, sys2, faults2)) = (cpu_now() - cpu, usage());
    Timing {
        wall: wall.elapsed(),
        cpu,
        user: user2 - user,
        sys: sys2 - sys,
        faults: faults2 - faults,
    }
}

fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The median of `runs` timings of `f`, after one warm-up run.
fn time_runs(runs: usize, mut f: impl FnMut()) -> Timing {
    f(); // warm-up: page cache, allocator
    median((0..runs).map(|_| measure(&mut f)).collect())
}

/// The median of each column of `times`, separately.
fn median(times: Vec<Timing>) -> Timing {
    fn mid<T: Ord + Copy>(mut v: Vec<T>) -> T {
        v.sort_unstable();
        v[v.len() / 2]
    }
    Timing {
        wall: mid(times.iter().map(|t| t.wall).collect()),
        cpu: mid(times.iter().map(|t| t.cpu).collect()),
        user: mid(times.iter().map(|t| t.user).collect()),
        sys: mid(times.iter().map(|t| t.sys).collect()),
        faults: mid(times.iter().map(|t| t.faults).collect()),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn row(label: &str, t: Timing, note: &str) {
    println!(
        "    {label:<30} {:>8.1} ms wall {:>8.1} ms cpu ({:>6.1} user {:>7.1} sys, {:>5} faults)  {note}",
        ms(t.wall),
        ms(t.cpu),
        ms(t.user),
        ms(t.sys),
        t.faults
    );
}

/// The file system type of `path`, to show the data is not on tmpfs.
fn fs_kind(path: &Path) -> &'static str {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const EXT4_MAGIC: i64 = 0xEF53;
    const XFS_MAGIC: i64 = 0x5846_5342;
    const BTRFS_MAGIC: i64 = 0x9123_683E;
    match rustix::fs::statfs(path).map(|s| s.f_type) {
        Ok(TMPFS_MAGIC) => "tmpfs — NOT a real disk",
        Ok(EXT4_MAGIC) => "ext4",
        Ok(XFS_MAGIC) => "xfs",
        Ok(BTRFS_MAGIC) => "btrfs",
        Ok(_) => "other file system",
        Err(_) => "unknown file system",
    }
}

// ===== removal sections =====

/// One pruner configuration timed in a removal section.
struct Variant<'p> {
    label: String,
    pruner: &'p Pruner,
    /// The removal threads it is configured with.
    threads: usize,
}

impl<'p> Variant<'p> {
    fn new(label: String, pruner: &'p Pruner, threads: usize) -> Variant<'p> {
        Variant {
            label,
            pruner,
            threads,
        }
    }
}

/// A plain-unlink floor: on how many threads (contiguous chunks), in which order.
#[derive(Debug, Clone, Copy)]
struct Floor {
    threads: usize,
    /// Inode-number order (as the pruner unlinks) rather than the listing's.
    by_inode: bool,
}

/// The same removals as the pruner's: one thread, inode order.
const FLOOR: Floor = Floor {
    threads: 1,
    by_inode: true,
};

/// The medians of a removal section: one per pruner variant, one per floor.
struct Removals {
    rounds: usize,
    pruner: Vec<Timing>,
    /// The plain `unlinkat` floors: their configuration and timing.
    floors: Vec<(Floor, Timing)>,
}

impl Removals {
    /// The one-thread unlink floor divided by `threads`.
    fn floor_per_thread(&self, threads: usize) -> Duration {
        self.floors[0].1.wall / u32::try_from(threads).expect("few threads")
    }

    fn print(&self, title: &str, variants: &[Variant<'_>], threads: usize) {
        let removed = (FILES - KEEP) as f64;
        let per_removal = |d: Duration| d.as_secs_f64() * 1e6 / removed;
        let note = |t: Timing| {
            format!(
                "({:.1} us wall, {:.1} us cpu per removal)",
                per_removal(t.wall),
                per_removal(t.cpu)
            )
        };
        println!("{title} (median of {}, interleaved):", self.rounds);
        for (variant, t) in variants.iter().zip(&self.pruner) {
            row(
                &format!("pruner, {}", variant.label),
                *t,
                &format!(
                    "{} -> {:.2}x floor / {}",
                    note(*t),
                    ratio(t.wall, self.floor_per_thread(variant.threads)),
                    variant.threads
                ),
            );
        }
        for (floor, t) in &self.floors {
            let order = if floor.by_inode { "inode" } else { "listing" };
            row(
                &format!("floor: unlinkat, {order}, {} thr", floor.threads),
                *t,
                &note(*t),
            );
        }
        println!(
            "    (the figures' baseline: the 1-thread floor / {threads} = {:.1} ms)\n",
            ms(self.floor_per_thread(threads))
        );
    }
}

/// Times each variant, then each plain-unlink floor, on freshly created files (99% to
/// remove: past the maximum age when `dir` ends in `delete` or `threads`, over the cap
/// otherwise), in `rounds` interleaved rounds; returns the medians.
fn removal_section(
    dir: &Path,
    now: Timestamp,
    pattern: &Pattern,
    variants: &[Variant<'_>],
    floor_kinds: &[Floor],
    rounds: usize,
) -> Removals {
    let over_cap = dir.ends_with("cap");
    let old = if over_cap { 0 } else { FILES - KEEP };
    let mut timings: Vec<Vec<Timing>> = vec![Vec::new(); variants.len()];
    let mut floors: Vec<Vec<Timing>> = vec![Vec::new(); floor_kinds.len()];
    for _ in 0..rounds {
        for (variant, timings) in variants.iter().zip(timings.iter_mut()) {
            create(dir, now, old);
            timings.push(measure(|| {
                let report = variant
                    .pruner
                    .prune_at(dir, pattern, KEEP, now)
                    .expect("prune");
                assert_eq!(
                    (report.removed.len(), report.kept.len()),
                    (FILES - KEEP, KEEP)
                );
                assert!(report.is_success());
            }));
            std::fs::remove_dir_all(dir).expect("clean");
        }
        // The floors: the same names, unlinked and nothing else.
        for (floor, floors) in floor_kinds.iter().zip(floors.iter_mut()) {
            let names = create(dir, now, old);
            let doomed: HashSet<&[u8]> = if over_cap {
                names[KEEP..].iter().map(|n| n.as_bytes()).collect()
            } else {
                names[..old].iter().map(|n| n.as_bytes()).collect()
            };
            let mut listed: Vec<(u64, OsString)> = std::fs::read_dir(dir)
                .expect("read dir")
                .map(|e| {
                    let e = e.expect("entry");
                    (e.ino(), e.file_name())
                })
                .filter(|(_, n)| doomed.contains(n.as_bytes()))
                .collect();
            if floor.by_inode {
                listed.sort_by_key(|(ino, _)| *ino);
            }
            let n = floor.threads;
            let fd = rustix::fs::open(
                dir,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .expect("open dir");
            floors.push(measure(|| {
                std::thread::scope(|s| {
                    for part in listed.chunks(listed.len().div_ceil(n)) {
                        let fd = &fd;
                        s.spawn(move || {
                            for (_, name) in part {
                                rustix::fs::unlinkat(
                                    fd,
                                    name.as_os_str(),
                                    rustix::fs::AtFlags::empty(),
                                )
                                .expect("unlink");
                            }
                        });
                    }
                });
            }));
            drop(fd);
            std::fs::remove_dir_all(dir).expect("clean");
        }
    }
    Removals {
        rounds,
        pruner: timings.into_iter().map(median).collect(),
        floors: floor_kinds
            .iter()
            .copied()
            .zip(floors.into_iter().map(median))
            .collect(),
    }
}

/// Lists `dir` and nothing else, the way the pruner lists: open, then `getdents64` into
/// a 64 KiB buffer, names borrowed from it. Returns the number of entries but `.` and `..`.
fn list_raw(dir: &Path) -> usize {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .expect("open dir");
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut entries = rustix::fs::RawDir::new(&fd, buf.spare_capacity_mut());
    let mut count = 0;
    while let Some(entry) = entries.next() {
        let entry = entry.expect("list dir");
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            black_box(name);
            count += 1;
        }
    }
    count
}

// ===== the baseline =====

/// A pruner written as the Go daemonkit works: list the directory, match the
/// glob, and for each name try a full strftime parse of every window of the
/// timestamp's width, at every offset; sort by name; remove by path.
struct Naive<'p> {
    format: &'static str,
    width: usize,
    max_age: SignedDuration,
    pattern: &'p Pattern,
}

impl<'p> Naive<'p> {
    fn new(format: &'static str, max_age: Duration, pattern: &'p Pattern) -> Naive<'p> {
        // Go slices `len(layout)` bytes; the strftime analogue is the width of
        // a formatted timestamp.
        let width = Timestamp::UNIX_EPOCH.strftime(format).to_string().len();
        Naive {
            format,
            width,
            max_age: SignedDuration::try_from(max_age).expect("in range"),
            pattern,
        }
    }

    fn find(&self, name: &str) -> Option<Timestamp> {
        (0..=name.len().checked_sub(self.width)?).find_map(|at| {
            let window = name.get(at..at + self.width)?;
            let tm = jiff::fmt::strtime::parse(self.format, window).ok()?;
            Offset::UTC.to_timestamp(tm.to_datetime().ok()?).ok()
        })
    }

    /// Returns (removed, kept).
    fn prune(&self, dir: &Path, keep: usize, now: Timestamp, remove: bool) -> (usize, usize) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read bench dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| self.pattern.is_match(n))
            .collect();
        names.sort();
        let mut removed = 0;
        let mut eligible = Vec::new();
        for name in names {
            match self.find(&name) {
                Some(stamp) if now.duration_since(stamp) > self.max_age => {
                    if remove {
                        std::fs::remove_file(dir.join(&name)).expect("remove");
                    }
                    removed += 1;
                }
                Some(_) => eligible.push(name),
                None => {}
            }
        }
        if eligible.len() > keep {
            let excess = eligible.len() - keep;
            for name in eligible.drain(..excess) {
                if remove {
                    std::fs::remove_file(dir.join(&name)).expect("remove");
                }
                removed += 1;
            }
        }
        (removed, eligible.len())
    }
}
