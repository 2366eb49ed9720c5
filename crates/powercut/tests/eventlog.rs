//! daemonkit-eventlog under power cuts: no acknowledged event is ever lost.

use powercut::scenario::{
    EventLogRun, FreshLogRun, LogKind, OperationLogRun, RotationStepRun, base_seed,
};

const WRITER: &str = env!("CARGO_BIN_EXE_powercut-writer");

/// Cuts per run: `POWERCUT_CUTS` if set (for a longer local run), else the CI's 200.
fn cuts(default: u64) -> u64 {
    std::env::var("POWERCUT_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn append_log_with_16_writers_loses_no_acknowledged_event_across_200_cuts() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = EventLogRun {
        writer: WRITER.into(),
        log: LogKind::Append,
        writers: 16,
        events: 8,
        cuts: cuts(200),
        cuts_per_disk: 25,
        seed: base_seed(0xe7e7_1090),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.cuts >= cuts(200));
    // The cuts fell while events were in flight, not only before or after the writers ran.
    assert!(
        summary.acked > 0 && summary.file_ops_dropped > 0,
        "{summary}"
    );
    assert!(summary.losses.is_empty(), "{summary}");
}

#[test]
fn a_new_log_in_a_new_directory_survives_a_cut_at_every_step() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = FreshLogRun {
        writer: WRITER.into(),
        events: 2,
        seeds_per_step: 8,
        seed: base_seed(0xf2e5_0001),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.acked > 0, "{summary}");
    assert!(summary.losses.is_empty(), "{summary}");
}

/// Regression: before daemonkit-eventlog synced the ancestors of the log's directory, this crash
/// state, cut after the first event's `fdatasync` (acknowledged), lost the directories
/// `create_dir_all` had just made, and the acknowledged event with them.
#[test]
fn regression_acknowledged_event_lost_with_its_unsynced_parent_directories() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = FreshLogRun {
        writer: WRITER.into(),
        events: 2,
        seeds_per_step: 1,
        seed: 0,
    }
    .replay(work.path(), 0x8dea_8b4d_3053_5a61)
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.acked > 0, "{summary}");
    assert!(summary.losses.is_empty(), "{summary}");
}

#[test]
fn a_per_operation_log_never_mixes_an_earlier_run_with_this_one_at_any_cut() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = OperationLogRun {
        writer: WRITER.into(),
        events: 2,
        seeds_per_step: 6,
        seed: base_seed(0x0be7_0001),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(
        summary.acked > 0 && summary.file_ops_dropped > 0,
        "{summary}"
    );
    assert!(summary.losses.is_empty(), "{summary}");
}

#[test]
fn rotating_log_with_16_writers_loses_no_acknowledged_event_across_200_cuts() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = EventLogRun {
        writer: WRITER.into(),
        log: LogKind::Rotating,
        writers: 16,
        events: 8,
        cuts: cuts(200),
        cuts_per_disk: 25,
        seed: base_seed(0x2070_7a7e),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.cuts >= cuts(200));
    assert!(
        summary.acked > 0 && summary.file_ops_dropped > 0,
        "{summary}"
    );
    assert!(summary.losses.is_empty(), "{summary}");
}

#[test]
fn a_rotation_at_a_day_boundary_survives_a_cut_at_every_step() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = RotationStepRun {
        writer: WRITER.into(),
        events: 3,
        seeds_per_step: 6,
        seed: base_seed(0xda7e_0001),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.acked > 0, "{summary}");
    assert!(summary.losses.is_empty(), "{summary}");
}

/// Regression: before `RotatingLog::open` repaired the set's newest file when today's file was
/// another one, this crash state — day D's file torn by the cut in the middle of its last
/// batch, then the next start on a later day — left D's partial line under the newer files
/// forever: D's file no longer verified, and the next open reported no repair.
#[test]
fn regression_torn_tail_left_in_an_earlier_days_file_by_an_open_on_a_later_day() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = RotationStepRun {
        writer: WRITER.into(),
        events: 3,
        seeds_per_step: 1,
        seed: 0,
    }
    .replay(work.path(), 0x0b1d_4132_deb2_e85f)
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    assert!(summary.acked > 0, "{summary}");
    // The crash state tore day D's file, and the next open cut the torn line and saved it.
    assert!(
        summary.torn_writes > 0 && summary.repairs_verified > 0,
        "{summary}"
    );
    assert!(summary.losses.is_empty(), "{summary}");
}
