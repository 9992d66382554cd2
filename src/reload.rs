//! Live reload of the configuration file: on SIGHUP, and when the file's content changes
//! (checked every 100 ms; a change counts once two reads agree). A reload is all or nothing: the file is parsed and checked, the
//! databases it adds or changes are built and get the start-up checks, and only then are
//! the databases and the settings swapped in. Calls in flight keep the database and settings
//! they already read; calls that start later use the new ones. A refused reload keeps the
//! running configuration and reports its errors on `/health` (and in the log). Settings that
//! cannot change live (`config_file::LIVE_SETTINGS` lists those that can) keep their old
//! value and are reported as needing a restart.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config_file::{self, LIVE_SETTINGS};
use crate::db::Database;
use crate::error::ErrorCode;
use crate::state::AppState;

/// Where the configuration comes from: the file, and the command line it was started with.
pub struct Source {
    pub file: PathBuf,
    /// Program name first, then the flags (they override the file at every reload).
    pub argv: Vec<OsString>,
}

/// Watches `source` until `shutdown`, reloading `state` from it. `effective` is what the
/// running configuration was resolved to (`config_file::Loaded::effective`).
pub fn spawn(
    state: Arc<AppState>,
    source: Source,
    mut effective: BTreeMap<String, String>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut last = std::fs::read(&source.file).ok();
        let mut pending: Option<Option<Vec<u8>>> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let signalled = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let signalled = std::future::pending::<bool>();
            let forced = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => false,
                got = signalled => got,
            };
            let now = std::fs::read(&source.file).ok();
            if !forced && now == last {
                pending = None;
                continue;
            }
            // A change is applied once it reads the same twice in a row: an editor's or a
            // tool's write in progress is not taken for the new file.
            if !forced && pending.as_ref() != Some(&now) {
                pending = Some(now);
                continue;
            }
            pending = None;
            last = now;
            reload(&state, &source, &mut effective).await;
        }
    })
}

/// One reload, its outcome recorded in `state.config_status` and the log.
pub async fn reload(state: &AppState, source: &Source, effective: &mut BTreeMap<String, String>) {
    let started = std::time::Instant::now();
    let outcome = apply(state, source, effective).await;
    let took_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok((applied, restart_required)) => {
            let mut status = state.config_status.lock().expect("lock");
            status.generation += 1;
            status.loaded_at = chrono::Utc::now();
            status.last_error = None;
            status.last_error_at = None;
            status.restart_required = restart_required.clone();
            status.record_metrics();
            tracing::info!(generation = status.generation, took_ms, applied = ?applied, restart_required = ?restart_required, "configuration reloaded");
        }
        Err(errors) => {
            let mut status = state.config_status.lock().expect("lock");
            status.last_error = Some(errors.clone());
            status.last_error_at = Some(chrono::Utc::now());
            status.record_metrics();
            metrics::counter!("pgmcp_config_reload_failures_total").increment(1);
            tracing::error!(generation = status.generation, took_ms, errors = ?errors, file = %source.file.display(), "configuration reload refused; the running configuration stays");
        }
    }
}

/// Resolves, checks and swaps in the file's configuration: the live settings it changed,
/// and those that need a restart.
async fn apply(
    state: &AppState,
    source: &Source,
    effective: &mut BTreeMap<String, String>,
) -> Result<(Vec<String>, Vec<String>), Vec<String>> {
    let mut file = config_file::read(&source.file)?;
    let first = config_file::resolve(&source.argv, &file)?;
    let changed = config_file::changed(effective, &first.effective);
    let (live, restart): (Vec<String>, Vec<String>) = changed
        .into_iter()
        .partition(|name| LIVE_SETTINGS.contains(&name.as_str()));
    // The settings that need a restart keep their running values (only the file can have
    // changed them: the environment and the flags are the process's).
    for name in &restart {
        match effective.get(name) {
            Some(old) => file.insert(name.clone(), old.clone()),
            None => file.remove(name),
        };
    }
    let loaded = config_file::resolve(&source.argv, &file)?;
    let databases = prepare_databases(state, &loaded.config).await?;
    for db in databases.added {
        state.schemas.insert(db.clone());
        if let Some(old) = state.databases.put(db) {
            Database::close_later(old);
        }
    }
    for name in databases.removed {
        if let Ok(old) = state.databases.remove(&name) {
            state.schemas.remove(&name);
            Database::close_later(old);
        }
    }
    state.swap_config(loaded.config);
    *effective = loaded.effective;
    Ok((live, restart))
}

/// What a reload changes in the set of databases.
struct DatabaseChanges {
    /// New, or replacing the one of the same name (built and checked).
    added: Vec<Arc<Database>>,
    /// Configured before, not in the file now.
    removed: Vec<String>,
}

/// Builds and checks the databases `config` adds or changes (as at start-up: a role that
/// skips RLS refuses the reload; one that is down is only logged), and names those it drops.
/// Databases added at runtime stay; the default one cannot be dropped by a reload.
async fn prepare_databases(
    state: &AppState,
    config: &crate::config::Config,
) -> Result<DatabaseChanges, Vec<String>> {
    let targets = config.database_targets().map_err(|e| vec![e.message])?;
    let current = state.databases.all();
    let default = state.databases.default_name().to_string();
    if !targets.iter().any(|t| t.name == default) {
        return Err(vec![format!(
            "the default database {default:?} must stay configured (changing the default needs a restart)"
        )]);
    }
    let mut added = Vec::new();
    let mut errors = Vec::new();
    for target in &targets {
        if current
            .iter()
            .any(|db| !db.runtime && db.is(target, config.pool_size))
        {
            continue;
        }
        let db = match Database::connect_lazy(target, config) {
            Ok(db) => Arc::new(db),
            Err(e) => {
                errors.push(e.message);
                continue;
            }
        };
        match state.check_database(&db).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::Forbidden => {
                errors.push(e.message);
                Database::close_later(db);
                continue;
            }
            Err(e) => {
                tracing::warn!(database = %db.name, error = %e, "reloaded database not reachable yet");
            }
        }
        added.push(db);
    }
    if !errors.is_empty() {
        for db in added {
            Database::close_later(db);
        }
        return Err(errors);
    }
    let removed = current
        .iter()
        .filter(|db| !db.runtime && !targets.iter().any(|t| t.name == db.name))
        .map(|db| db.name.clone())
        .collect();
    Ok(DatabaseChanges { added, removed })
}
