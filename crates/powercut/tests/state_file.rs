//! The kit's durable state file under power cuts: always exactly the old or the new content,
//! never missing, never a mix — where the same protocol less the temporary file's `fsync`
//! (`negative_controls.rs`, `renaming_an_unsynced_temp_file_leaves_neither_old_nor_new`)
//! leaves torn and empty state files.

use powercut::scenario::{StateFileRun, base_seed};

const WRITER: &str = env!("CARGO_BIN_EXE_powercut-writer");

/// Cuts per run: `POWERCUT_CUTS` if set (for a longer local run), else the CI's 200.
fn cuts() -> u64 {
    std::env::var("POWERCUT_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn state_file_run(seed: u64) -> StateFileRun {
    StateFileRun {
        writer: WRITER.into(),
        generations: 4,
        cuts: cuts(),
        cuts_per_disk: 10,
        seed: base_seed(seed),
    }
}

#[test]
fn the_state_file_is_always_old_or_new_across_200_cuts() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let s = state_file_run(0x57a7_e001).run(work.path()).unwrap();
    s.report(None);
    assert_eq!(s.cuts, cuts());
    assert!(
        s.acked > 0,
        "the writer never got through a generation: {s}"
    );
    // The cuts must have had something to lose: unsynced renames and temp-file writes dropped.
    assert!(s.dir_ops_dropped > 0 && s.file_ops_dropped > 0, "{s}");
    assert!(s.losses.is_empty(), "{s}");
}

#[test]
fn the_state_file_survives_a_cut_after_every_step_of_a_replacement() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let s = state_file_run(0x57a7_e002)
        .run_every_step(work.path(), 8)
        .unwrap();
    s.report(None);
    assert!(s.cuts >= 8 * 6, "fewer steps than a replacement takes: {s}");
    assert!(s.losses.is_empty(), "{s}");
}
