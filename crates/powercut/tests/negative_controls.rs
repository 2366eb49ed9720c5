//! The harness can fail: writers that break the rules lose acknowledged data under some cuts,
//! and the tests assert that they do. The kit's own writers of the same shapes lose nothing
//! (`eventlog.rs`, `state_file.rs`).

use powercut::scenario::{Control, ControlRun, Summary, base_seed};

const WRITER: &str = env!("CARGO_BIN_EXE_powercut-writer");

fn run(control: Control, cuts: u64) -> Option<Summary> {
    powercut::skip_unless_fuse().is_none().then(|| {
        let work = tempfile::tempdir().unwrap();
        let summary = ControlRun {
            writer: WRITER.into(),
            control,
            writes: 6,
            cuts,
            seed: base_seed(0x5eed_0001 + control as u64),
        }
        .run(work.path())
        .unwrap();
        summary.report(Some("a negative control must lose data"));
        summary
    })
}

#[test]
fn acknowledging_before_fdatasync_loses_events() {
    let Some(s) = run(Control::AckBeforeSync, 60) else {
        return;
    };
    assert!(
        !s.losses.is_empty(),
        "the harness missed a lost acknowledged line: {s}"
    );
    assert!(s.losses.iter().all(|l| l.problem.contains("lost")), "{s}");
}

#[test]
fn skipping_the_directory_fsync_loses_the_file() {
    let Some(s) = run(Control::NoDirSync, 60) else {
        return;
    };
    assert!(!s.losses.is_empty(), "the harness missed a lost file: {s}");
}

#[test]
fn renaming_an_unsynced_temp_file_leaves_neither_old_nor_new() {
    let Some(s) = run(Control::RenameWithoutSync, 60) else {
        return;
    };
    assert!(
        s.losses
            .iter()
            .any(|l| l.problem.contains("neither the old nor the new")),
        "the harness missed a torn state file: {s}"
    );
}
