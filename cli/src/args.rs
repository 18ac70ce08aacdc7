//! Command-line flags. Every flag is declared here, with clap enforcing conflicts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gitseal::scope::{validate_key, validate_name, validate_namespace};

/// `--name` / NAME: a Kubernetes object name (DNS-1123 subdomain), checked at parse time
/// so that a bad flag is a usage error naming the flag.
fn k8s_name(s: &str) -> Result<String, String> {
    validate_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `--namespace`: a DNS-1123 label.
fn k8s_namespace(s: &str) -> Result<String, String> {
    validate_namespace(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// `--key`: a Secret data key.
fn data_key(s: &str) -> Result<String, String> {
    validate_key(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Parser)]
#[command(
    name = "gitseal",
    version,
    about = "Seal Kubernetes Secrets into SealedSecrets that are safe to commit to git",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and inspect age key pairs.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Seal Secret manifests (or one raw value) with public keys.
    Seal(SealArgs),
    /// Build a Secret from literals, files and env files and seal it; no plaintext file
    /// is ever written.
    Create(CreateArgs),
    /// Break-glass: open SealedSecrets with a private key and print the Secrets.
    Unseal(UnsealArgs),
    /// Re-encrypt SealedSecrets in place for new recipients, offline.
    Reseal(ResealArgs),
    /// Lint a repository: plaintext Secrets, malformed SealedSecrets, recipients and
    /// scopes that do not match, other tools' secrets. Exits 1 on any finding, 3 when it
    /// could not check (a path that cannot be read).
    Check(CheckArgs),
    /// Convert Bitnami SealedSecrets and SOPS-encrypted Secrets into gitseal SealedSecrets,
    /// in place and in memory: plaintext is never written. All files or none (see
    /// --keep-going).
    Import(ImportArgs),
    /// Edit SealedSecrets as Secrets in $VISUAL/$EDITOR (the `sops FILE` habit): only
    /// changed values are sealed again; the plaintext copy lives in a private folder that
    /// is removed afterwards.
    Edit(EditArgs),
    /// List GitSyncs or SealedSecrets with their state: ready, revision, message, age (like
    /// `flux get`).
    Get(GetArgs),
    /// Ask the agent for a pass of a GitSync now (sets the reconcile.gitseal.dev/requestedAt
    /// annotation), and with --wait wait until that pass is done.
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
    /// Compare a local folder, rendered as the agent renders it for a GitSync, with the
    /// cluster (server-side dry-run). Secret values are never shown. Exits 0 when nothing
    /// differs, 1 when something does, 3 when it could not compare.
    #[command(subcommand)]
    Diff(DiffCommand),
    /// Print the versions of gitseal and of the cluster's gitseal-agent.
    Version(VersionArgs),
    /// Print a shell completion script.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new identity (private key, written 0600) and print its public key.
    Generate {
        /// Write the identity to FILE (0600) instead of standard output. Never overwrites
        /// an existing file unless --force is given.
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long, requires = "write")]
        force: bool,
    },
    /// Print the public key(s) of an identity file.
    Public {
        /// Identity file (standard input when absent or `-`).
        #[arg(short, long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Print the cluster's sealing key (a recipients file for `seal -R`).
    Fetch {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Write the recipients file to FILE (atomically) instead of standard output.
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// List the cluster's sealing keys: id, state, age, last use.
    List {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Output format: a table, or JSON for scripts.
        #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
        output: ListFormat,
    },
    /// Ask the agent for a new active sealing key now, and wait for it.
    Rotate {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// How long to wait for the agent.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Retire a sealing key: it no longer opens anything. Refused while a SealedSecret
    /// still needs it, unless --force.
    Retire {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Key id (8 hex digits, see `gitseal keys list`).
        #[arg(value_name = "ID", value_parser = key_id)]
        id: gitseal::KeyId,
        /// Retire even though SealedSecrets still need the key (they stop opening).
        #[arg(long)]
        force: bool,
    },
    /// Export every sealing key (private!), age-encrypted to a recipient.
    Backup {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Encrypt the backup to this public key (age1…); repeatable.
        #[arg(
            short = 'r',
            long = "recipient",
            value_name = "AGE1…",
            required_unless_present = "plaintext"
        )]
        recipients: Vec<String>,
        /// Write the backup to FILE (created 0600) instead of standard output.
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: Option<PathBuf>,
        /// Write the private keys unencrypted.
        #[arg(long, conflicts_with = "recipients")]
        plaintext: bool,
        /// Replace FILE if it exists.
        #[arg(long, requires = "write")]
        force: bool,
    },
    /// Re-create the key Secrets from a backup; the agent uses them at once.
    Restore {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Identity file that opens the backup (not needed for a --plaintext backup).
        #[arg(short, long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// The backup file.
        #[arg(short = 'f', long = "file", value_name = "BACKUP")]
        file: PathBuf,
    },
}

fn key_id(s: &str) -> Result<gitseal::KeyId, String> {
    s.parse().map_err(|()| {
        format!(
            "`{}` is not a key id (8 lowercase hex digits, see `gitseal keys list`)",
            gitseal::scope::printable(s)
        )
    })
}

/// Which cluster and agent namespace, found like kubectl finds them.
#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The agent's namespace (where its keys and requests live; -n is always the
    /// namespace of the Secret itself).
    #[arg(
        long = "agent-namespace",
        value_name = "NAMESPACE",
        default_value = "gitseal-system",
        value_parser = k8s_namespace
    )]
    pub agent_namespace: String,
}

