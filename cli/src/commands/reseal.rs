//! `gitseal reseal`: re-encryption of SealedSecrets in place, for new recipients: offline
//! with identity files, or through the cluster (`--cluster`: the agent opens and re-seals,
//! plaintext never leaves it).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use gitseal::manifest::{SealedSecret, parse_documents};
use gitseal::sealing::reseal;
use gitseal_api::{ResealItem, ResealRequest, ResealRequestSpec};
use indicatif::{ProgressBar, ProgressStyle};
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::wait::await_condition;

use crate::args::{ClusterArgs, ResealArgs};
use crate::cluster::{api_error, client, runtime};
use crate::commands::{manifest_files, render_file};
use crate::io::{emit, read_text, recipients_for, shown};

/// How long the agent may take to answer one ResealRequest.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Below this many files the progress bar is not worth drawing.
const PROGRESS_MIN_FILES: usize = 20;

/// Who opens and re-seals: this process with identity files, or the cluster's agent.
enum Resealer {
    Offline(gitseal::Keyring),
    Cluster(Box<ClusterResealer>),
}

impl Resealer {
    fn reseal(
        &mut self,
        doc: &gitseal::manifest::Document,
        sealed: &mut SealedSecret,
        recipients: &[gitseal::PublicKey],
    ) -> Result<bool> {
        match self {
            Resealer::Offline(ring) => reseal(sealed, ring, recipients).map_err(|e| {
                doc.error(format!("spec.encryptedData.{}", e.key), e.error.to_string())
                    .into()
            }),
            Resealer::Cluster(c) => c
                .reseal(sealed)
                .map_err(|e| anyhow::anyhow!("{}: document {}: {e:#}", doc.source, doc.index)),
        }
    }
}

