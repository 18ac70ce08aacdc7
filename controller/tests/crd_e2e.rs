//! The GitSync CRD as users meet it through kubectl, against the real API server: invalid
//! specs are refused at `kubectl apply` by the CRD's own validation (patterns and CEL rules
//! generated from the Rust types), naming the field; `kubectl get gitsync` shows Ready,
//! Revision, Age and Message columns (the server's Table output, which kubectl prints); and
//! `kubectl explain gitsync.spec` has a description for every field (the server's OpenAPI v3
//! document, which kubectl explain reads).

use gitseal_testenv::e2e::apply_crds;
use http::Request;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::{Value, json};

fn gitsyncs(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("gitseal.dev", "v1alpha1", "GitSync")),
    )
}

fn gitsync(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("object")
}

#[tokio::test]
async fn invalid_specs_are_refused_by_the_api_server() {
    let cp = gitseal_testenv::shared().await;
    let client = cp.client();
    apply_crds(&client).await;
    let ns = cp.namespace("crd").await;
    let api = gitsyncs(&client, &ns);
    let url = "https://git.example.com/team/cluster.git";
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for (spec, field, says) in [
        (
            json!({"url": url, "ref": {"branch": "main", "tag": "v1"}}),
            "spec.ref",
            "give one of branch, tag or commit, not several",
        ),
        (
            json!({"url": url, "ref": {"tag": "v1", "commit": "0123456789012345678901234567890123456789"}}),
            "spec.ref",
            "give one of branch, tag or commit, not several",
        ),
        (
            json!({"url": url, "ref": {"commit": "abc123"}}),
            "spec.ref.commit",
            "should match",
        ),
        (
            json!({"url": url, "ref": {"branch": ""}}),
            "spec.ref.branch",
            "at least 1 chars long",
        ),
        (
            json!({"url": url, "interval": "soon"}),
            "spec.interval",
            "should match",
        ),
        (
            json!({"url": url, "interval": "1.5m"}),
            "spec.interval",
            "should match",
        ),
        (
            json!({"url": url, "interval": "0s"}),
            "spec.interval",
            "must be at least 1s",
        ),
        (
            json!({"url": url, "interval": "500ms"}),
            "spec.interval",
            "must be at least 1s",
        ),
        (
            json!({"url": url, "timeout": "2 minutes"}),
            "spec.timeout",
            "should match",
        ),
        (
            json!({"url": url, "timeout": "0m"}),
            "spec.timeout",
            "must be at least 1s",
        ),
        (json!({"url": ""}), "spec.url", "at least 1 chars long"),
        (
            json!({"ref": {"branch": "main"}}),
            "spec.url",
            "Required value",
        ),
        (
            json!({"url": url, "targetNamespace": "Not_A_Namespace"}),
            "spec.targetNamespace",
            "should match",
        ),
        (
            json!({"url": url, "secretRef": {}}),
            "spec.secretRef.name",
            "Required value",
        ),
    ] {
        let err = api
            .create(&dry, &gitsync("bad", spec.clone()))
            .await
            .expect_err(&format!("accepted: {spec}"));
        let kube::Error::Api(status) = &err else {
            panic!("{spec}: not an API refusal: {err}")
        };
        assert_eq!(status.code, 422, "{spec}: {status:?}");
        assert!(
            status.message.contains(field) && status.message.contains(says),
            "{spec}: the refusal names {field} and says `{says}`: {}",
            status.message
        );
    }

    // What the rules allow.
    for spec in [
        json!({"url": url}),
        json!({"url": url, "ref": {"tag": "v1.2.0"}, "interval": "1h30m", "timeout": "90s"}),
        json!({"url": url, "ref": {"commit": "0123456789abcdef0123456789abcdef01234567"}}),
        json!({"url": "git@github.com:team/repo.git", "interval": "1s", "targetNamespace": "apps"}),
    ] {
        api.create(&dry, &gitsync("good", spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{spec} refused: {e}"));
    }
}

/// GET `path` from the API server with `accept`, as JSON (`None` when refused).
async fn try_get_json(client: &kube::Client, path: &str, accept: &str) -> Option<Value> {
    let req = Request::get(path)
        .header("Accept", accept)
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.ok()?;
    serde_json::from_str(&text).ok()
}

async fn get_json(client: &kube::Client, path: &str, accept: &str) -> Value {
    try_get_json(client, path, accept)
        .await
        .unwrap_or_else(|| panic!("GET {path} failed"))
}

#[tokio::test]
async fn kubectl_get_shows_ready_revision_age_and_message() {
    let cp = gitseal_testenv::shared().await;
    let client = cp.client();
    apply_crds(&client).await;
    let ns = cp.namespace("crd-columns").await;
    let api = gitsyncs(&client, &ns);
    api.create(
        &PostParams::default(),
        &gitsync("apps", json!({"url": "https://git.example.com/r.git"})),
    )
    .await
    .expect("create");
    api.patch_status(
        "apps",
        &PatchParams::apply("gitseal-test"),
        &Patch::Apply(json!({
            "apiVersion": "gitseal.dev/v1alpha1", "kind": "GitSync",
            "status": {
                "lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567",
                "conditions": [{"type": "Ready", "status": "False", "reason": "FetchFailed",
                                "message": "fetch: the server is down",
                                "lastTransitionTime": "2026-11-27T00:00:00Z"}]
            }
        })),
    )
    .await
    .expect("status");
    // What `kubectl get gitsync` asks for and prints.
    let table = get_json(
        &client,
        &format!("/apis/gitseal.dev/v1alpha1/namespaces/{ns}/gitsyncs"),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(columns, ["Name", "Ready", "Revision", "Age", "Message"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "apps");
    assert_eq!(cells[1], "False");
    assert_eq!(
        cells[2],
        "main@sha1:0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(cells[4], "fetch: the server is down");
}

/// Every property below `schema` that has no description, as dotted paths.
fn undocumented(schema: &Value, at: &str, out: &mut Vec<String>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let path = format!("{at}.{name}");
        // The OpenAPI v3 document wraps referenced and defaulted properties in allOf.
        let prop = prop
            .get("allOf")
            .and_then(|a| a.get(0))
            .map_or(prop, |inner| inner);
        let described = prop
            .get("description")
            .or_else(|| props[name].get("description"))
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if !described {
            out.push(path.clone());
        }
        undocumented(prop, &path, out);
        if let Some(items) = prop.get("items") {
            undocumented(items, &format!("{path}[]"), out);
        }
    }
}

#[tokio::test]
async fn kubectl_explain_documents_every_spec_field() {
    let cp = gitseal_testenv::shared().await;
    let client = cp.client();
    apply_crds(&client).await;
    // The document `kubectl explain` reads (the server publishes a new CRD within seconds).
    let spec = gitseal_testenv::e2e::wait_for("GitSync in the OpenAPI v3 document", || {
        let client = client.clone();
        async move {
            let doc = try_get_json(
                &client,
                "/openapi/v3/apis/gitseal.dev/v1alpha1",
                "application/json",
            )
            .await?;
            doc["components"]["schemas"]["dev.gitseal.v1alpha1.GitSync"]["properties"]["spec"]
                .as_object()
                .map(|_| doc["components"]["schemas"]["dev.gitseal.v1alpha1.GitSync"].clone())
        }
    })
    .await;
    let mut missing = Vec::new();
    undocumented(&spec, "gitsync", &mut missing);
    missing.retain(|p| p.starts_with("gitsync.spec") || p == "gitsync.status");
    assert!(
        missing.is_empty(),
        "fields `kubectl explain` shows without a description: {missing:?}"
    );
    let text = spec.to_string();
    for field in ["url", "ref", "interval", "timeout", "secretRef"] {
        assert!(
            spec["properties"]["spec"]["properties"]
                .get(field)
                .is_some(),
            "spec.{field} missing from the published schema: {text}"
        );
    }
}
