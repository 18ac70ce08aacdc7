//! Whole-object operations: sealing a Secret into a SealedSecret, merging keys into an
//! existing one, opening one into a Secret and re-sealing for new recipients.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use secrecy::{ExposeSecret, SecretSlice};

use crate::format::{self, OpenError, SealError};
use crate::keys::{Keyring, PublicKey};
use crate::manifest::{MAX_VALUES_PER_SEALED_SECRET, SealedSecret, Secret, Template};
use crate::scope::{Binding, Scope};

/// A problem with one field of the input object.
#[derive(Debug, thiserror::Error)]
#[error("{problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn field_err(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Where and how to seal.
#[derive(Debug, Clone, Default)]
pub struct SealTarget<'a> {
    /// Overrides the Secret's own scope annotation; strict when neither is set.
    pub scope: Option<Scope>,
    /// Overrides `metadata.name`.
    pub name: Option<&'a str>,
    /// Fills in or must agree with `metadata.namespace`.
    pub namespace: Option<&'a str>,
}

/// Seals every key of `secret` into a new SealedSecret.
pub fn seal_secret(
    secret: &Secret,
    recipients: &[PublicKey],
    target: &SealTarget<'_>,
) -> Result<SealedSecret, FieldError> {
    let mut annotations = secret.annotations.clone();
    let own_scope = annotations.remove(Scope::ANNOTATION);
    let scope = match (target.scope, own_scope) {
        (Some(s), _) => s,
        (None, Some(s)) => s.parse().map_err(|e: crate::scope::UnknownScope| {
            field_err(
                format!("metadata.annotations.{}", Scope::ANNOTATION),
                e.to_string(),
            )
        })?,
        (None, None) => Scope::Strict,
    };
    let name = target
        .name
        .or(secret.name.as_deref())
        .ok_or_else(|| field_err("metadata.name", "is required; add it or pass --name"))?;
    let namespace = match (target.namespace, secret.namespace.as_deref()) {
        (Some(flag), Some(own)) if flag != own => {
            return Err(field_err(
                "metadata.namespace",
                format!("is {own} but --namespace says {flag}; drop one of them"),
            ));
        }
        (flag, own) => flag.or(own),
    };
    if namespace.is_none() && scope != Scope::Cluster {
        return Err(field_err(
            "metadata.namespace",
            format!("is required for scope {scope}; add it or pass --namespace"),
        ));
    }
    let mut sealed = SealedSecret {
        name: name.to_owned(),
        namespace: namespace.map(str::to_owned),
        scope,
        labels: Default::default(),
        annotations: Default::default(),
        encrypted_data: BTreeMap::new(),
        template: Template {
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            labels: secret.labels.clone(),
            annotations,
        },
    };
    merge(&mut sealed, &secret.data, recipients)?;
    Ok(sealed)
}

/// The binding of `key` in `sealed`.
pub fn binding_of(sealed: &SealedSecret, key: &str) -> Result<Binding, FieldError> {
    Binding::new(
        sealed.scope,
        sealed.namespace.as_deref(),
        Some(&sealed.name),
        key,
    )
    .map_err(|e| field_err(format!("spec.encryptedData.{key}"), e.to_string()))
}

/// Seals `data` into `sealed`, adding or replacing those keys and keeping the others.
pub fn merge(
    sealed: &mut SealedSecret,
    data: &BTreeMap<String, SecretSlice<u8>>,
    recipients: &[PublicKey],
) -> Result<(), FieldError> {
    let total = sealed.encrypted_data.len()
        + data
            .keys()
            .filter(|k| !sealed.encrypted_data.contains_key(*k))
            .count();
    if total > MAX_VALUES_PER_SEALED_SECRET {
        return Err(field_err(
            "data",
            format!(
                "{total} keys; a SealedSecret holds at most {MAX_VALUES_PER_SEALED_SECRET} values (split the Secret)"
            ),
        ));
    }
    // Every value gets its own age file (one X25519 operation per recipient): spread
    // them over the cores.
    let sealed_ref = &*sealed;
    let cts: Vec<(String, Vec<u8>)> = data
        .par_iter()
        .map(|(key, value)| {
            let binding = binding_of(sealed_ref, key)?;
            let ct =
                format::seal(value.expose_secret(), recipients, &binding).map_err(|e| match e {
                    SealError::NoRecipients | SealError::TooManyRecipients(_) => {
                        field_err("", e.to_string())
                    }
                    _ => field_err(format!("data.{key}"), e.to_string()),
                })?;
            Ok((key.clone(), ct))
        })
        .collect::<Result<_, FieldError>>()?;
    sealed.encrypted_data.extend(cts);
    Ok(())
}

