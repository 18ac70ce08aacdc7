//! Real git servers on loopback for integration tests, started by the test itself and
//! stopped on drop: repositories built with the git CLI ([`TestRepo`]), `git daemon`
//! ([`GitDaemon`]), smart HTTP through `git http-backend` with optional basic/bearer auth
//! ([`HttpGitServer`]) and `sshd` with generated keys ([`SshGitServer`]).
//!
//! Independent of Kubernetes: use it from any test file with `mod support;`.
//! Everything is synchronous (std processes and threads), so it works from plain `#[test]`s
//! and from any tokio runtime alike.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

mod daemon;
mod http;
mod proc;
mod repo;
mod ssh;

pub use daemon::GitDaemon;
pub use http::{HttpAuth, HttpGitServer, SeenRequest};
pub use proc::{free_port, wait_port};
pub use repo::{TestRepo, git};
pub use ssh::SshGitServer;
