//! `chatbridge::trim::give_back` returns freed memory between live blocks to the system (what a burst of rooms
//! joined or handed over leaves behind). A test binary of its own: no other test allocates while RSS is read.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn freed_memory_between_live_blocks_goes_back_to_the_system() {
    fn rss_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse().ok()).expect("a figure")
    }
    // 64 MiB in 4 KiB blocks, written so they are resident; every sixteenth is kept, so what is freed lies between
    // live blocks and the heap cannot simply shrink from its top.
    let blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![i as u8 | 1; 4096]).collect();
    let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(16).collect();
    let before = rss_kb();
    assert!(chatbridge::trim::give_back());
    let after = rss_kb();
    assert!(
        before.saturating_sub(after) >= 32 * 1024,
        "resident {before} KB before, {after} KB after: less than 32 MiB of the 60 freed went back"
    );
    assert_eq!(kept.len(), 1024);
    assert!(kept.iter().all(|b| b[0] & 1 == 1), "the kept blocks are intact");
}
