//! How the agent words a Kubernetes API error, everywhere (status, Events, logs): the server's
//! message and code, never a request body (which could hold a Secret).

/// Message of a kube error without request bodies, bounded in length.
pub fn kube_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => {
            let s = other.to_string();
            s.chars().take(300).collect()
        }
    }
}

/// Whether retrying the same request later may succeed by itself: the server failed (5xx),
/// asked to slow down (429), or was not reached or did not answer (connection errors,
/// timeouts). Refusals (4xx: forbidden, invalid, not found, conflict) are not.
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("m", "r")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn server_failures_are_transient_and_refusals_are_not() {
        for code in [500, 503, 504, 429] {
            assert!(is_transient(&api(code)), "{code}");
        }
        for code in [400, 403, 404, 409, 422] {
            assert!(!is_transient(&api(code)), "{code}");
        }
        assert!(is_transient(&kube::Error::Service(
            "connection refused".into()
        )));
    }
}
