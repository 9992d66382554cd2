//! Database access: the pool registry, the tenant transaction, rows as JSON, catalogue queries.

pub mod catalog;
pub mod isolation;
pub mod registry;
pub mod rows;
pub mod tenant;

pub use registry::{Database, DatabaseRegistry};
pub use tenant::{AuthMethod, Tenant, TenantSigner, TxOptions};
