//! Per-tenant rate limit on tool calls (`governor`'s keyed GCRA limiter): a burst from one
//! tenant is refused with RATE_LIMIT_EXCEEDED while other tenants are unaffected.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{AppError, ErrorCode, Result};

pub struct TenantRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    per_minute: u32,
}

impl TenantRateLimiter {
    /// `per_minute == 0` disables limiting.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst.max(1)).expect("nonzero");
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            limiter,
            per_minute,
        }
    }

    pub fn check(&self, tenant: &str) -> Result<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&tenant.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            AppError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "rate limit of {} tool calls per minute for this tenant exceeded; retry in {} ms",
                    self.per_minute,
                    wait.max(Duration::from_millis(1)).as_millis()
                ),
            )
            .with_details(serde_json::json!({ "retry_after_ms": wait.as_millis() as u64 }))
        })?;
        // Keep the key map small: forget tenants that are back to a full bucket.
        if limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        Ok(())
    }
}
