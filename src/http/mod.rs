//! Plain HTTP: health, operations endpoints, and the per-request auth/tenant middleware.

pub mod drain;
pub mod health;
pub mod host;
pub mod oauth;
pub mod ops;
pub mod origin;
pub mod proxy;
pub mod tenant;
