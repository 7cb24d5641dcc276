//! The benchmark runs (at a tiny size): a smoke test, not a timed one. It
//! fails only on lost or duplicated pages, a missing escalation or a phase
//! that breaks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerd_bench_smoke_runs_clean() {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pagerd-bench"))
            .args(["--smoke", "--pagerd", env!("CARGO_BIN_EXE_pagerd")])
            .output()
            .expect("run pagerd-bench")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("lost") && text.contains("duplicated"),
        "{text}"
    );
}
