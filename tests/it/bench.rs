//! The benchmark runs (at a tiny size): a smoke test, not a timed one. It
//! fails only on lost or duplicated pages, a missing escalation or a phase
//! that breaks. With `PAGERD_TEST_POSTGRES_URL` set, its postgres phase
//! (latency, burst and one failover on PostgreSQL) runs too, in schemas of
//! its own in that database.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerd_bench_smoke_runs_clean() {
    let out = tokio::task::spawn_blocking(|| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pagerd-bench"));
        cmd.args(["--smoke", "--pagerd", env!("CARGO_BIN_EXE_pagerd")])
            .env_remove("PAGERD_BENCH_POSTGRES_URL");
        if let Ok(url) = std::env::var("PAGERD_TEST_POSTGRES_URL") {
            cmd.arg("--postgres-url").arg(url);
        }
        cmd.output().expect("run pagerd-bench")
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
