//! Database access: the pool registry, the tenant transaction, JSON parameters and rows,
//! catalogue queries, what the application role may see.

pub mod catalog;
pub mod context;
pub mod isolation;
pub mod migrations;
pub mod monitor;
pub mod params;
pub mod registry;
pub mod replica;
pub mod rows;
pub mod tenant;

pub use context::{ContextSpec, TenantContext, ValueType};
pub use registry::{Database, DatabaseRegistry};
pub use tenant::{
    AuthMethod, Tenant, TenantSigner, TxOptions, begin_tenant_tx, run_in_tenant_tx, with_tenant_tx,
};
