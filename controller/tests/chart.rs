//! The Helm chart (`charts/gitseal`) installs what `deploy/` installs. With default values it
//! renders the same objects as `kustomize build deploy/`, object by object, once Helm's own
//! bookkeeping labels are set aside (and less the Namespace, which Helm users create first:
//! a Helm-owned namespace would take the sealing keys with it on `helm uninstall`). `helm lint`
//! passes and refuses bad values naming them, every flag the chart can render is a flag the
//! agent has, and the output of a non-default install passes a server-side dry-run on the
//! real API server.
//!
//! helm and kustomize are built from the Go module proxy by `scripts/peers.sh` (cached).
//! When a test here fails after a change to `deploy/`, change `charts/gitseal` the same way.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use clap::Parser as _;
use gitseal_agent::sync::object::Object;
use gitseal_agent::sync::render::parse;
use gitseal_testenv::peers::peer_tool;
use serde_json::Value;
use support::apply_as_install;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/gitseal");
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
/// The namespace `deploy/` installs into.
const DEPLOY_NAMESPACE: &str = "gitseal-system";

/// Labels Helm charts put on every object for Helm's own bookkeeping; `deploy/` has no use
/// for them, so the comparison sets them aside.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        // helm keeps caches and config under HOME; keep them out of the user's.
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("gitseal-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("gitseal-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("gitseal-helm-data"),
        )
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn stdout(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `helm template gitseal charts/gitseal --namespace NS --include-crds` with `--set` values.
fn helm_template(namespace: &str, sets: &[&str]) -> Vec<Object> {
    let mut args = vec![
        "template",
        "gitseal",
        CHART,
        "--namespace",
        namespace,
        "--include-crds",
        // The version the dry-run below runs against.
        "--kube-version",
        gitseal_testenv::KUBERNETES_VERSION,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    let text = stdout(&run(&peer_tool("helm"), &args), "helm template");
    parse("helm template charts/gitseal", &text).expect("helm template output parses")
}

fn kustomize_deploy() -> Vec<Object> {
    let text = stdout(
        &run(&peer_tool("kustomize"), &["build", DEPLOY]),
        "kustomize build deploy",
    );
    parse("kustomize build deploy", &text).expect("deploy/ parses")
}

/// `Kind group/version namespace/name`.
fn key(o: &Object) -> String {
    format!(
        "{} {} {}/{}",
        o.kind(),
        o.api_version(),
        o.namespace().unwrap_or_default(),
        o.name()
    )
}

/// The object without Helm's bookkeeping labels (an emptied `labels` goes too).
fn normalised(o: &Object) -> Value {
    let mut v = o.value().clone();
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        let Some(parent) = v.pointer_mut(pointer.rsplit_once('/').map_or("", |p| p.0)) else {
            continue;
        };
        let Some(map) = parent.as_object_mut() else {
            continue;
        };
        if let Some(Value::Object(labels)) = map.get_mut("labels") {
            for l in HELM_LABELS {
                labels.remove(l);
            }
            if labels.is_empty() {
                map.remove("labels");
            }
        }
    }
    v
}

/// The first place where `a` and `b` differ, as a JSON pointer with both values.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let path = format!("{at}/{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &path),
                    (p, q) => Some(format!("{path}: {} vs {}", shown(p), shown(q))),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}")))
            .or_else(|| {
                let n = x.len().min(y.len());
                (x.len() != y.len())
                    .then(|| format!("{at}/{n}: {} vs {}", shown(x.get(n)), shown(y.get(n))))
            }),
        // YAML `0.0` and helm's re-rendered `0` are the same number to the API server.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{at}: {} vs {}", shown(Some(a)), shown(Some(b)))),
    }
}

fn shown(v: Option<&Value>) -> String {
    v.map_or("(absent)".into(), |v| {
        let s = v.to_string();
        if s.len() > 300 {
            format!("{}…", &s[..300])
        } else {
            s
        }
    })
}

fn by_key(objects: &[Object]) -> BTreeMap<String, &Object> {
    let mut map = BTreeMap::new();
    for o in objects {
        assert!(map.insert(key(o), o).is_none(), "{} rendered twice", key(o));
    }
    map
}

