//! Well-known names: the labels, annotations, ConfigMaps, Secret keys and field managers that
//! the agent and the CLI (and the people reading a cluster) agree on. Changing one changes the
//! contract with clusters that already run gitseal.

/// API group of the custom resources.
pub const GROUP: &str = "gitseal.dev";
/// API version of the custom resources.
pub const VERSION: &str = "v1alpha1";

// --- Field managers (server-side apply) --------------------------------------------------

/// Objects, statuses and Secrets the agent applies.
pub const AGENT_FIELD_MANAGER: &str = "gitseal-agent";
/// The sealing keys, the public keys ConfigMap and the key usage ConfigMap.
pub const KEYS_FIELD_MANAGER: &str = "gitseal-agent-keys";
/// Changes made by `gitseal` (rotation requests, retiring, restoring keys).
pub const CLI_FIELD_MANAGER: &str = "gitseal-cli";
/// The `reconcile.gitseal.dev/requestedAt` annotation a Receiver's webhook sets on a GitSync.
pub const RECEIVER_FIELD_MANAGER: &str = "gitseal-agent-receiver";
/// The `reportingController` of the agent's Events.
pub const EVENT_REPORTER: &str = "gitseal-agent";

// --- Objects a GitSync applies ----------------------------------------------------------

/// Label on every object a GitSync applied: the GitSync's name.
pub const SYNC_NAME_LABEL: &str = "gitseal.dev/sync-name";
/// Label on every object a GitSync applied: the GitSync's namespace.
pub const SYNC_NAMESPACE_LABEL: &str = "gitseal.dev/sync-namespace";
/// `"true"` on a Secret lets a GitSync's `secretRef` send it as git credentials; without it
/// the Secret is never sent anywhere.
pub const GIT_CREDENTIALS_LABEL: &str = "gitseal.dev/git-credentials";
/// Optional, on a Secret labelled [`GIT_CREDENTIALS_LABEL`]: the only hosts (`host` or
/// `host:port`, comma-separated) it may be sent to.
pub const GIT_CREDENTIALS_HOSTS_ANNOTATION: &str = "gitseal.dev/git-credentials-hosts";
/// `disabled` on an object (or its SealedSecret) keeps it from ever being pruned.
pub const PRUNE_ANNOTATION: &str = "gitseal.dev/prune";
/// Label on each `GitSyncInventory` shard: the name of its GitSync.
pub const INVENTORY_OF_LABEL: &str = "gitseal.dev/inventory-of";
/// Finalizer on every GitSync: the agent prunes or orphans its objects before it goes.
pub const GITSYNC_FINALIZER: &str = "gitseal.dev/gitsync";
/// Annotation on a GitSync: a new value asks for a pass now (as Flux's
/// `reconcile.fluxcd.io/requestedAt`). Status writes never start a pass; this does.
pub const RECONCILE_REQUESTED_ANNOTATION: &str = "reconcile.gitseal.dev/requestedAt";
/// Where `gitseal-agent sync` keeps its inventory between runs: ConfigMaps named this,
/// the source's name and `-<shard>`, in the agent namespace (earlier versions: one ConfigMap
/// without the shard number).
pub const INVENTORY_CONFIGMAP_PREFIX: &str = "gitseal-inventory-";
/// The data key of the single inventory ConfigMap of earlier versions (JSON list of
/// inventory entries), still read.
pub const INVENTORY_KEY: &str = "inventory.json";

// --- Secrets opened from SealedSecret objects -------------------------------------------

/// Label on every Secret the SealedSecret controller produces (the agent watches only these).
pub const SEALED_SECRET_LABEL: &str = "gitseal.dev/sealed-secret";
/// `"true"` on an existing Secret lets a SealedSecret of the same name take it over.
pub const MANAGED_ANNOTATION: &str = "gitseal.dev/managed";

// --- Receivers (push webhooks) ---------------------------------------------------------

/// `"true"` on a Secret lets Receivers of its namespace use it as their webhook token: a
/// Receiver can name only a Secret that opted in, so creating one never exposes another.
pub const RECEIVER_TOKEN_LABEL: &str = "gitseal.dev/receiver-token";
/// Data key of a Receiver's token Secret.
pub const RECEIVER_TOKEN_KEY: &str = "token";
/// Where every Receiver's path starts on the agent's webhook address.
pub const WEBHOOK_PATH_PREFIX: &str = "/hook/";

// --- Sealing keys -----------------------------------------------------------------------

/// Label of a sealing key Secret in the agent namespace: [`ACTIVE`] or [`RETIRED`].
pub const SEALING_KEY_LABEL: &str = "gitseal.dev/sealing-key";
/// A key that opens values (the newest active one seals).
pub const ACTIVE: &str = "active";
/// A key that no longer opens anything.
pub const RETIRED: &str = "retired";
/// Data key of a sealing key Secret: one age identity file.
pub const IDENTITY_KEY: &str = "identity";
/// RFC 3339 creation time of a key Secret (the Secret's own creation time when absent).
pub const CREATED_ANNOTATION: &str = "gitseal.dev/created";
/// The ConfigMap with the public keys, readable by every authenticated user.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "gitseal-public-keys";
/// Data key of the public keys ConfigMap: every key, as JSON [`crate::PublicKeyInfo`]s.
pub const PUBLIC_KEYS_JSON: &str = "keys.json";
/// Data key of the public keys ConfigMap: the key to seal with, as a recipients file.
pub const RECIPIENTS_TXT: &str = "recipients.txt";
/// The ConfigMap recording which key opens which object, and when it was last needed: one
/// data key per key id, each a JSON [`crate::UsageEntry`].
pub const USAGE_CONFIGMAP: &str = "gitseal-key-usage";
/// Set (any new value) on the public-keys ConfigMap to ask for a new active key now.
pub const ROTATE_REQUESTED_ANNOTATION: &str = "gitseal.dev/rotate-requested";
/// Written by the agent: the last rotation request it acted on.
pub const ROTATE_DONE_ANNOTATION: &str = "gitseal.dev/rotate-done";
/// Written by the agent on the public-keys ConfigMap: the version of the agent that leads
/// (the one that wrote last), so `gitseal version` shows what runs, not what a Deployment asks
/// for. Readable wherever the public keys are; forgeable by whoever may edit that ConfigMap.
pub const AGENT_VERSION_ANNOTATION: &str = "gitseal.dev/agent-version";