/// A key that failed to open, and why.
#[derive(Debug, thiserror::Error)]
#[error("spec.encryptedData.{key}: {error}")]
pub struct UnsealError {
    pub key: String,
    pub error: OpenError,
}

/// Opens every value of `sealed` into a Secret. `namespace` is where the Secret will live
/// when the manifest does not say (the agent's target namespace); it is checked against the
/// scope like any other part of the binding. The values are opened in parallel.
pub fn unseal(
    sealed: &SealedSecret,
    ring: &Keyring,
    namespace: Option<&str>,
) -> Result<Secret, UnsealError> {
    unseal_many([(sealed, namespace)], ring)
        .pop()
        .expect("one result per SealedSecret")
}

/// Opens many SealedSecrets at once: every value of every one is a separate job spread
/// over the cores (rayon's pool), so a few large SealedSecrets and many small ones both
/// keep every core busy. Each item is `(sealed, namespace)` as for [`unseal`]; the
/// results come back in the same order. Within one SealedSecret the error reported is
/// that of its first failing key (in key order), whatever order the jobs ran in; once a key
/// has failed, the keys after it are not opened (a SealedSecret of thousands of values that
/// all fail costs about one failed value per core, not thousands).
pub fn unseal_many<'a>(
    items: impl IntoIterator<Item = (&'a SealedSecret, Option<&'a str>)>,
    ring: &Keyring,
) -> Vec<Result<Secret, UnsealError>> {
    let items: Vec<(&SealedSecret, Option<&str>)> = items
        .into_iter()
        .map(|(s, ns)| (s, s.namespace.as_deref().or(ns)))
        .collect();
    // (item, position of the key within the item, key, ciphertext)
    let jobs: Vec<(usize, usize, &String, &Vec<u8>)> = items
        .iter()
        .enumerate()
        .flat_map(|(i, (s, _))| {
            s.encrypted_data
                .iter()
                .enumerate()
                .map(move |(j, (k, ct))| (i, j, k, ct))
        })
        .collect();
    // Per item, the position of its first failing key found so far: keys after it are
    // skipped, keys before it still run, so the error reported stays the first in key order.
    let first_failure: Vec<AtomicUsize> =
        items.iter().map(|_| AtomicUsize::new(usize::MAX)).collect();
    let opened: Vec<Option<Result<SecretSlice<u8>, OpenError>>> = jobs
        .par_iter()
        .map(|&(i, j, key, ct)| {
            if first_failure[i].load(Ordering::Relaxed) < j {
                return None;
            }
            let (sealed, ns) = items[i];
            let result = Binding::new(sealed.scope, ns, Some(&sealed.name), key)
                .map_err(|e| OpenError::Malformed(binding_problem(&e)))
                .and_then(|expected| format::open(ct, ring, &expected));
            if result.is_err() {
                first_failure[i].fetch_min(j, Ordering::Relaxed);
            }
            Some(result)
        })
        .collect();
    let mut out: Vec<Result<BTreeMap<String, SecretSlice<u8>>, UnsealError>> =
        items.iter().map(|_| Ok(BTreeMap::new())).collect();
    for ((i, _, key, _), result) in jobs.into_iter().zip(opened) {
        let Ok(data) = &mut out[i] else { continue };
        // Skipped: a key before it failed, and that error is reported.
        let Some(result) = result else { continue };
        match result {
            Ok(value) => {
                data.insert(key.clone(), value);
            }
            // Dropping `data` zeroizes the values already opened.
            Err(error) => {
                out[i] = Err(UnsealError {
                    key: key.clone(),
                    error,
                })
            }
        }
    }
    out.into_iter()
        .zip(items)
        .map(|(data, (sealed, ns))| {
            Ok(Secret {
                name: Some(sealed.name.clone()),
                namespace: ns.map(str::to_owned),
                type_: sealed.template.type_.clone(),
                immutable: sealed.template.immutable,
                labels: sealed.template.labels.clone(),
                annotations: sealed.template.annotations.clone(),
                data: data?,
            })
        })
        .collect()
}

