//! `gitseal keys fetch | list | rotate | retire | backup | restore`: the cluster's sealing
//! keys, through the Kubernetes API with the caller's own credentials (kubeconfig, like
//! kubectl). Kubernetes RBAC decides who may do what: reading the public keys needs `get`
//! on one ConfigMap; rotating needs `patch` on it; retiring, backing up and restoring need
//! access to the key Secrets in the agent namespace.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use gitseal::{KeyId, SecretKey};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::args::{ClusterArgs, KeysCommand};
use crate::io::{read_identities, read_input, shown, write_atomic, write_private};

// The agent's names (controller/src/keys.rs).
const KEY_LABEL: &str = "gitseal.dev/sealing-key";
const IDENTITY_KEY: &str = "identity";
const CREATED_ANNOTATION: &str = "gitseal.dev/created";
const PUBLIC_KEYS_CONFIGMAP: &str = "gitseal-public-keys";
const USAGE_CONFIGMAP: &str = "gitseal-key-usage";
const ROTATE_REQUESTED: &str = "gitseal.dev/rotate-requested";
const ROTATE_DONE: &str = "gitseal.dev/rotate-done";
const FIELD_MANAGER: &str = "gitseal-cli";
/// Starts each key's block in a backup; the rest of the block is its identity file.
const BACKUP_MARK: &str = "# gitseal-key-secret:";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyInfo {
    id: String,
    public_key: String,
    created: String,
    state: String,
    secret: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageEntry {
    last_used: String,
    objects: Vec<ObjectRef>,
}

#[derive(Debug, Clone, Deserialize)]
struct ObjectRef {
    source: String,
    object: String,
}

pub fn run(cmd: KeysCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_async(cmd))
}

async fn run_async(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Fetch { cluster, output } => fetch(&cluster, output.as_deref()).await,
        KeysCommand::List { cluster } => list(&cluster).await,
        KeysCommand::Rotate { cluster, timeout } => rotate(&cluster, timeout).await,
        KeysCommand::Retire { cluster, id, force } => retire(&cluster, id, force).await,
        KeysCommand::Backup {
            cluster,
            recipients,
            output,
            plaintext,
            force,
        } => backup(&cluster, &recipients, output.as_deref(), plaintext, force).await,
        KeysCommand::Restore {
            cluster,
            identity,
            file,
        } => restore(&cluster, &identity, &file).await,
        KeysCommand::Generate { .. } | KeysCommand::Public { .. } => {
            bail!("not a cluster command")
        }
    }
}

async fn client(c: &ClusterArgs) -> Result<kube::Client> {
    let config = if c.kubeconfig.is_none() && c.context.is_none() {
        kube::Config::infer().await.context(
            "no cluster configuration: set KUBECONFIG, pass --kubeconfig, or run in a cluster",
        )?
    } else {
        let opts = KubeConfigOptions {
            context: c.context.clone(),
            ..Default::default()
        };
        match &c.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("kubeconfig {}", shown(path)))?;
                kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .with_context(|| format!("kubeconfig {}", shown(path)))?
            }
            None => kube::Config::from_kubeconfig(&opts)
                .await
                .context("kubeconfig")?,
        }
    };
    kube::Client::try_from(config).context("cannot build a Kubernetes client")
}

fn api_error(e: kube::Error, what: &str, ns: &str) -> anyhow::Error {
    match &e {
        kube::Error::Api(s) if s.code == 403 => anyhow::anyhow!(
            "{what} in namespace {ns}: forbidden ({}); ask a cluster admin for access",
            s.message
        ),
        kube::Error::Api(s) => anyhow::anyhow!("{what} in namespace {ns}: {}", s.message),
        _ => anyhow::anyhow!("{what} in namespace {ns}: {e}"),
    }
}

