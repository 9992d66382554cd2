//! Plain HTTP: health and the per-request tenant middleware.

pub mod auth;
pub mod health;
pub mod tenant;