/// Which cluster, found like kubectl finds it.
#[derive(Debug, Args, Clone, Default)]
pub struct KubeArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

/// Output of the operator commands: a table for people, YAML or JSON for scripts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    #[default]
    Table,
    Yaml,
    Json,
}

/// The kinds `gitseal get` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GetKind {
    #[value(name = "gitsyncs", alias = "gitsync", alias = "gs")]
    GitSyncs,
    #[value(name = "sealedsecrets", alias = "sealedsecret", alias = "gss")]
    SealedSecrets,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// What to list.
    #[arg(value_enum, value_name = "KIND")]
    pub kind: GetKind,
    /// Only this object.
    #[arg(value_parser = k8s_name, value_name = "NAME")]
    pub name: Option<String>,
    /// Namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long, conflicts_with_all = ["namespace", "name"])]
    pub all_namespaces: bool,
    /// Output format: a table, or the objects as YAML or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: TableFormat,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// A pass of one GitSync.
    #[command(name = "gitsync", alias = "gitsyncs", alias = "gs")]
    GitSync(ReconcileArgs),
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The GitSync.
    #[arg(value_parser = k8s_name, value_name = "NAME")]
    pub name: String,
    /// Its namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// Wait until the agent has run the pass, and fail if it did not succeed.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait (with --wait).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: std::time::Duration,
    /// Output format of the result: a table, or the GitSync's status as YAML or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: TableFormat,
    #[command(flatten)]
    pub kube: KubeArgs,
}

#[derive(Debug, Subcommand)]
pub enum DiffCommand {
    /// Compare a local folder with what one GitSync applied.
    #[command(name = "gitsync", alias = "gitsyncs", alias = "gs")]
    GitSync(DiffArgs),
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The GitSync whose settings (target namespace, labels) the render uses.
    #[arg(value_parser = k8s_name, value_name = "NAME")]
    pub name: String,
    /// Its namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// The local folder (your checkout's copy of the GitSync's `spec.path`).
    #[arg(long, value_name = "DIR")]
    pub path: PathBuf,
    /// The agent's `--default-service-account`, if its admin set one: whom GitSyncs outside
    /// the agent's namespace that name no ServiceAccount act as (default: none, so they may
    /// write only namespaced objects of their own namespace).
    #[arg(long, value_name = "NAME", value_parser = k8s_name)]
    pub default_service_account: Option<String>,
    /// Output format: one line per object and field, or the same as YAML or JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: TableFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the client's version (no cluster needed).
    #[arg(long)]
    pub client: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: TableFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Strict,
    Namespace,
    Cluster,
}

impl From<ScopeArg> for gitseal::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Strict => gitseal::Scope::Strict,
            ScopeArg::Namespace => gitseal::Scope::Namespace,
            ScopeArg::Cluster => gitseal::Scope::Cluster,
        }
    }
}

