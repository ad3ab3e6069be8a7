//! The Helm chart: `helm lint`, and `helm template` applied to the real API
//! server with a server-side dry run (schemas, RBAC objects, CRD-backed kinds).

mod support;

use std::process::Command;

use bowchat_testenv::TestEnv;
use support::{install_crd, kubectl, repo_root, Namespace};

fn helm(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(TestEnv::require("BOWCHAT_TEST_HELM", "kube"))
        .args(args)
        .env("KUBECONFIG", support::kubeconfig())
        .output()
        .expect("run helm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chart() -> String {
    repo_root().join("charts/bowchat").display().to_string()
}

#[test]
fn chart_lints() {
    let (ok, out, err) = helm(&["lint", "--strict", &chart()]);
    assert!(ok, "helm lint: {out} {err}");
    // The schema refuses a bad value.
    let (ok, out, err) = helm(&["lint", &chart(), "--set", "roles.gateway.replicas=-1"]);
    assert!(!ok, "a negative replica count must fail the schema");
    assert!(
        out.contains("at '/roles/gateway/replicas': minimum: got -1, want 0"),
        "{out} {err}"
    );
}

#[test]
fn rendered_chart_passes_a_server_side_dry_run() {
    install_crd();
    let ns = Namespace::create("helm");
    for extra in [
        vec![],
        vec![
            "--set",
            "operator.watchNamespaceOnly=false",
            "--set",
            "operator.kafka.bootstrap=kafka:9092",
        ],
        vec!["--set", "cluster.enabled=false"],
    ] {
        let cluster_mode = !extra.contains(&"cluster.enabled=false");
        let chart = chart();
        let mut args = vec![
            "template",
            "demo",
            chart.as_str(),
            "--namespace",
            &ns.name,
            "--include-crds",
        ];
        args.extend(extra.iter().copied());
        let (ok, rendered, err) = helm(&args);
        assert!(ok, "helm template: {err}");
        for kind in [
            "kind: Deployment",
            "kind: Service\n",
            "kind: ConfigMap",
            "kind: Secret",
            "kind: ServiceAccount",
            "kind: CustomResourceDefinition",
        ] {
            assert!(rendered.contains(kind), "{kind} missing from the rendering");
        }
        // Cluster mode (the default) puts every role on PostgreSQL and Kafka
        // and creates the topics before a role starts.
        assert_eq!(
            rendered.contains("{name: BOWCHAT_STORE__KIND, value: postgres}")
                && rendered.contains("{name: BOWCHAT_BUS__KIND, value: kafka}")
                && rendered.contains(r#"args: ["admin", "topics", "ensure""#),
            cluster_mode,
            "cluster settings in the rendering"
        );
        assert_eq!(
            rendered.matches("kind: Deployment").count(),
            4,
            "gateway, auction, chat, operator"
        );
        // Every role opens the signing keys with the one key-encryption key
        // of the release, from a Secret (created with a random key here).
        assert_eq!(
            rendered
                .matches("name: BOWCHAT_AUTH__KEY_ENCRYPTION_KEY")
                .count(),
            3,
            "the KEK in gateway, auction and chat"
        );
        assert!(
            rendered.contains("name: demo-bowchat-kek"),
            "the KEK Secret"
        );
        // By default the operator watches its release's namespace only, so
        // two releases never elect two leaders over the same Auctions.
        let cluster_wide = extra.contains(&"operator.watchNamespaceOnly=false");
        assert_eq!(
            rendered.contains("kind: ClusterRole\n"),
            cluster_wide,
            "a ClusterRole only when asked for"
        );
        let (ok, out, err) = kubectl(
            &["-n", &ns.name, "apply", "--dry-run=server", "-f", "-"],
            Some(&rendered),
        );
        assert!(ok, "server-side dry run: {out}\n{err}");
        assert!(
            out.contains("deployment.apps/demo-bowchat-auction created (server dry run)"),
            "{out}"
        );
        assert!(out.contains("(server dry run)"), "{out}");
        // The Grafana dashboard ships as a ConfigMap holding the tested dashboard file.
        assert!(
            out.contains("configmap/demo-bowchat-grafana-dashboard created (server dry run)"),
            "{out}"
        );
    }
    let dashboard =
        std::fs::read_to_string(repo_root().join("deploy/grafana/bowchat-dashboard.json"))
            .expect("deploy/grafana/bowchat-dashboard.json links to the chart's dashboard");
    let (ok, rendered, err) = helm(&[
        "template",
        "demo",
        &chart(),
        "--show-only",
        "templates/grafana-dashboard.yaml",
    ]);
    assert!(ok, "helm template: {err}");
    let first_line = dashboard
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .trim();
    assert!(
        rendered.contains(first_line),
        "the ConfigMap carries the dashboard"
    );
    // The chart's CRD is the generated one.
    let crd =
        std::fs::read_to_string(repo_root().join("charts/bowchat/crds/auctions.bowchat.io.yaml"))
            .unwrap();
    assert_eq!(crd, bowchat_operator::crd::crd_yaml());
}

/// The chart leaves the auction role's replicas to the operator, which sets
/// them by server-side apply: `managedFields` names it, and a `helm upgrade`
/// keeps what it set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_keeps_the_replicas_the_operator_set() {
    use bowchat_operator::scaler::{apply_replicas, FIELD_MANAGER};
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::Api;

    install_crd();
    let ns = Namespace::create("upgrade");
    let chart = chart();
    let install = |verb: &str, extra: &[&str]| {
        let mut args = vec![
            verb,
            "demo",
            chart.as_str(),
            "--namespace",
            ns.name.as_str(),
            "--skip-crds",
            "--set",
            "cluster.enabled=false",
        ];
        args.extend(extra);
        helm(&args)
    };
    let (ok, out, err) = tokio::task::block_in_place(|| install("install", &[]));
    assert!(ok, "helm install: {out} {err}");
    let deployments: Api<Deployment> = Api::namespaced(support::client().await, &ns.name);
    let name = "demo-bowchat-auction";
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    let installed = deployments.get(name).await.unwrap();
    assert_eq!(replicas(&installed), Some(1), "the API server's default");
    let gateway = deployments.get("demo-bowchat-gateway").await.unwrap();
    assert_eq!(
        replicas(&gateway),
        Some(2),
        "other roles keep the chart's count"
    );

    apply_replicas(&deployments, name, 3).await.unwrap();
    let scaled = deployments.get(name).await.unwrap();
    assert_eq!(replicas(&scaled), Some(3));
    let owner = scaled
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
        .expect("the operator is a field manager");
    let fields = serde_json::to_string(&owner.fields_v1).unwrap();
    assert!(
        fields.contains("f:replicas"),
        "it owns spec.replicas: {fields}"
    );

    // An upgrade that changes other values leaves the replicas alone.
    let (ok, out, err) =
        tokio::task::block_in_place(|| install("upgrade", &["--set", "roles.gateway.replicas=3"]));
    assert!(ok, "helm upgrade: {out} {err}");
    let upgraded = deployments.get(name).await.unwrap();
    assert_eq!(
        replicas(&upgraded),
        Some(3),
        "helm upgrade kept the operator's replicas"
    );
    let gateway = deployments.get("demo-bowchat-gateway").await.unwrap();
    assert_eq!(replicas(&gateway), Some(3), "the upgrade itself applied");
    let (ok, _, err) = tokio::task::block_in_place(|| {
        helm(&["uninstall", "demo", "--namespace", ns.name.as_str()])
    });
    assert!(ok, "helm uninstall: {err}");
}
