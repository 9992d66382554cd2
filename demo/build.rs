//! Rebuilds when a migration changes: `sqlx::migrate!` embeds `migrations/` at compile time,
//! and cargo does not otherwise notice edits there.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