/// Who to seal to. With neither flag, the rules of the nearest `.gitseal.yaml` apply.
#[derive(Debug, Args, Clone, Default)]
pub struct RecipientArgs {
    /// Public key (age1…) to seal to; repeatable.
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// File of public keys, one per line (`#` comments allowed); repeatable.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipient_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Input: Secret manifests (YAML or JSON, multi-document), or the raw value with
    /// --raw; `-` (the default) is standard input.
    #[arg(value_name = "FILE", conflicts_with = "file_flag")]
    pub input: Option<PathBuf>,
    /// The input, kubectl style (the same as FILE).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file_flag: Option<PathBuf>,
    /// FILE or -f, else `-` (set by `resolved`).
    #[arg(skip)]
    pub file: PathBuf,
    /// Write the result to OUT (atomically) instead of standard output.
    #[arg(
        short = 'w',
        long = "write",
        value_name = "OUT",
        conflicts_with = "merge_into"
    )]
    pub write: Option<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Scope to bind the values to (default: the Secret's gitseal.dev/scope annotation,
    /// else strict).
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Name of the SealedSecret (overrides metadata.name).
    #[arg(long, value_parser = k8s_name)]
    pub name: Option<String>,
    /// Namespace of the SealedSecret (must agree with metadata.namespace when both are set).
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub format: Format,
    /// Choose recipients by the .gitseal.yaml rules for PATH, the file the result will be
    /// committed as (for output to standard output, and --raw values).
    #[arg(long = "for", value_name = "PATH")]
    pub for_path: Option<PathBuf>,
    /// Seal one raw value read from the input and print its base64 ciphertext.
    #[arg(long, requires = "key", conflicts_with_all = ["merge_into", "format"])]
    pub raw: bool,
    /// The Secret key a --raw value is for.
    #[arg(long, requires = "raw", value_parser = data_key)]
    pub key: Option<String>,
    /// Add or replace the input Secret's keys in this SealedSecret file, in place.
    #[arg(long, value_name = "SEALED.yaml", conflicts_with_all = ["name", "namespace", "scope"])]
    pub merge_into: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the Secret.
    #[arg(value_parser = k8s_name)]
    pub name: String,
    /// Namespace of the Secret.
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// A key and literal value (`key=value`); repeatable. The value is visible to every
    /// local user in the process list (`ps`) while gitseal runs, and lands in shell
    /// history: for real secrets use --from-file KEY=- (standard input) or --from-env-file.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub literals: Vec<String>,
    /// A file's content as a value (`[key=]path`; the key defaults to the file name).
    /// `KEY=-` reads the value from standard input (e.g. `pass show db | gitseal create
    /// … --from-file password=-`).
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    pub files: Vec<String>,
    /// An env file: one `KEY=VALUE` per line, `#` comments; `-` reads it from standard
    /// input.
    #[arg(long = "from-env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Secret type (default Opaque).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_: Option<String>,
    /// Scope to bind the values to.
    #[arg(long, value_enum, default_value = "strict")]
    pub scope: ScopeArg,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Write the SealedSecret to OUT (atomically) instead of standard output.
    #[arg(short = 'w', long = "write", value_name = "OUT")]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Identity file holding the private key(s); repeatable. Must not be readable by
    /// group or others.
    #[arg(short = 'i', long = "identity", value_name = "FILE", required = true)]
    pub identities: Vec<PathBuf>,
    /// SealedSecret manifests; `-` (the default) is standard input.
    #[arg(value_name = "FILE", conflicts_with = "file_flag")]
    pub input: Option<PathBuf>,
    /// The input, kubectl style (the same as FILE).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file_flag: Option<PathBuf>,
    /// FILE or -f, else `-` (set by `resolved`).
    #[arg(skip)]
    pub file: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub format: Format,
    /// Write the Secrets to OUT, created 0600 (they are plaintext), instead of standard
    /// output. Never replaces an existing file unless --force.
    #[arg(short = 'w', long = "write", value_name = "OUT")]
    pub write: Option<PathBuf>,
    /// Replace OUT if it exists.
    #[arg(long, requires = "write")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ResealArgs {
    /// Identity file(s) able to open the current values (offline re-sealing).
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "FILE",
        required_unless_present = "cluster",
        conflicts_with = "cluster"
    )]
    pub identities: Vec<PathBuf>,
    /// Re-seal through the cluster instead: the agent opens and re-seals the values to its
    /// newest key (and the escrow keys its administrator configured), and only ciphertexts
    /// travel (needs RBAC to create ResealRequests in the agent's namespace). The agent never
    /// seals to keys a request names, so -r/-R and the rules' recipients are not used.
    #[arg(long, conflicts_with_all = ["recipients", "recipient_files"])]
    pub cluster: bool,
    #[command(flatten)]
    pub cluster_args: ClusterArgs,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Show what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
    /// Files or folders holding SealedSecrets.
    #[arg(required_unless_present = "file_flags", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A file or folder, kubectl style (the same as PATH); repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file_flags: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files or folders to check.
    #[arg(required_unless_present = "file_flags", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A file or folder, kubectl style (the same as PATH); repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file_flags: Vec<PathBuf>,
    /// Output format of the findings: text (one line each), json, or sarif (SARIF 2.1.0
    /// for code scanning).
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    pub output: CheckFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files or folders to convert in place; `-` reads one file from standard input and
    /// writes the result to standard output.
    #[arg(required_unless_present = "file_flags", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// A file or folder, kubectl style (the same as PATH); repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file_flags: Vec<PathBuf>,
    /// Sealed Secrets controller private key(s): PEM, or the key Secrets as `kubectl get
    /// secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`
    /// prints them; repeatable. Must not be readable by group or others.
    #[arg(long = "bitnami-key", value_name = "FILE")]
    pub bitnami_keys: Vec<PathBuf>,
    /// age identity file(s) that open SOPS files (such as ~/.config/sops/age/keys.txt);
    /// repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Namespace of Bitnami SealedSecrets that name none (the namespace kubeseal sealed
    /// them for).
    #[arg(short = 'n', long, value_parser = k8s_namespace)]
    pub namespace: Option<String>,
    /// Scope of Secrets imported from SOPS (default: their gitseal.dev/scope annotation,
    /// else strict). Bitnami SealedSecrets keep their own scope.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    /// Convert file by file: write every file that converts (each atomically) and report
    /// the others, instead of writing nothing when one fails.
    #[arg(long)]
    pub keep_going: bool,
    /// Report what would be converted; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format when writing to standard output (PATH `-`).
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The SealedSecret file to edit (written back in place, atomically).
    #[arg(
        value_name = "FILE",
        required_unless_present = "file_flag",
        conflicts_with = "file_flag"
    )]
    pub input: Option<PathBuf>,
    /// The file, kubectl style (the same as FILE).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file_flag: Option<PathBuf>,
    /// FILE or -f (set by `resolved`).
    #[arg(skip)]
    pub file: PathBuf,
    /// Identity file(s) able to open the values (an escrow or developer key); repeatable.
    #[arg(short = 'i', long = "identity", value_name = "FILE", required = true)]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
}