async fn public_keys(client: &kube::Client, ns: &str) -> Result<(ConfigMap, Vec<PublicKeyInfo>)> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api
        .get_opt(PUBLIC_KEYS_CONFIGMAP)
        .await
        .map_err(|e| api_error(e, "reading the public keys", ns))?
        .with_context(|| {
            format!(
                "no published keys in namespace {ns} (ConfigMap {PUBLIC_KEYS_CONFIGMAP}); is gitseal-agent running there? Pass --namespace if it runs elsewhere"
            )
        })?;
    let keys = cm
        .data
        .as_ref()
        .and_then(|d| d.get("keys.json"))
        .map(|t| serde_json::from_str::<Vec<PublicKeyInfo>>(t))
        .transpose()
        .context("ConfigMap gitseal-public-keys: unreadable keys.json")?
        .unwrap_or_default();
    Ok((cm, keys))
}

async fn fetch(c: &ClusterArgs, output: Option<&std::path::Path>) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.namespace).await?;
    let Some(newest) = keys.iter().rev().find(|k| k.state == "active") else {
        bail!(
            "namespace {}: no active sealing key published yet; is gitseal-agent running?",
            c.namespace
        );
    };
    // Checked, so a damaged ConfigMap never ends up in a recipients file.
    let pk: gitseal::PublicKey = newest
        .public_key
        .parse()
        .context("ConfigMap gitseal-public-keys")?;
    let text = format!(
        "# gitseal: sealing key of namespace {} (key id {}, created {})\n{pk}\n",
        c.namespace,
        pk.id(),
        newest.created
    );
    match output {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {} (key id {})", shown(path), pk.id());
        }
        None => print!("{text}"),
    }
    Ok(())
}

async fn usage(client: &kube::Client, ns: &str) -> Option<BTreeMap<String, UsageEntry>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = api.get_opt(USAGE_CONFIGMAP).await.ok()?;
    Some(
        cm.and_then(|c| c.data)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(id, t)| Some((id, serde_json::from_str(&t).ok()?)))
            .collect(),
    )
}

fn age_of(created: &str) -> String {
    match humantime::parse_rfc3339_weak(created.trim_end_matches('Z'))
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
    {
        Some(d) => {
            let secs = d.as_secs();
            match secs {
                0..120 => format!("{secs}s"),
                120..7200 => format!("{}m", secs / 60),
                7200..172_800 => format!("{}h", secs / 3600),
                _ => format!("{}d", secs / 86_400),
            }
        }
        None => "?".into(),
    }
}

