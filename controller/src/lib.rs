//! gitseal-agent: keeps a cluster equal to a git repository, SealedSecrets included.
//!
//! - [`commands`]: the subcommands (`run`, `sync`, `crds`), flags in [`args`];
//! - [`controllers`]: one per kind of object the agent answers;
//! - [`sync`]: one GitSync pass (fetch, render, open, apply, prune);
//! - [`keys`]: the sealing keys as the controllers see them, and their usage;
//! - [`serve`]: HTTP endpoints, metrics, API request counters, Events;
//! - [`leader`]: leader election on a Lease (only the leader runs the controllers).
//!
//! The custom resources and well-known names are in the `gitseal-api` crate, shared with the
//! CLI. See docs/ARCHITECTURE.md.

pub mod args;
pub mod commands;
pub mod controllers;
pub mod keys;
pub mod kube_error;
pub mod leader;
pub mod serve;
pub mod sync;

/// This agent's version (its crate's), as it reports it: the User-Agent, `gitseal_build_info`
/// and the `gitseal.dev/agent-version` annotation on the public-keys ConfigMap.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
