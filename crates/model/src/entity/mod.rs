//! Table definitions. Timestamps of users and service clients are UTC `DATETIME`s; token times
//! are Unix seconds because they are copied into JWT claims (`iat`, `exp`) and must round-trip
//! exactly.

pub mod refresh_tokens;
pub mod service_clients;
pub mod users;
