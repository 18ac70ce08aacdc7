//! `gitseal-agent` flags. Every flag is declared here, with clap enforcing conflicts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gitseal::manifest::ManifestLimits;

use crate::sync::git::GitRef;

#[derive(Debug, Parser)]
#[command(
    name = "gitseal-agent",
    version,
    about = "Keeps a cluster equal to a git repository, SealedSecrets included"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
    /// Least severe log level written. `GITSEAL_LOG` (a tracing filter such as
    /// `info,gitseal_agent::sync=debug`), when set, wins.
    #[arg(long, global = true, value_parser = ["error", "warn", "info", "debug", "trace"], default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch GitSync objects (keep each source applied) and SealedSecret objects (unseal each).
    Run(RunArgs),
    /// One source from flags: for bootstrap, CI and the quick start.
    Sync(SyncArgs),
    /// Print the CRDs (generated from the Rust types).
    Crds,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent's namespace: sealing keys live here.
    #[arg(long, env = "GITSEAL_NAMESPACE", default_value = "gitseal-system")]
    pub namespace: String,
    /// Address for /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address for /healthz and /readyz (may equal --metrics-addr).
    #[arg(long, default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Folder for git clones, reused between passes; private to the agent's user (created
    /// 0700; refused when another user owns it or may write to it). Default:
    /// `$XDG_CACHE_HOME/gitseal-agent`, else `~/.cache/gitseal-agent`.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Objects applied at once within a stage.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Only watch GitSyncs and SealedSecrets in this namespace (default: all namespaces).
    #[arg(long)]
    pub watch_namespace: Option<String>,
    /// SealedSecrets (and, each kind apart, ResealRequests and Receivers) reconciled at
    /// once; more wait in the queue. Bounds the memory a burst of new objects costs.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub reconcile_concurrency: u16,
    /// A new active sealing key when the newest is older than this; `0` = never.
    #[arg(long, default_value = "720h", value_parser = humantime::parse_duration)]
    pub key_renewal: Duration,
    /// An escrow key (age1…, an offline break-glass key) that every `gitseal reseal
    /// --cluster` answer is also sealed to; repeatable. Only the agent's configuration names
    /// escrow keys: a ResealRequest that names recipients is refused.
    #[arg(long = "escrow-recipient", value_name = "AGE1…")]
    pub escrow_recipients: Vec<String>,
    /// A file of escrow keys, one age1… per line (`#` comments); repeatable.
    #[arg(long = "escrow-recipients-file", value_name = "FILE")]
    pub escrow_recipient_files: Vec<PathBuf>,
    /// Allow GitSyncs with `file://` URLs and local paths. They read the agent's own file
    /// system (other sources' clones, its token), so only for tests and local quick starts.
    #[arg(long)]
    pub allow_local_sources: bool,
    /// Let kustomize fetch remote bases and resources (URLs) for GitSyncs that set
    /// `spec.allowRemoteBases: true`. Off: remote references are refused before rendering.
    #[arg(long)]
    pub allow_remote_bases: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Address for push webhooks from git hosts (`POST /hook/<id>`, one path per
    /// `Receiver`; each request must prove it knows its Receiver's token). Off when not
    /// given: no Receivers are watched then.
    #[arg(long, value_name = "ADDR")]
    pub webhook_addr: Option<SocketAddr>,
    /// Largest webhook body read, in bytes; a larger one is refused (413) unread.
    #[arg(long, value_name = "BYTES", default_value_t = crate::serve::webhook::DEFAULT_MAX_BODY, requires = "webhook_addr")]
    pub webhook_max_body: usize,
    /// Lockdown: GitSyncs outside the agent's namespace that name no ServiceAccount run as
    /// this ServiceAccount of their own namespace (impersonated), so RBAC decides what they
    /// may change. Without it they may write only namespaced objects of their own namespace.
    #[arg(long, value_name = "NAME")]
    pub default_service_account: Option<String>,
    /// Leader election: how long the Lease stays valid after its last renewal (a standby takes
    /// over at most about this long plus 2 s after the leader died).
    #[arg(long, default_value = "8s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// Leader election: the leader stops leading when it could not renew for this long
    /// (shorter than --lease-duration).
    #[arg(long, default_value = "6s", value_parser = humantime::parse_duration)]
    pub lease_renew_deadline: Duration,
    /// This replica's name in the Lease (default: $POD_NAME, else host name and process id).
    #[arg(long)]
    pub leader_identity: Option<String>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Repository URL (https, ssh, git, file, or a local path: `sync` is run by an operator,
    /// so local sources are allowed).
    #[arg(long)]
    pub url: String,
    /// Branch to follow (`main`, `branch:NAME`); `tag:NAME` for a tag; a 40-hex id for a commit.
    #[arg(long = "ref", default_value = "main")]
    pub git_ref: GitRef,
    /// Folder in the repository to render.
    #[arg(long, default_value = "")]
    pub path: String,
    /// Identity file(s) to open SealedSecrets with (besides the cluster's sealing keys).
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
    /// Time between passes.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Limit for the fetch, render and each apply stage.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Delete objects applied before and gone from git.
    #[arg(long)]
    pub prune: bool,
    /// Allow an empty render to prune everything applied before.
    #[arg(long, requires = "prune")]
    pub allow_empty: bool,
    /// Allow plaintext Secrets with data in the repository.
    #[arg(long)]
    pub allow_plaintext_secrets: bool,
    /// Let kustomize fetch remote bases and resources (URLs); refused before rendering
    /// otherwise.
    #[arg(long)]
    pub allow_remote_bases: bool,
    /// Print what would be applied (Secret values redacted) without a cluster.
    #[arg(long, conflicts_with_all = ["prune", "once"])]
    pub plan: bool,
    /// Namespace for namespaced objects (overrides theirs).
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Name of this source (labels, inventory ConfigMap).
    #[arg(long, default_value = "sync")]
    pub name: String,
    /// The agent's namespace: sealing keys and the inventory live here.
    #[arg(long, env = "GITSEAL_NAMESPACE", default_value = "gitseal-system")]
    pub namespace: String,
    /// Folder for the git clone, reused between passes; private to the agent's user (created
    /// 0700; refused when another user owns it or may write to it). Default:
    /// `$XDG_CACHE_HOME/gitseal-agent`, else `~/.cache/gitseal-agent`.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// What one render may read. A repository is written by whoever may push to it; these
/// bound what a pass costs whatever it holds (README, "Limits"). Raise one only for a
/// repository that really needs it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Render limits")]
pub struct LimitArgs {
    /// Largest manifest file (bytes; K, M, G or Ki, Mi, Gi suffixes).
    #[arg(long, value_name = "BYTES", default_value = "8Mi", value_parser = parse_size)]
    pub max_file_bytes: usize,
    /// Most YAML documents in one file (`kind: List` items count one each).
    #[arg(long, value_name = "N", default_value_t = gitseal::manifest::MAX_FILE_DOCUMENTS)]
    pub max_file_documents: usize,
    /// Most YAML nodes in one file, aliases expanded.
    #[arg(long, value_name = "N", default_value_t = gitseal::manifest::MAX_FILE_NODES)]
    pub max_file_nodes: usize,
    /// Deepest nesting of YAML sequences and mappings.
    #[arg(long, value_name = "N", default_value_t = gitseal::manifest::MAX_DEPTH)]
    pub max_depth: usize,
    /// Most bytes of manifests in one pass, `kustomize build` output included (read no
    /// further).
    #[arg(long, value_name = "BYTES", default_value = "128Mi", value_parser = parse_size)]
    pub max_pass_bytes: usize,
    /// Most documents (objects) in one pass.
    #[arg(long, value_name = "N", default_value_t = gitseal::manifest::MAX_PASS_DOCUMENTS)]
    pub max_pass_documents: usize,
    /// Most YAML nodes in one pass, aliases expanded.
    #[arg(long, value_name = "N", default_value_t = gitseal::manifest::MAX_PASS_NODES)]
    pub max_pass_nodes: usize,
}

impl LimitArgs {
    pub fn manifest_limits(&self) -> ManifestLimits {
        ManifestLimits {
            file_bytes: self.max_file_bytes,
            file_documents: self.max_file_documents,
            file_nodes: self.max_file_nodes,
            depth: self.max_depth,
            pass_bytes: self.max_pass_bytes,
            pass_documents: self.max_pass_documents,
            pass_nodes: self.max_pass_nodes,
        }
    }
}

/// `8Mi`, `8M`, `8388608`: a size in bytes.
fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}`: expected a number of bytes such as 8Mi"))?;
    let factor: usize = match unit {
        "" => 1,
        "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (K, M, G, Ki, Mi, Gi)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}`: too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_default_limits() {
        assert_eq!(parse_size("8Mi"), Ok(8 << 20));
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("2K"), Ok(2000));
        assert!(parse_size("8 MB").is_err());
        assert!(parse_size("Mi").is_err());
        let cli = Cli::try_parse_from(["gitseal-agent", "sync", "--url", "x"]).unwrap();
        let Command::Sync(args) = cli.command else {
            panic!("sync")
        };
        assert_eq!(args.limits.manifest_limits(), ManifestLimits::DEFAULT);
        let cli = Cli::try_parse_from([
            "gitseal-agent",
            "run",
            "--max-pass-bytes",
            "1Mi",
            "--max-depth",
            "40",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("run")
        };
        let l = args.limits.manifest_limits();
        assert_eq!((l.pass_bytes, l.depth), (1 << 20, 40));
    }
}
