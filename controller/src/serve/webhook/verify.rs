//! Does a webhook request prove it knows the Receiver's token? One function per provider,
//! each comparing in constant time (`hmac`'s `verify_slice`, `subtle` for GitLab's plain
//! token), and what the request says about itself that counts only once it is proven: its
//! event and the key that recognises a replay of it.
//!
//! Nothing here is logged or returned about a refused request beyond "refused".

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use gitseal_api::ReceiverType;

/// How far a generic request's signed timestamp may be from now, either way.
pub const TIMESTAMP_WINDOW_SECS: u64 = 300;
/// How long a delivery id is remembered (GitHub and GitLab reuse it on redelivery).
pub const DELIVERY_ID_SECS: u64 = 24 * 3600;
/// Longest delivery id kept (GitHub's are UUIDs); a longer one is cut.
const MAX_ID_LEN: usize = 128;

/// What a proven request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A push (or a tag push): start a pass.
    Push,
    /// GitHub's `ping` when a webhook is set up: answered, nothing started.
    Ping,
    /// Any other event: answered, nothing started.
    Other,
}

/// A request whose proof holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proven {
    pub event: Event,
    /// What recognises this same request sent again, and until when (unix seconds) it must
    /// be remembered; `None` when the provider gives nothing to recognise it by.
    pub replay: Option<(String, u64)>,
}

/// The request does not prove it knows the token (or is malformed, or out of its time
/// window): answered 401, without saying which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `sha256=<64 hex>` → the 32 bytes.
fn sha256_signature(value: Option<&str>) -> Result<Vec<u8>, Refused> {
    let hex = value
        .and_then(|v| v.strip_prefix("sha256="))
        .ok_or(Refused)?;
    let sig = unhex(hex).ok_or(Refused)?;
    if sig.len() != 32 {
        return Err(Refused);
    }
    Ok(sig)
}

/// Constant-time check of an HMAC-SHA256 over the concatenation of `parts`.
fn hmac_matches(token: &[u8], parts: &[&[u8]], sig: &[u8]) -> Result<(), Refused> {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).map_err(|_| Refused)?;
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(sig).map_err(|_| Refused)
}

fn delivery(provider: &str, id: Option<&str>, now: u64) -> Option<(String, u64)> {
    let id = id.filter(|i| !i.is_empty())?;
    let id: String = id.chars().take(MAX_ID_LEN).collect();
    Some((format!("{provider}:{id}"), now + DELIVERY_ID_SECS))
}

