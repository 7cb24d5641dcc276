//! `pagerd demo` (filled in below).
/// Runs the demo.
pub async fn run(_speed: u32) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
