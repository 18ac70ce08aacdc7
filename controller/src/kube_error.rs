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