#[test]
fn default_values_render_what_deploy_holds() {
    let deploy = kustomize_deploy();
    let chart = helm_template(DEPLOY_NAMESPACE, &[]);
    let (deploy, chart) = (by_key(&deploy), by_key(&chart));
    let mut problems = Vec::new();
    for (k, d) in &deploy {
        if d.kind() == "Namespace" && d.name() == DEPLOY_NAMESPACE {
            // Helm users create it (README); Helm owning it would delete the keys with it.
            assert!(
                !chart.contains_key(k),
                "the chart must not own the namespace"
            );
            continue;
        }
        match chart.get(k) {
            None => problems.push(format!("{k}: in deploy/, not rendered by the chart")),
            Some(c) => {
                if let Some(diff) = first_difference(&normalised(d), &normalised(c), "") {
                    problems.push(format!("{k}: deploy/ vs chart at {diff}"));
                }
            }
        }
    }
    for k in chart.keys() {
        if !deploy.contains_key(k) {
            problems.push(format!(
                "{k}: rendered by the chart with default values, not in deploy/"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "charts/gitseal (default values) and deploy/ differ; change the chart's templates or \
         values.yaml to follow deploy/:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let chart = std::fs::read_to_string(format!("{CHART}/crds/crds.yaml")).expect("chart crds");
    let generated = gitseal_api::crds_yaml().expect("generate");
    assert!(
        chart == generated,
        "charts/gitseal/crds/crds.yaml is stale: run `cargo run -p gitseal-agent -- crds > \
         charts/gitseal/crds/crds.yaml` (and the same into deploy/crds.yaml)"
    );
}

/// The `run` arguments of the agent container of a rendered Deployment.
fn agent_args(objects: &[Object]) -> Vec<String> {
    let d = objects
        .iter()
        .find(|o| o.kind() == "Deployment")
        .expect("a Deployment");
    d.value()
        .pointer("/spec/template/spec/containers/0/args")
        .and_then(Value::as_array)
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_owned())
        .collect()
}

fn parses_as_agent_flags(args: &[String], what: &str) -> gitseal_agent::args::Cli {
    gitseal_agent::args::Cli::try_parse_from(
        std::iter::once("gitseal-agent".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("{what}: the agent refuses its arguments {args:?}: {e}"))
}

/// Values that turn every optional part of the chart on.
fn every_option(escrow: &str) -> Vec<String> {
    [
        "replicas=3",
        "podDisruptionBudget.minAvailable=2",
        "defaultServiceAccount=gitsync-tenant",
        "watchNamespace=apps",
        "keyRenewal=48h",
        "log.level=debug",
        "log.format=text",
        "reconciler.workloads=false",
        "reconciler.extraRules[0].apiGroups[0]=example.com",
        "reconciler.extraRules[0].resources[0]=widgets",
        "reconciler.extraRules[0].verbs[0]=get",
        "reconciler.extraRules[0].verbs[1]=patch",
        "image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "image.pullPolicy=Always",
        "concurrency=4",
        "reconcileConcurrency=16",
        "allowRemoteBases=true",
        "leaderElection.leaseDuration=15s",
        "leaderElection.renewDeadline=10s",
        "limits.maxFileBytes=16Mi",
        "limits.maxFileDocuments=2000",
        "limits.maxFileNodes=3000000",
        "limits.maxDepth=100",
        "limits.maxPassBytes=268435456",
        "limits.maxPassNodes=9000000",
        "extraArgs[0]=--max-pass-documents=5000",
        "podLabels.team=platform",
        "nodeSelector.kubernetes\\.io/os=linux",
        "priorityClassName=system-cluster-critical",
        "webhook.enabled=false",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("escrowRecipients[0]={escrow}")])
    .collect()
}

#[test]
fn every_flag_the_chart_renders_is_an_agent_flag() {
    let escrow = gitseal::SecretKey::generate().public().to_string();
    let sets = every_option(&escrow);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objects = helm_template("gitseal", &sets);
    let args = agent_args(&objects);
    let gitseal_agent::args::Command::Run(run) = parses_as_agent_flags(&args, "chart").command
    else {
        panic!("the chart runs the agent's `run`: {args:?}")
    };
    assert_eq!(run.watch_namespace.as_deref(), Some("apps"));
    assert_eq!(run.key_renewal, std::time::Duration::from_secs(48 * 3600));
    assert_eq!(run.escrow_recipients, vec![escrow]);
    assert_eq!(run.concurrency, 4);
    assert_eq!(run.reconcile_concurrency, 16);
    assert!(run.allow_remote_bases);
    assert_eq!(run.lease_duration, std::time::Duration::from_secs(15));
    assert_eq!(run.lease_renew_deadline, std::time::Duration::from_secs(10));
    let l = &run.limits;
    assert_eq!(
        (
            l.max_file_bytes,
            l.max_file_documents,
            l.max_file_nodes,
            l.max_depth,
            l.max_pass_bytes,
            l.max_pass_documents,
            l.max_pass_nodes
        ),
        (16 << 20, 2000, 3_000_000, 100, 256 << 20, 5000, 9_000_000)
    );
    // The webhook's body limit, only with the webhook on (the flag requires its address).
    let args = agent_args(&helm_template("gitseal", &["webhook.maxBody=2097152"]));
    let gitseal_agent::args::Command::Run(with_webhook) =
        parses_as_agent_flags(&args, "chart with webhook.maxBody").command
    else {
        panic!("the chart runs the agent's `run`: {args:?}")
    };
    assert_eq!(with_webhook.webhook_max_body, 2_097_152);
    assert_eq!(
        run.default_service_account.as_deref(),
        Some("gitsync-tenant")
    );
    // deploy/ too.
    parses_as_agent_flags(&agent_args(&kustomize_deploy()), "deploy/");

    let kinds: Vec<String> = objects.iter().map(key).collect();
    let has = |k: &str| kinds.iter().any(|x| x.starts_with(k));
    assert!(
        has("PodDisruptionBudget policy/v1 gitseal/gitseal-agent"),
        "{kinds:?}"
    );
    assert!(has(
        "ClusterRole rbac.authorization.k8s.io/v1 /gitseal-agent-reconciler-extra"
    ));
    assert!(!has(
        "ClusterRole rbac.authorization.k8s.io/v1 /gitseal-agent-reconciler-workloads"
    ));
    let d = objects
        .iter()
        .find(|o| o.kind() == "Deployment")
        .expect("deployment");
    assert_eq!(d.value()["spec"]["replicas"], 3);
    let pdb = objects
        .iter()
        .find(|o| o.kind() == "PodDisruptionBudget")
        .expect("pdb");
    assert_eq!(pdb.value()["spec"]["minAvailable"], 2);
    assert_eq!(
        d.value()["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/gitseal/gitseal-agent@sha256:0000000000000000000000000000000000000000000000000000000000000000"
    );
    assert_eq!(
        d.value()["spec"]["template"]["metadata"]["labels"]["team"],
        "platform"
    );

    // The ServiceMonitor (its CRD is the Prometheus Operator's, absent from the test control
    // plane) scrapes the Service's metrics port.
    let with_sm = helm_template("gitseal", &["serviceMonitor.enabled=true"]);
    let sm = with_sm
        .iter()
        .find(|o| o.kind() == "ServiceMonitor")
        .expect("a ServiceMonitor");
    let svc = with_sm
        .iter()
        .find(|o| o.kind() == "Service")
        .expect("service");
    assert_eq!(
        sm.value()["spec"]["selector"]["matchLabels"],
        svc.value()["spec"]["selector"]
    );
    assert_eq!(
        sm.value()["spec"]["endpoints"][0]["port"],
        svc.value()["spec"]["ports"][0]["name"]
    );
}

#[test]
fn helm_lint_passes_and_refuses_bad_values() {
    let helm = peer_tool("helm");
    let kube = gitseal_testenv::KUBERNETES_VERSION;
    stdout(
        &run(&helm, &["lint", "--strict", "--kube-version", kube, CHART]),
        "helm lint --strict",
    );
    // Refusals name the value as a JSON pointer (`/log/level`).
    for (set, names) in [
        ("replicas=0", "/replicas"),
        ("log.level=loud", "/log/level"),
        ("log.format=xml", "/log/format"),
        ("keyRenewal=soon", "/keyRenewal"),
        ("watchNamespace=Not_A_Namespace", "/watchNamespace"),
        ("defaultServiceAccount=Not A Name", "/defaultServiceAccount"),
        ("escrowRecipients[0]=age1nope", "/escrowRecipients/0"),
        ("image.digest=latest", "/image/digest"),
        ("concurrency=0", "/concurrency"),
        ("reconcileConcurrency=0", "/reconcileConcurrency"),
        ("reconcileConcurrency=257", "/reconcileConcurrency"),
        (
            "leaderElection.leaseDuration=soon",
            "/leaderElection/leaseDuration",
        ),
        ("limits.maxFileBytes=8Xi", "/limits/maxFileBytes"),
        ("limits.maxDepth=-1", "/limits/maxDepth"),
        ("webhook.maxBody=0", "/webhook/maxBody"),
        ("limits.maxDepht=3", "maxDepht"),
        // A misspelt value is an error, not silently ignored.
        ("watchNamespaces=apps", "watchNamespaces"),
        ("reconciler.extraRules[0].apiGroups[0]=x", "verbs"),
    ] {
        for cmd in ["lint", "template"] {
            let out = run(&helm, &[cmd, CHART, "--kube-version", kube, "--set", set]);
            let err = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(!out.status.success(), "helm {cmd} --set {set} passed");
            assert!(
                err.contains(names),
                "helm {cmd} --set {set}: the error names {names}: {err}"
            );
        }
    }
}

#[tokio::test]
async fn chart_output_passes_server_side_dry_run() {
    let cp = gitseal_testenv::shared().await;
    let ns = cp.namespace("chart").await;
    let client = cp.client();
    // Default values, then every option at once.
    apply_as_install(&client, &helm_template(&ns, &[]), "gitseal-chart-test").await;
    let escrow = gitseal::SecretKey::generate().public().to_string();
    let sets = every_option(&escrow);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let objects = helm_template(&ns, &sets);
    assert!(objects.iter().all(|o| o.kind() != "Namespace"));
    apply_as_install(&client, &objects, "gitseal-chart-test").await;
}
