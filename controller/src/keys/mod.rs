//! The agent's sealing keys as the controllers see them: the always-current [`store`] and the
//! record of which key each SealedSecret needs ([`usage`]).

pub mod store;
pub mod usage;

pub use store::{KeyStore, Snapshot};
pub use usage::{KeyUsage, Use};
