//! Per-tenant limits every tool call passes: calls per minute (`rate`) and calls running at
//! once (`fair_share`). Below the tools layer, so the shared state can hold them.

pub mod fair_share;
pub mod rate;

pub use fair_share::TenantSlots;
pub use rate::TenantRateLimiter;