/// Input files may be given positionally or with `-f` (kubectl's habit); commands read the
/// merged value.
pub trait Resolve {
    fn resolved(self) -> Self;
}

fn one_input(pos: &mut Option<PathBuf>, flag: &mut Option<PathBuf>) -> PathBuf {
    pos.take()
        .or_else(|| flag.take())
        .unwrap_or_else(|| PathBuf::from("-"))
}

impl Resolve for SealArgs {
    fn resolved(mut self) -> Self {
        self.file = one_input(&mut self.input, &mut self.file_flag);
        self
    }
}

impl Resolve for UnsealArgs {
    fn resolved(mut self) -> Self {
        self.file = one_input(&mut self.input, &mut self.file_flag);
        self
    }
}

impl Resolve for EditArgs {
    fn resolved(mut self) -> Self {
        self.file = one_input(&mut self.input, &mut self.file_flag);
        self
    }
}

impl Resolve for ResealArgs {
    fn resolved(mut self) -> Self {
        self.paths.append(&mut self.file_flags);
        self
    }
}

impl Resolve for CheckArgs {
    fn resolved(mut self) -> Self {
        self.paths.append(&mut self.file_flags);
        self
    }
}

impl Resolve for ImportArgs {
    fn resolved(mut self) -> Self {
        self.paths.append(&mut self.file_flags);
        self
    }
}