pub fn run(args: ResealArgs) -> Result<()> {
    let mut resealer = if args.cluster {
        Resealer::Cluster(Box::new(ClusterResealer::new(&args.cluster_args)?))
    } else {
        Resealer::Offline(gitseal::read_identity_files(&args.identities)?)
    };
    let files = manifest_files(&args.paths)?;
    let bar = if files.len() >= PROGRESS_MIN_FILES {
        let bar = ProgressBar::new(files.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let (mut changed, mut sealed_total, mut failures) = (0usize, 0usize, 0usize);
    let mut rules_noted = false;
    for file in &files {
        bar.inc(1);
        let name = shown(file);
        let result = (|| -> Result<Option<usize>> {
            let text = read_text(file)?;
            let mut docs = parse_documents(&name, &text)?;
            if !docs.iter().any(|d| d.is_sealed_secret()) {
                return Ok(None);
            }
            // Through the cluster the agent decides the recipients (its newest key and its
            // escrow keys); a request never names any.
            let recipients = if args.cluster {
                if !rules_noted && crate::io::find_rules(file.parent().unwrap_or(file))?.is_some() {
                    rules_noted = true;
                    bar.suspend(|| eprintln!("note: --cluster seals to the cluster's newest key (and the agent's escrow keys) only, not to the recipients of .gitseal.yaml; `gitseal check` reports files whose recipients differ from the rules"));
                }
                Vec::new()
            } else {
                recipients_for(&args.recipients, Some(file))?
            };
            let mut n = 0;
            for doc in docs.iter_mut().filter(|d| d.is_sealed_secret()) {
                let mut sealed = SealedSecret::from_document(doc)?;
                let did = resealer.reseal(doc, &mut sealed, &recipients)?;
                if did {
                    doc.value = sealed.to_value();
                    n += 1;
                }
            }
            sealed_total += docs.iter().filter(|d| d.is_sealed_secret()).count();
            if n > 0 && !args.dry_run {
                emit(
                    Some(file),
                    render_file(file, docs.iter().map(|d| &d.value)).as_bytes(),
                )?;
            }
            Ok(Some(n))
        })();
        match result {
            Ok(Some(n)) if n > 0 => {
                changed += 1;
                let verb = if args.dry_run {
                    "would reseal"
                } else {
                    "resealed"
                };
                bar.suspend(|| eprintln!("{verb} {name} ({n} SealedSecret(s))"));
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                bar.suspend(|| eprintln!("error: {e:#}"));
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "{} {changed} file(s); {sealed_total} SealedSecret(s) seen in {} file(s) checked; {failures} failed",
        if args.dry_run {
            "would reseal"
        } else {
            "resealed"
        },
        files.len()
    );
    if failures > 0 {
        bail!("{failures} file(s) could not be resealed; nothing was written to them");
    }
    Ok(())
}

/// `gitseal reseal --cluster`: one ResealRequest per SealedSecret, answered by the agent
/// with new ciphertexts for its newest key and escrow keys; plaintext never leaves the
/// cluster. Whoever RBAC lets create ResealRequests in the agent namespace may re-seal.
struct ClusterResealer {
    rt: tokio::runtime::Runtime,
    api: Api<ResealRequest>,
    namespace: String,
}

impl ClusterResealer {
    fn new(c: &ClusterArgs) -> Result<Self> {
        let rt = runtime()?;
        let client = rt.block_on(client(c))?;
        Ok(ClusterResealer {
            rt,
            api: Api::namespaced(client, &c.agent_namespace),
            namespace: c.agent_namespace.clone(),
        })
    }

    /// Re-seals `sealed` through the agent (to the keys it chooses); whether any
    /// ciphertext changed.
    fn reseal(&mut self, sealed: &mut SealedSecret) -> Result<bool> {
        let data: BTreeMap<String, String> = sealed
            .encrypted_data
            .iter()
            .map(|(k, v)| (k.clone(), B64.encode(v)))
            .collect();
        let request = ResealRequest {
            metadata: ObjectMeta {
                generate_name: Some("reseal-".into()),
                ..Default::default()
            },
            spec: ResealRequestSpec {
                items: vec![ResealItem {
                    name: sealed.name.clone(),
                    namespace: sealed.namespace.clone(),
                    scope: Some(sealed.scope.to_string()),
                    encrypted_data: data.clone(),
                }],
                recipients: Vec::new(),
            },
            status: None,
        };
        let answer = self
            .rt
            .block_on(ask(&self.api, &self.namespace, &request))?;
        if let Some(error) = answer.error {
            bail!("the agent could not re-seal it: {error}");
        }
        let new = answer.results.into_iter().next().unwrap_or_default();
        if new == data {
            return Ok(false);
        }
        let mut decoded = BTreeMap::new();
        for (k, v) in new {
            let ct = B64
                .decode(v.as_bytes())
                .with_context(|| format!("the agent's answer for key {k}"))?;
            decoded.insert(k, ct);
        }
        sealed.encrypted_data = decoded;
        Ok(true)
    }
}

/// Creates the request, waits for the agent's answer in its status, and deletes it.
async fn ask(
    api: &Api<ResealRequest>,
    ns: &str,
    request: &ResealRequest,
) -> Result<gitseal_api::ResealRequestStatus> {
    let created = api
        .create(&PostParams::default(), request)
        .await
        .map_err(|e| api_error(e, "creating a ResealRequest", ns))?;
    let name = created.name_any();
    let answered = |rr: Option<&ResealRequest>| {
        rr.and_then(|r| r.status.as_ref())
            .is_some_and(|s| !s.results.is_empty() || s.error.is_some())
    };
    let waited = tokio::time::timeout(
        ANSWER_TIMEOUT,
        await_condition(api.clone(), &name, answered),
    )
    .await;
    let _ = api.delete(&name, &Default::default()).await;
    match waited {
        Ok(Ok(Some(rr))) => Ok(rr.status.unwrap_or_default()),
        Ok(Ok(None)) => {
            bail!("ResealRequest {name} in namespace {ns} was deleted before the agent answered")
        }
        Ok(Err(e)) => bail!("reading the ResealRequest in namespace {ns}: {e}"),
        Err(_) => bail!(
            "the agent in namespace {ns} did not answer ResealRequest {name} within 60 s; is it running?"
        ),
    }
}
