//! gitseal-agent: keeps a cluster equal to a git repository, SealedSecrets included.

pub mod apply;
pub mod conditions;
pub mod counting;
pub mod crd;
pub mod decrypt;
pub mod git;
pub mod http;
pub mod inventory;
pub mod key_manager;
pub mod key_usage;
pub mod keys;
pub mod metrics;
pub mod object;
pub mod pass;
pub mod render;
pub mod reseal;
pub mod runner;
pub mod sealed;