async fn list(c: &ClusterArgs) -> Result<()> {
    let client = client(c).await?;
    let (_, keys) = public_keys(&client, &c.namespace).await?;
    let usage = usage(&client, &c.namespace).await;
    let newest = keys
        .iter()
        .rev()
        .find(|k| k.state == "active")
        .map(|k| k.id.clone());
    println!(
        "{:<9} {:<8} {:<21} {:>5}  {:<10} OBJECTS",
        "ID", "STATE", "CREATED", "AGE", "LAST USED"
    );
    for k in &keys {
        let u = usage.as_ref().and_then(|u| u.get(&k.id));
        let state = if Some(&k.id) == newest.as_ref() {
            "sealing"
        } else {
            k.state.as_str()
        };
        let last = match (&usage, u) {
            (None, _) => "unknown",
            (Some(_), None) => "never",
            (Some(_), Some(u)) => u.last_used.as_str(),
        };
        let objects = u
            .map(|u| {
                u.objects
                    .iter()
                    .map(|o| format!("{} ({})", o.object, o.source))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!(
            "{:<9} {:<8} {:<21} {:>5}  {:<10} {}",
            k.id,
            state,
            k.created,
            age_of(&k.created),
            last,
            if objects.is_empty() { "-" } else { &objects }
        );
    }
    if usage.is_none() {
        eprintln!("(key usage not readable: no access to ConfigMap {USAGE_CONFIGMAP})");
    }
    Ok(())
}

async fn rotate(c: &ClusterArgs, timeout: Duration) -> Result<()> {
    let client = client(c).await?;
    let (_, before) = public_keys(&client, &c.namespace).await?;
    let request = format!(
        "{}/{:08x}",
        humantime::format_rfc3339_seconds(SystemTime::now()),
        rand_u32()
    );
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &c.namespace);
    api.patch(
        PUBLIC_KEYS_CONFIGMAP,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_REQUESTED: request}}})),
    )
    .await
    .map_err(|e| api_error(e, "requesting a rotation", &c.namespace))?;
    let start = Instant::now();
    loop {
        let (cm, keys) = public_keys(&client, &c.namespace).await?;
        let done = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ROTATE_DONE));
        if done == Some(&request)
            && let Some(k) = keys.iter().rev().find(|k| k.state == "active")
        {
            let old = before
                .iter()
                .rev()
                .find(|k| k.state == "active")
                .map(|k| k.id.as_str())
                .unwrap_or("none");
            eprintln!(
                "new sealing key {} (was {old}); older keys still open what they sealed. Run `gitseal keys fetch -o FILE` and `gitseal reseal` to move values to it",
                k.id
            );
            println!("{}", k.public_key);
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "the agent in namespace {} did not answer the rotation request within {}; is it running? (kubectl -n {} logs deploy/gitseal-agent)",
                c.namespace,
                humantime::format_duration(timeout),
                c.namespace
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A little randomness for request ids, from a fresh key (no extra dependency).
fn rand_u32() -> u32 {
    let id = SecretKey::generate().id().to_string();
    u32::from_str_radix(&id, 16).unwrap_or(0)
}

/// SealedSecret objects in the cluster that only `id` (of the active keys) opens.
async fn sealed_objects_needing(
    client: &kube::Client,
    id: KeyId,
    active: &[KeyId],
) -> Result<Vec<String>> {
    let ar = ApiResource {
        group: "gitseal.dev".into(),
        version: "v1alpha1".into(),
        api_version: "gitseal.dev/v1alpha1".into(),
        kind: "SealedSecret".into(),
        plural: "sealedsecrets".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        // No SealedSecret CRD: nothing to check.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(api_error(e, "listing SealedSecrets", "(all)")),
    };
    let mut out = Vec::new();
    for o in list.items {
        let values = o
            .data
            .pointer("/spec/encryptedData")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        let needs = values.values().filter_map(|v| v.as_str()).any(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|ct| gitseal::inspect(&ct).ok())
                .is_some_and(|h| {
                    h.key_ids.contains(&id)
                        && !h.key_ids.iter().any(|k| *k != id && active.contains(k))
                })
        });
        if needs {
            out.push(format!(
                "{}/{}",
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

async fn retire(c: &ClusterArgs, id: KeyId, force: bool) -> Result<()> {
    let client = client(c).await?;
    let ns = &c.namespace;
    let (_, keys) = public_keys(&client, ns).await?;
    let wanted = id.to_string();
    let Some(key) = keys.iter().find(|k| k.id == wanted) else {
        let known: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        bail!(
            "no sealing key {wanted} in namespace {ns} (known: {}); see `gitseal keys list`",
            known.join(", ")
        );
    };
    if key.state != "active" {
        eprintln!("key {wanted} is already retired");
        return Ok(());
    }
    if !force {
        let mut users: Vec<String> = Vec::new();
        match usage(&client, ns).await {
            Some(u) => {
                if let Some(e) = u.get(&wanted) {
                    users.extend(
                        e.objects
                            .iter()
                            .map(|o| format!("{} ({})", o.object, o.source)),
                    );
                }
            }
            None => bail!(
                "cannot read the key usage (ConfigMap {USAGE_CONFIGMAP} in {ns}); retiring blind needs --force"
            ),
        }
        let active: Vec<KeyId> = keys
            .iter()
            .filter(|k| k.state == "active")
            .filter_map(|k| k.id.parse().ok())
            .collect();
        for o in sealed_objects_needing(&client, id, &active).await? {
            users.push(format!("{o} (SealedSecret object)"));
        }
        if !users.is_empty() {
            users.sort();
            users.dedup();
            bail!(
                "key {wanted} is still needed by: {}; seal those again to the current key (`gitseal keys fetch -o cluster.txt && gitseal reseal -i … -R cluster.txt PATH`), let the agent apply them, then retry; or pass --force (they stop opening)",
                users.join(", ")
            );
        }
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.patch(
        &key.secret,
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"metadata": {"labels": {KEY_LABEL: "retired"}}})),
    )
    .await
    .map_err(|e| api_error(e, &format!("relabelling Secret {}", key.secret), ns))?;
    eprintln!(
        "retired key {wanted} (Secret {}); it no longer opens anything. To undo: kubectl -n {ns} label secret {} {KEY_LABEL}=active --overwrite",
        key.secret, key.secret
    );
    Ok(())
}

async fn backup(
    c: &ClusterArgs,
    recipients: &[String],
    output: Option<&std::path::Path>,
    plaintext: bool,
    force: bool,
) -> Result<()> {
    let recipients: Vec<age::x25519::Recipient> = recipients
        .iter()
        .enumerate()
        .map(|(i, r)| {
            crate::io::usable(r)
                .and_then(|pk| {
                    pk.to_string()
                        .parse::<age::x25519::Recipient>()
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .with_context(|| format!("--recipient #{}", i + 1))
        })
        .collect::<Result<_>>()?;
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write private keys to a terminal; pass -o FILE");
    }
    let client = client(c).await?;
    let ns = &c.namespace;
    let api: Api<Secret> = Api::namespaced(client, ns);
    let list = api
        .list(&ListParams::default().labels(KEY_LABEL))
        .await
        .map_err(|e| api_error(e, "listing the key Secrets", ns))?;
    let mut text = Zeroizing::new(format!(
        "# gitseal sealing keys of namespace {ns}, {}\n# restore: gitseal keys restore -i IDENTITY -f THIS-FILE\n",
        humantime::format_rfc3339_seconds(SystemTime::now())
    ));
    let mut n = 0;
    for mut s in list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        let state = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(KEY_LABEL))
            .cloned()
            .unwrap_or_default();
        let created = s
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CREATED_ANNOTATION))
            .cloned()
            .or_else(|| {
                s.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
            })
            .unwrap_or_default();
        let identity = s
            .data
            .as_ref()
            .and_then(|d| d.get(IDENTITY_KEY))
            .map(|b| Zeroizing::new(String::from_utf8_lossy(&b.0).into_owned()));
        if let Some(d) = s.data.as_mut() {
            use zeroize::Zeroize;
            d.values_mut().for_each(|v| v.0.zeroize());
        }
        let Some(identity) = identity else {
            eprintln!("warning: Secret {name} has no `identity`; skipped");
            continue;
        };
        if gitseal::keys::read_identity_file(identity.as_bytes()).is_err() {
            eprintln!("warning: Secret {name} holds no readable identity; skipped");
            continue;
        }
        text.push_str(&format!("{BACKUP_MARK} {name} {state} {created}\n"));
        text.push_str(&identity);
        if !identity.ends_with('\n') {
            text.push('\n');
        }
        n += 1;
    }
    if n == 0 {
        bail!("no sealing key Secrets in namespace {ns}: nothing to back up");
    }
    let bytes: Zeroizing<Vec<u8>> = if plaintext {
        Zeroizing::new(text.as_bytes().to_vec())
    } else {
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|e| anyhow::anyhow!("cannot encrypt the backup: {e}"))?;
        let mut out = Vec::new();
        let mut w = encryptor
            .wrap_output(&mut out)
            .context("cannot encrypt the backup")?;
        w.write_all(text.as_bytes())
            .and_then(|()| w.finish().map(drop))
            .context("cannot encrypt the backup")?;
        Zeroizing::new(out)
    };
    match output {
        Some(path) => {
            write_private(path, &bytes, force)?;
            eprintln!(
                "wrote {n} key(s) to {}{}",
                shown(path),
                if plaintext { " UNENCRYPTED" } else { "" }
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("cannot write to standard output")?;
        }
    }
    Ok(())
}

