//! Placeholder until the generator lands.
pub struct SeedOptions {
    pub scale: f64,
    pub seed: u64,
}
pub async fn run(_pool: &sqlx::PgPool, _opts: &SeedOptions) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
