//! A GitSync pass, step by step: [`git`] fetches the source, [`render`] turns a folder into
//! [`object`]s, [`open`] opens SealedSecrets in memory, [`apply`] applies with server-side
//! apply (re-applying only what [`drift`] says changed), [`prune`] deletes what left git, and
//! [`pass`] runs them in that order; [`tenancy`] decides who a pass acts as and what it may
//! write. [`inventory`] keeps what `gitseal-agent sync` applied.

pub mod apply;
pub mod drift;
pub mod git;
pub mod inventory;
pub mod object;
pub mod open;
pub mod pass;
pub mod prune;
pub mod render;
pub mod tenancy;