/// One key Secret from a backup.
struct Restored {
    name: String,
    state: String,
    created: String,
    identity: Zeroizing<String>,
}

fn parse_backup(text: &str) -> Result<Vec<Restored>> {
    let mut out: Vec<Restored> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(BACKUP_MARK) {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(state)) = (parts.next(), parts.next()) else {
                bail!("backup: a `{BACKUP_MARK}` line lacks the Secret name or state");
            };
            if gitseal::scope::validate_name(name).is_err()
                || !matches!(state, "active" | "retired")
            {
                bail!("backup: bad `{BACKUP_MARK}` line (name or state)");
            }
            out.push(Restored {
                name: name.to_owned(),
                state: state.to_owned(),
                created: parts.next().unwrap_or_default().to_owned(),
                identity: Zeroizing::new(String::new()),
            });
        } else if let Some(cur) = out.last_mut() {
            cur.identity.push_str(line);
            cur.identity.push('\n');
        }
    }
    for r in &out {
        gitseal::keys::read_identity_file(r.identity.as_bytes())
            .with_context(|| format!("backup: key Secret {}", r.name))?;
    }
    if out.is_empty() {
        bail!("not a gitseal key backup (no `{BACKUP_MARK}` lines)");
    }
    Ok(out)
}

async fn restore(
    c: &ClusterArgs,
    identities: &[std::path::PathBuf],
    file: &std::path::Path,
) -> Result<()> {
    let raw = read_input(file)?;
    let name = shown(file);
    let text: Zeroizing<String> = if raw.starts_with(b"age-encryption.org/v1") {
        if identities.is_empty() {
            bail!("{name} is encrypted; pass -i IDENTITY (the key it was backed up to)");
        }
        let ring = read_identities(identities)?;
        let ids: Vec<age::x25519::Identity> = ring
            .keys()
            .filter_map(|k| k.to_secret_string().expose_secret().parse().ok())
            .collect();
        let decryptor = age::Decryptor::new_buffered(&raw[..])
            .map_err(|e| anyhow::anyhow!("{name}: not a readable age file: {e}"))?;
        let mut reader = decryptor
            .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
            .map_err(|_| {
                anyhow::anyhow!("{name}: cannot open it with the given identity (wrong key?)")
            })?;
        let mut out = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut out)
            .with_context(|| format!("{name}: cannot decrypt"))?;
        Zeroizing::new(
            String::from_utf8(out.to_vec()).with_context(|| format!("{name}: not a key backup"))?,
        )
    } else {
        Zeroizing::new(
            std::str::from_utf8(&raw)
                .with_context(|| format!("{name}: neither an age file nor a plaintext backup"))?
                .to_owned(),
        )
    };
    let keys = parse_backup(&text).with_context(|| name.clone())?;
    let client = client(c).await?;
    let ns = &c.namespace;
    let api: Api<Secret> = Api::namespaced(client, ns);
    for k in &keys {
        let mut annotations = serde_json::Map::new();
        if !k.created.is_empty() {
            annotations.insert(CREATED_ANNOTATION.into(), k.created.clone().into());
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": k.name, "labels": {KEY_LABEL: k.state}, "annotations": annotations},
            "type": "Opaque",
            "stringData": {IDENTITY_KEY: k.identity.as_str()},
        });
        api.patch(
            &k.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|e| api_error(e, &format!("writing Secret {}", k.name), ns))?;
        eprintln!("restored Secret {} ({})", k.name, k.state);
    }
    eprintln!(
        "restored {} key Secret(s) in namespace {ns}; the agent uses them without a restart",
        keys.len()
    );
    Ok(())
}

