//! What the agent's integration tests share (use it from a test file with `mod support;`):
//!
//! - real git servers on loopback, started by the test itself and stopped on drop:
//!   repositories built with the git CLI ([`TestRepo`]), `git daemon` ([`GitDaemon`]), smart
//!   HTTP through `git http-backend` with optional basic/bearer auth ([`HttpGitServer`]) and
//!   `sshd` with generated keys ([`SshGitServer`]). Independent of Kubernetes and synchronous
//!   (std processes and threads), so they work from plain `#[test]`s and any tokio runtime;
//! - for end-to-end tests against the real control plane ([`cluster`]): this package's agent
//!   as a process, the CRDs, waiting, HTTP GET and a hand-installed sealing key;
//! - SealedSecrets sealed by the test ([`sealed_yaml`]), passes run in the test process
//!   ([`apps_spec`]) and rendered manifests installed as a user would ([`apply_as_install`]).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code, unused_imports)]

mod cluster;
mod daemon;
mod http;
mod install;
mod pass;
mod proc;
mod repo;
mod sealing;
mod ssh;

pub use cluster::{
    AgentProcess, AgentSetup, AgentTest, add_sealing_key, agent_binary, apply_gitsync,
    configmaps_yaml, events_v1_json, file_gitsync_spec, http_get, labelled_names,
    managed_configmaps, ready_condition, signal, wait_agent_ready, wait_for, wait_ready,
};
pub use daemon::GitDaemon;
pub use http::{HttpAuth, HttpGitServer, SeenRequest};
pub use install::apply_as_install;
pub use pass::apps_spec;
pub use proc::{free_port, wait_port};
pub use repo::{TestRepo, git};
pub use sealing::{password_secret, sealed_yaml};
pub use ssh::SshGitServer;
