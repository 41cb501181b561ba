//! Storage of auth-svc: sea-orm entities, migrations and the queries the service needs.
//!
//! No business rules live here: hashing, token rules and policies are in `auth-svc`. One code
//! path serves SQLite (the embedded default), PostgreSQL and MySQL/MariaDB.

pub mod connect;
pub mod entity;
pub mod error;
pub mod migration;
pub mod query;
pub mod username;

pub use connect::{PoolOptions, QueryCounter, connect};
pub use error::StoreError;
pub use sea_orm::DatabaseConnection;