/// `gitseal reseal --cluster`: one ResealRequest per SealedSecret, answered by the agent
/// with new ciphertexts; plaintext never leaves the cluster.
pub struct ClusterResealer {
    rt: tokio::runtime::Runtime,
    api: Api<DynamicObject>,
    namespace: String,
}

impl ClusterResealer {
    pub fn new(c: &ClusterArgs) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let client = rt.block_on(client(c))?;
        let ar = ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("gitseal.dev", "v1alpha1", "ResealRequest"),
            "resealrequests",
        );
        Ok(ClusterResealer {
            rt,
            api: Api::namespaced_with(client, &c.namespace, &ar),
            namespace: c.namespace.clone(),
        })
    }

    /// Re-seals `sealed` through the agent; whether any ciphertext changed.
    pub fn reseal(
        &mut self,
        sealed: &mut gitseal::SealedSecret,
        recipients: &[gitseal::PublicKey],
    ) -> Result<bool> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: BTreeMap<String, String> = sealed
            .encrypted_data
            .iter()
            .map(|(k, v)| (k.clone(), b64.encode(v)))
            .collect();
        let request = json!({
            "apiVersion": "gitseal.dev/v1alpha1",
            "kind": "ResealRequest",
            "metadata": {"generateName": "reseal-"},
            "spec": {
                "items": [{
                    "name": sealed.name,
                    "namespace": sealed.namespace,
                    "scope": sealed.scope.to_string(),
                    "encryptedData": data,
                }],
                "recipients": recipients.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }
        });
        let ns = self.namespace.clone();
        let api = self.api.clone();
        let result = self.rt.block_on(async move {
            let obj: DynamicObject = serde_json::from_value(request).context("request")?;
            let created = api
                .create(&Default::default(), &obj)
                .await
                .map_err(|e| api_error(e, "creating a ResealRequest", &ns))?;
            let name = created.metadata.name.clone().unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(60);
            let answer = loop {
                let got = api
                    .get(&name)
                    .await
                    .map_err(|e| api_error(e, "reading the ResealRequest", &ns))?;
                let status = got.data.get("status").cloned().unwrap_or_default();
                if status.get("results").is_some() || status.get("error").is_some() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = api.delete(&name, &Default::default()).await;
                    bail!(
                        "the agent in namespace {ns} did not answer ResealRequest {name} within 60 s; is it running?"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let _ = api.delete(&name, &Default::default()).await;
            Ok::<_, anyhow::Error>(answer)
        })?;
        if let Some(error) = result.get("error").and_then(|e| e.as_str()) {
            bail!("the agent could not re-seal it: {error}");
        }
        let new: BTreeMap<String, String> = result
            .pointer("/results/0")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .context("the agent's answer")?
            .unwrap_or_default();
        if new == data {
            return Ok(false);
        }
        let mut decoded = BTreeMap::new();
        for (k, v) in new {
            let ct = b64
                .decode(v.as_bytes())
                .with_context(|| format!("the agent's answer for key {k}"))?;
            decoded.insert(k, ct);
        }
        sealed.encrypted_data = decoded;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_text_round_trips() {
        let k = SecretKey::generate();
        let id = k.to_identity_file("2026-11-26T00:00:00Z");
        let text = format!(
            "# header\n{BACKUP_MARK} gitseal-key-{} active 2026-11-26T00:00:00Z\n{}",
            k.id(),
            id.expose_secret()
        );
        let keys = parse_backup(&text).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].state, "active");
        assert!(parse_backup("# nothing\n").is_err());
        let bad = format!("{BACKUP_MARK} x active\nAGE-SECRET-KEY-1NOPE\n");
        let e = format!("{:#}", parse_backup(&bad).err().unwrap());
        assert!(!e.contains("NOPE"), "{e}");
    }
}
