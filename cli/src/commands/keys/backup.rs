//! `gitseal keys backup` (every private key, age-encrypted, into a 0600 file) and `gitseal
//! keys restore` (the key Secrets written back; the agent uses them without a restart). Both
//! work on the key Secrets with the caller's own credentials.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use gitseal::key_backup;
use gitseal_api::names::{
    ACTIVE, CLI_FIELD_MANAGER, CREATED_ANNOTATION, IDENTITY_KEY, RETIRED, SEALING_KEY_LABEL,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams};
use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::args::ClusterArgs;
use crate::cluster::{api_error, client};
use crate::io::{read_input, shown, write_private};

pub async fn backup(
    c: &ClusterArgs,
    recipients: &[String],
    output: Option<&Path>,
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
    let ns = &c.agent_namespace;
    let api: Api<Secret> = Api::namespaced(client, ns);
    let list = api
        .list(&ListParams::default().labels(SEALING_KEY_LABEL))
        .await
        .map_err(|e| api_error(e, "listing the key Secrets", ns))?;
    let mut text = Zeroizing::new(format!(
        "# gitseal sealing keys of namespace {ns}, {}\n# restore: gitseal keys restore -i IDENTITY -f THIS-FILE\n",
        humantime::format_rfc3339_seconds(SystemTime::now())
    ));
    let mut n = 0;
    for mut s in list.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        if let Some(why) = gitseal_api::keys::untrusted_key_secret(&s.metadata) {
            if let Some(d) = s.data.as_mut() {
                d.values_mut().for_each(|v| v.0.zeroize());
            }
            eprintln!(
                "warning: Secret {name} is labelled as a sealing key but the agent does not trust it ({why}); skipped"
            );
            continue;
        }
        let state = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SEALING_KEY_LABEL))
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
        key_backup::write_key(&mut text, &name, &state, &created, &identity);
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

pub async fn restore(c: &ClusterArgs, identities: &[PathBuf], file: &Path) -> Result<()> {
    let raw = read_input(file)?;
    let name = shown(file);
    let text: Zeroizing<String> = if raw.starts_with(b"age-encryption.org/v1") {
        if identities.is_empty() {
            bail!("{name} is encrypted; pass -i IDENTITY (the key it was backed up to)");
        }
        let ring = gitseal::read_identity_files(identities)?;
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
    let keys = key_backup::read(&text, &[ACTIVE, RETIRED]).with_context(|| name.clone())?;
    let client = client(c).await?;
    let ns = &c.agent_namespace;
    let api: Api<Secret> = Api::namespaced(client, ns);
    for k in &keys {
        // A Secret of that name that holds another key (one the agent made after the loss,
        // under a name the backup also uses) is never overwritten: the backed-up key goes
        // under its key id instead.
        let name = match api.get_opt(&k.secret).await {
            Ok(Some(mut live)) => {
                let same = live
                    .data
                    .as_ref()
                    .and_then(|d| d.get(IDENTITY_KEY))
                    .is_some_and(|v| {
                        v.0.trim_ascii() == k.identity.expose_secret().trim().as_bytes()
                    });
                if let Some(d) = live.data.as_mut() {
                    d.values_mut().for_each(|v| v.0.zeroize());
                }
                if same {
                    k.secret.clone()
                } else {
                    let id =
                        gitseal::keys::read_identity_file(k.identity.expose_secret().as_bytes())
                            .ok()
                            .and_then(|ks| ks.first().map(|key| key.id().to_string()))
                            .with_context(|| {
                                format!("{name}: Secret {}: not an age identity", k.secret)
                            })?;
                    let renamed = format!("gitseal-key-{id}");
                    eprintln!(
                        "Secret {} holds another key; restoring this one as Secret {renamed}",
                        k.secret
                    );
                    renamed
                }
            }
            Ok(None) => k.secret.clone(),
            Err(e) => return Err(api_error(e, &format!("reading Secret {}", k.secret), ns)),
        };
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(SEALING_KEY_LABEL.to_owned(), k.state.clone())].into()),
                annotations: (!k.created.is_empty())
                    .then(|| [(CREATED_ANNOTATION.to_owned(), k.created.clone())].into()),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            string_data: Some(
                [(
                    IDENTITY_KEY.to_owned(),
                    k.identity.expose_secret().to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let result = api
            .patch(
                &name,
                &PatchParams::apply(CLI_FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await;
        if let Some(d) = secret.string_data.as_mut() {
            d.values_mut().for_each(Zeroize::zeroize);
        }
        if let Ok(mut s) = result {
            if let Some(d) = s.data.as_mut() {
                d.values_mut().for_each(|v| v.0.zeroize());
            }
        } else {
            result.map_err(|e| api_error(e, &format!("writing Secret {name}"), ns))?;
        }
        eprintln!("restored Secret {name} ({})", k.state);
    }
    eprintln!(
        "restored {} key Secret(s) in namespace {ns}; the agent uses them without a restart",
        keys.len()
    );
    Ok(())
}
