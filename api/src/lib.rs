//! gitseal-api: the contract between `gitseal` (the CLI) and `gitseal-agent` — the custom
//! resources and their conditions, the well-known labels, annotations and ConfigMap names, and
//! what the agent publishes about its keys. Both binaries import these; neither copies them.
//! The CRD YAML (`deploy/crds.yaml`, `gitseal-agent crds`) is generated from these types.

pub mod conditions;
pub mod gitsync;
pub mod inventory;
pub mod keys;
pub mod names;
pub mod receiver;
pub mod reseal_request;
pub mod sealed_secret;

pub use gitsync::{
    DependencyReference, GitRefSpec, GitSync, GitSyncSpec, GitSyncStatus, InventoryEntry,
    InventorySummary, LocalObjectReference,
};
pub use inventory::{GitSyncInventory, GitSyncInventorySpec, InventoryGroup};
pub use keys::{ObjectRef, PublicKeyInfo, UsageEntry};
pub use receiver::{Receiver, ReceiverSpec, ReceiverStatus, ReceiverType};
pub use reseal_request::{ResealItem, ResealRequest, ResealRequestSpec, ResealRequestStatus};
pub use sealed_secret::{
    SealedSecret, SealedSecretSpec, SealedSecretStatus, SecretTemplate, TemplateMetadata,
};

/// The CRDs as one YAML stream.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [
        GitSync::crd(),
        GitSyncInventory::crd(),
        SealedSecret::crd(),
        ResealRequest::crd(),
        Receiver::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn crds_are_generated() {
        let y = crds_yaml().unwrap();
        assert!(y.contains("name: gitsyncs.gitseal.dev"));
        assert!(y.contains("name: sealedsecrets.gitseal.dev"));
        assert!(y.contains("name: receivers.gitseal.dev"));
        assert!(y.contains("name: gitsyncinventories.gitseal.dev"));
        assert!(y.contains("x-kubernetes-list-map-keys"));
    }

    #[test]
    fn resources_are_in_the_named_group() {
        let want = format!("{}/{}", names::GROUP, names::VERSION);
        assert_eq!(GitSync::api_version(&()), want);
        assert_eq!(SealedSecret::api_version(&()), want);
        assert_eq!(ResealRequest::api_version(&()), want);
        assert_eq!(Receiver::api_version(&()), want);
    }
}
