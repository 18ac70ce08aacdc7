//! gitseal-agent: keeps a cluster equal to a git repository, SealedSecrets included.

pub mod crd;
pub mod apply;
pub mod counting;
pub mod object;
pub mod render;
pub mod decrypt;
