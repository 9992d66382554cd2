//! Fair share of the pool: a cap on the calls one tenant runs at once, per database.
//!
//! The rate limiter counts calls per minute, so a dozen long queries pass it and can hold every
//! pooled connection. Here each (database, tenant) gets a semaphore of
//! `PG_MCP_TENANT_MAX_CONCURRENT_CALLS` slots (default: a quarter of the pool). A call waits
//! up to `PG_MCP_TENANT_QUEUE_TIMEOUT_MS` for one of its own tenant's slots, then gets
//! TENANT_BUSY; other tenants never wait behind it. Head office and admins are tenants here
//! like any other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, ErrorCode, Result};

pub struct TenantSlots {
    per_tenant: u32,
    wait: Duration,
    slots: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
}

/// Forget idle tenants once the map holds this many.
const PRUNE_AT: usize = 4096;

impl TenantSlots {
    pub fn new(per_tenant: u32, wait: Duration) -> Self {
        Self {
            per_tenant: per_tenant.max(1),
            wait,
            slots: Mutex::new(HashMap::new()),
        }
    }

    pub fn per_tenant(&self) -> u32 {
        self.per_tenant
    }

    fn semaphore(&self, database: &str, tenant: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().expect("tenant slots lock");
        if slots.len() >= PRUNE_AT {
            let full = self.per_tenant as usize;
            slots.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < full);
        }
        slots
            .entry((database.to_string(), tenant.to_string()))
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant as usize)))
            .clone()
    }

    /// A slot for one call, held until the permit drops; TENANT_BUSY when none frees in time.
    pub async fn acquire(&self, database: &str, tenant: &str) -> Result<OwnedSemaphorePermit> {
        let semaphore = self.semaphore(database, tenant);
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let started = Instant::now();
        metrics::gauge!("pgmcp_tenant_calls_waiting").increment(1.0);
        let waited = tokio::time::timeout(self.wait, semaphore.acquire_owned()).await;
        metrics::gauge!("pgmcp_tenant_calls_waiting").decrement(1.0);
        metrics::histogram!("pgmcp_tenant_slot_wait_seconds")
            .record(started.elapsed().as_secs_f64());
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                metrics::counter!("pgmcp_tenant_calls_refused_total", "reason" => "concurrency")
                    .increment(1);
                Err(AppError::new(
                    ErrorCode::TenantBusy,
                    format!(
                        "this tenant already has {n} calls running on database {database:?} (the limit per tenant); waited {ms} ms for one to finish. Retry when they are done",
                        n = self.per_tenant,
                        ms = self.wait.as_millis()
                    ),
                )
                .with_details(serde_json::json!({
                    "max_concurrent_calls": self.per_tenant,
                    "waited_ms": self.wait.as_millis() as u64,
                })))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "tenant-a";
    const B: &str = "tenant-b";

    #[tokio::test]
    async fn a_busy_tenant_waits_then_is_refused_while_others_pass() {
        let slots = TenantSlots::new(2, Duration::from_millis(50));
        let _a1 = slots.acquire("db", A).await.unwrap();
        let _a2 = slots.acquire("db", A).await.unwrap();
        let started = Instant::now();
        let refused = slots.acquire("db", A).await.unwrap_err();
        assert_eq!(refused.code, ErrorCode::TenantBusy);
        assert!(started.elapsed() >= Duration::from_millis(45));
        // Another tenant, and the same tenant on another database, are not affected.
        let _b = slots.acquire("db", B).await.unwrap();
        let _a_other = slots.acquire("other", A).await.unwrap();
    }

    #[tokio::test]
    async fn a_waiting_call_gets_the_slot_that_frees() {
        let slots = Arc::new(TenantSlots::new(1, Duration::from_secs(5)));
        let first = slots.acquire("db", A).await.unwrap();
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire("db", A).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