fn binding_problem(e: &crate::scope::BindingError) -> &'static str {
    match e {
        crate::scope::BindingError::MissingNamespace { .. } => "the SealedSecret has no namespace",
        _ => "the SealedSecret's name or key is invalid",
    }
}

/// Opens every value with `ring` and seals it again to `recipients`, keeping the binding.
/// Returns `false` when every value was already sealed to exactly those recipients (then
/// nothing is re-encrypted).
pub fn reseal(
    sealed: &mut SealedSecret,
    ring: &Keyring,
    recipients: &[PublicKey],
) -> Result<bool, UnsealError> {
    let want: Vec<_> = {
        let mut seen = std::collections::HashSet::new();
        recipients
            .iter()
            .filter(|r| seen.insert(r.id()))
            .map(|r| r.id())
            .collect()
    };
    let up_to_date = sealed.encrypted_data.values().all(|ct| {
        format::inspect(ct).is_ok_and(|h| {
            let mut have = h.key_ids.clone();
            let mut w = want.clone();
            have.sort();
            w.sort();
            have == w
        })
    });
    if up_to_date {
        return Ok(false);
    }
    let secret = unseal(sealed, ring, None)?;
    merge(sealed, &secret.data, recipients).map_err(|e| UnsealError {
        key: e.field.clone(),
        error: OpenError::Malformed("could not seal again"),
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SecretKey;

    fn secret(ns: Option<&str>) -> Secret {
        let mut s = Secret {
            name: Some("db".into()),
            namespace: ns.map(str::to_owned),
            ..Default::default()
        };
        s.data
            .insert("pw".into(), SecretSlice::from(b"hunter2".to_vec()));
        s
    }

    #[test]
    fn seal_unseal_reseal() {
        let (a, b) = (SecretKey::generate(), SecretKey::generate());
        let mut sealed = seal_secret(
            &secret(Some("prod")),
            &[a.public().clone()],
            &SealTarget::default(),
        )
        .unwrap();
        assert_eq!(sealed.scope, Scope::Strict);
        let ring_a = Keyring::from_iter([a.clone()]);
        let out = unseal(&sealed, &ring_a, None).unwrap();
        assert_eq!(out.data["pw"].expose_secret(), b"hunter2");
        assert!(!reseal(&mut sealed, &ring_a, &[a.public().clone()]).unwrap());
        assert!(reseal(&mut sealed, &ring_a, &[b.public().clone()]).unwrap());
        assert!(unseal(&sealed, &ring_a, None).is_err());
        let ring_b = Keyring::from_iter([b]);
        assert_eq!(
            unseal(&sealed, &ring_b, None).unwrap().data["pw"].expose_secret(),
            b"hunter2"
        );
    }

    #[test]
    fn the_first_failing_key_in_order_is_reported() {
        let (a, b) = (SecretKey::generate(), SecretKey::generate());
        let mut s = secret(Some("prod"));
        for i in 0..200 {
            s.data
                .insert(format!("k{i:03}"), SecretSlice::from(b"v".to_vec()));
        }
        let sealed = seal_secret(&s, &[b.public().clone()], &SealTarget::default()).unwrap();
        let ring_a = Keyring::from_iter([a]);
        for _ in 0..5 {
            let e = unseal(&sealed, &ring_a, None).unwrap_err();
            assert_eq!(e.key, "k000");
            assert!(matches!(e.error, OpenError::NoMatchingKey { .. }), "{e}");
        }
    }

    #[test]
    fn namespace_rules() {
        let a = SecretKey::generate();
        let r = [a.public().clone()];
        let e = seal_secret(&secret(None), &r, &SealTarget::default()).unwrap_err();
        assert_eq!(e.field, "metadata.namespace");
        let t = SealTarget {
            namespace: Some("dev"),
            ..Default::default()
        };
        let e = seal_secret(&secret(Some("prod")), &r, &t).unwrap_err();
        assert!(e.problem.contains("--namespace says dev"));
        let t = SealTarget {
            scope: Some(Scope::Cluster),
            ..Default::default()
        };
        let sealed = seal_secret(&secret(None), &r, &t).unwrap();
        let ring = Keyring::from_iter([a]);
        assert!(unseal(&sealed, &ring, Some("anywhere")).is_ok());
    }
}
