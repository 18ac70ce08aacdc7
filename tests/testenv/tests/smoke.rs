//! Smoke tests of the harness against the real control plane: these are the properties the
//! agent's integration tests rely on.

use std::collections::BTreeMap;
use std::time::Duration;

use gitseal_testenv::{KUBERNETES_VERSION, shared};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

const MANAGER: &str = "gitseal-test";

/// Bound for waiting on controllers (GC, service accounts, CRD establishment). Generous: the
/// machine may be busy; this is a readiness bound, not a performance assertion.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it returns `Some`, or panics after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}\n{}",
            shared().await.logs_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

#[tokio::test]
async fn version_is_the_pinned_release() {
    let info = shared()
        .await
        .client()
        .apiserver_version()
        .await
        .expect("GET /version");
    assert_eq!(info.git_version, KUBERNETES_VERSION);
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "36"));
}

#[tokio::test]
async fn server_side_apply_of_configmaps_and_secrets_reads_back() {
    let cp = shared().await;
    let ns = cp.namespace("ssa").await;
    let client = cp.client();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let got = namespaces.get(&ns).await.expect("namespace exists");
    assert_eq!(
        got.metadata
            .labels
            .unwrap_or_default()
            .get("gitseal.dev/test"),
        Some(&"true".to_owned())
    );

    let apply = PatchParams::apply(MANAGER);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "settings" },
        "data": { "mode": "strict" },
    }))
    .expect("ConfigMap");
    cms.patch("settings", &apply, &Patch::Apply(&cm))
        .await
        .expect("apply ConfigMap");
    let got = cms.get("settings").await.expect("get ConfigMap");
    assert_eq!(
        got.data.unwrap_or_default().get("mode").map(String::as_str),
        Some("strict")
    );
    let managers: Vec<_> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert!(managers.iter().any(|m| m == MANAGER), "{managers:?}");

    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("creds".into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(b"not-a-real-secret".to_vec()),
        )])),
        ..Default::default()
    };
    secrets
        .patch("creds", &apply, &Patch::Apply(&secret))
        .await
        .expect("apply Secret");
    let got = secrets.get("creds").await.expect("get Secret");
    let data = got.data.unwrap_or_default();
    assert_eq!(
        data.get("token").map(|b| b.0.as_slice()),
        Some(&b"not-a-real-secret"[..])
    );
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.gitseal.dev
spec:
  group: smoke.gitseal.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size:
                  type: integer
                  minimum: 1
"#;

#[tokio::test]
async fn crd_from_yaml_becomes_established_and_serves_objects() {
    let cp = shared().await;
    let client = cp.client();
    let crd: CustomResourceDefinition = serde_yaml::from_str(WIDGET_CRD).expect("CRD YAML");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "widgets.smoke.gitseal.dev",
        &PatchParams::apply(MANAGER),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        WAIT,
        await_condition(
            crds,
            "widgets.smoke.gitseal.dev",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");

    let ns = cp.namespace("crd").await;
    let gvk = GroupVersionKind::gvk("smoke.gitseal.dev", "v1", "Widget");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &ns, &ar);
    let widget: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "smoke.gitseal.dev/v1",
        "kind": "Widget",
        "metadata": { "name": "w1" },
        "spec": { "size": 3 },
    }))
    .expect("Widget");
    // Right after Established, discovery may lag by a moment: retry until the create goes in.
    eventually("the Widget to be created", || async {
        widgets.create(&PostParams::default(), &widget).await.ok()
    })
    .await;
    let got = widgets.get("w1").await.expect("get Widget");
    assert_eq!(got.data["spec"]["size"], 3);

    // The schema is enforced by the real server.
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "smoke.gitseal.dev/v1",
        "kind": "Widget",
        "metadata": { "name": "w2" },
        "spec": { "size": 0 },
    }))
    .expect("Widget");
    let err = widgets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("size 0 violates minimum");
    assert_eq!(status_code(&err), Some(422), "{err}");
}

#[tokio::test]
async fn rbac_forbids_the_unprivileged_user() {
    let cp = shared().await;
    let ns = cp.namespace("rbac").await;
    let client = cp.unprivileged_client();

    // Authenticated as the named user, not anonymous...
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("self subject review is allowed for every authenticated user");
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    assert_eq!(user.username.as_deref(), Some("gitseal-unprivileged"));

    // ...and forbidden by RBAC.
    let err = Api::<Secret>::namespaced(client, &ns)
        .list(&Default::default())
        .await
        .expect_err("listing secrets must be forbidden");
    assert_eq!(status_code(&err), Some(403), "{err}");
}

#[tokio::test]
async fn deleting_the_owner_garbage_collects_the_owned_secret() {
    let cp = shared().await;
    let ns = cp.namespace("gc").await;
    let client = cp.client();
    let apply = PatchParams::apply(MANAGER);

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner: ConfigMap = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "owner" },
    }))
    .expect("ConfigMap");
    let owner = cms
        .patch("owner", &apply, &Patch::Apply(&owner))
        .await
        .expect("apply owner");
    let uid = owner.metadata.uid.expect("uid");

    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let owned: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "owned",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
            }],
        },
        "stringData": { "k": "v" },
    }))
    .expect("Secret");
    secrets
        .patch("owned", &apply, &Patch::Apply(&owned))
        .await
        .expect("apply owned Secret");

    cms.delete("owner", &DeleteParams::default())
        .await
        .expect("delete owner");
    eventually("the owned Secret to be garbage collected", || async {
        match secrets.get_opt("owned").await {
            Ok(None) => Some(()),
            Ok(Some(_)) => None,
            Err(err) => panic!("get Secret: {err}"),
        }
    })
    .await;
}

#[tokio::test]
async fn service_accounts_get_default_accounts_and_working_tokens() {
    let cp = shared().await;
    let ns = cp.namespace("sa").await;
    let sas: Api<ServiceAccount> = Api::namespaced(cp.client(), &ns);

    // The serviceaccount controller creates `default` in every new namespace.
    eventually("the default ServiceAccount", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;

    // A token signed by the API server's key authenticates as that service account.
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request("default", &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token
        .expect("token");

    let mut config: Config = cp.config();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let as_sa = Client::try_from(config).expect("client with the SA token");
    let review = Api::<SelfSubjectReview>::all(as_sa)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("self subject review as the service account");
    let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
    assert_eq!(
        user.username,
        Some(format!("system:serviceaccount:{ns}:default"))
    );
}