/// Checks `headers` and `body` against `token` for a Receiver of type `kind`; `now` is the
/// current unix time.
pub fn verify(
    kind: ReceiverType,
    token: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: u64,
) -> Result<Proven, Refused> {
    match kind {
        ReceiverType::Github => {
            let sig = sha256_signature(header(headers, "x-hub-signature-256"))?;
            hmac_matches(token, &[body], &sig)?;
            let event = match header(headers, "x-github-event") {
                Some("push") => Event::Push,
                Some("ping") => Event::Ping,
                _ => Event::Other,
            };
            Ok(Proven {
                event,
                replay: delivery("github", header(headers, "x-github-delivery"), now),
            })
        }
        ReceiverType::Gitlab => {
            // The header holds the token itself: compare digests, so neither the content
            // nor the length of the token shows in the time taken.
            let given = header(headers, "x-gitlab-token").ok_or(Refused)?;
            let same = Sha256::digest(given.as_bytes())
                .as_slice()
                .ct_eq(Sha256::digest(token).as_slice());
            if !bool::from(same) {
                return Err(Refused);
            }
            let event = match header(headers, "x-gitlab-event") {
                Some("Push Hook" | "Tag Push Hook") => Event::Push,
                _ => Event::Other,
            };
            // `Idempotency-Key` stays the same across GitLab's retries of one delivery.
            let id = header(headers, "idempotency-key")
                .or_else(|| header(headers, "x-gitlab-event-uuid"));
            Ok(Proven {
                event,
                replay: delivery("gitlab", id, now),
            })
        }
        ReceiverType::Generic => {
            let sig = sha256_signature(header(headers, "x-signature"))?;
            let Some(ts) = header(headers, "x-signature-timestamp") else {
                hmac_matches(token, &[body], &sig)?;
                return Ok(Proven {
                    event: Event::Push,
                    replay: None,
                });
            };
            let t: u64 = ts.parse().map_err(|_| Refused)?;
            if t.abs_diff(now) > TIMESTAMP_WINDOW_SECS {
                return Err(Refused);
            }
            hmac_matches(token, &[ts.as_bytes(), b".", body], &sig)?;
            // The signature itself names this request; it can only come again inside the
            // window, so it is remembered until the window closes.
            let key = format!("generic:{}", hex(&sig));
            Ok(Proven {
                event: Event::Push,
                replay: Some((key, t + TIMESTAMP_WINDOW_SECS)),
            })
        }
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256=<hex HMAC-SHA256 of parts>`: what a sender puts in `X-Hub-Signature-256` or
/// `X-Signature` (tests and the benchmark's hook sign with it).
pub fn sign(token: &[u8], parts: &[&[u8]]) -> String {
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(token) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"0123456789abcdef-token";
    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;
    const NOW: u64 = 1_800_000_000;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_signature_event_and_delivery() {
        let sig = sign(TOKEN, &[BODY]);
        let h = headers(&[
            ("x-hub-signature-256", &sig),
            ("x-github-event", "push"),
            ("x-github-delivery", "d-1"),
        ]);
        let p = verify(ReceiverType::Github, TOKEN, &h, BODY, NOW).unwrap();
        assert_eq!(p.event, Event::Push);
        assert_eq!(
            p.replay,
            Some(("github:d-1".into(), NOW + DELIVERY_ID_SECS))
        );
        // Upper-case hex is the same signature.
        let upper = format!("sha256={}", sig["sha256=".len()..].to_uppercase());
        let h2 = headers(&[("x-hub-signature-256", &upper), ("x-github-event", "ping")]);
        let p = verify(ReceiverType::Github, TOKEN, &h2, BODY, NOW).unwrap();
        assert_eq!((p.event, p.replay), (Event::Ping, None));
        // Another body, another token, a truncated or missing signature, the sha1 header.
        assert_eq!(
            verify(ReceiverType::Github, TOKEN, &h, b"{}", NOW),
            Err(Refused)
        );
        assert_eq!(
            verify(ReceiverType::Github, b"another-token-of-16", &h, BODY, NOW),
            Err(Refused)
        );
        let short = headers(&[("x-hub-signature-256", &sig[..sig.len() - 2])]);
        assert_eq!(
            verify(ReceiverType::Github, TOKEN, &short, BODY, NOW),
            Err(Refused)
        );
        assert_eq!(
            verify(ReceiverType::Github, TOKEN, &HeaderMap::new(), BODY, NOW),
            Err(Refused)
        );
        let sha1 = headers(&[("x-hub-signature", &sig.replace("sha256", "sha1"))]);
        assert_eq!(
            verify(ReceiverType::Github, TOKEN, &sha1, BODY, NOW),
            Err(Refused)
        );
        let odd = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert_eq!(
            verify(ReceiverType::Github, TOKEN, &odd, BODY, NOW),
            Err(Refused)
        );
    }

    #[test]
    fn gitlab_token_event_and_idempotency_key() {
        let tok = std::str::from_utf8(TOKEN).unwrap();
        let h = headers(&[
            ("x-gitlab-token", tok),
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-event-uuid", "u-1"),
            ("idempotency-key", "k-1"),
        ]);
        let p = verify(ReceiverType::Gitlab, TOKEN, &h, BODY, NOW).unwrap();
        assert_eq!(p.event, Event::Push);
        assert_eq!(p.replay.unwrap().0, "gitlab:k-1");
        let h = headers(&[("x-gitlab-token", tok), ("x-gitlab-event", "Issue Hook")]);
        let p = verify(ReceiverType::Gitlab, TOKEN, &h, BODY, NOW).unwrap();
        assert_eq!((p.event, p.replay), (Event::Other, None));
        for wrong in ["", "0123456789abcdef-toke", "0123456789abcdef-tokenX"] {
            let h = headers(&[("x-gitlab-token", wrong), ("x-gitlab-event", "Push Hook")]);
            assert_eq!(
                verify(ReceiverType::Gitlab, TOKEN, &h, BODY, NOW),
                Err(Refused)
            );
        }
    }

    #[test]
    fn generic_with_and_without_a_signed_timestamp() {
        let h = headers(&[("x-signature", &sign(TOKEN, &[BODY]))]);
        let p = verify(ReceiverType::Generic, TOKEN, &h, BODY, NOW).unwrap();
        assert_eq!((p.event, p.replay), (Event::Push, None));
        // Flux's generic-hmac header name is the same; GitHub's is not accepted here.
        let gh = headers(&[("x-hub-signature-256", &sign(TOKEN, &[BODY]))]);
        assert_eq!(
            verify(ReceiverType::Generic, TOKEN, &gh, BODY, NOW),
            Err(Refused)
        );

        let ts = (NOW - 10).to_string();
        let sig = sign(TOKEN, &[ts.as_bytes(), b".", BODY]);
        let h = headers(&[("x-signature", &sig), ("x-signature-timestamp", &ts)]);
        let p = verify(ReceiverType::Generic, TOKEN, &h, BODY, NOW).unwrap();
        let (key, until) = p.replay.unwrap();
        assert!(key.starts_with("generic:") && until == NOW - 10 + TIMESTAMP_WINDOW_SECS);
        // The timestamp is signed: another one with the same signature fails ...
        let h2 = headers(&[
            ("x-signature", &sig),
            ("x-signature-timestamp", "1800000000"),
        ]);
        assert_eq!(
            verify(ReceiverType::Generic, TOKEN, &h2, BODY, NOW),
            Err(Refused)
        );
        // ... a signature over the body alone does not pass with a timestamp ...
        let h3 = headers(&[
            ("x-signature", &sign(TOKEN, &[BODY])),
            ("x-signature-timestamp", &ts),
        ]);
        assert_eq!(
            verify(ReceiverType::Generic, TOKEN, &h3, BODY, NOW),
            Err(Refused)
        );
        // ... and a request outside the window fails even when signed.
        let old = (NOW - TIMESTAMP_WINDOW_SECS - 1).to_string();
        let h4 = headers(&[
            ("x-signature", &sign(TOKEN, &[old.as_bytes(), b".", BODY])),
            ("x-signature-timestamp", &old),
        ]);
        assert_eq!(
            verify(ReceiverType::Generic, TOKEN, &h4, BODY, NOW),
            Err(Refused)
        );
        let h5 = headers(&[("x-signature", &sig), ("x-signature-timestamp", "soon")]);
        assert_eq!(
            verify(ReceiverType::Generic, TOKEN, &h5, BODY, NOW),
            Err(Refused)
        );
    }
}
