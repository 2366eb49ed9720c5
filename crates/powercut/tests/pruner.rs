//! daemonkit-filepruner under power cuts: a cut pass never removes a file it should keep, and
//! unlinks the cut reverted do not confuse the next pass.

use powercut::scenario::{PrunerRun, base_seed};

#[test]
fn a_cut_pass_never_removes_a_kept_file_and_the_next_pass_finishes_the_job() {
    if powercut::skip_unless_fuse().is_some() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let summary = PrunerRun {
        writer: env!("CARGO_BIN_EXE_powercut-writer").into(),
        cuts: 40,
        seed: base_seed(0x9a0e_0001),
    }
    .run(work.path())
    .unwrap();
    summary.report(None);
    if !summary.losses.is_empty() {
        // Keep the scratch space: the evidence of the first losing cut is in it.
        let _ = work.keep();
    }
    // Some cuts reverted unlinks the pass had made, so the second pass met them again.
    assert!(summary.dir_ops_dropped > 0, "{summary}");
    assert!(summary.losses.is_empty(), "{summary}");
}
