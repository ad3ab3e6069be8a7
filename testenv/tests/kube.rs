//! Smoke test of the `kube` component: the API server `scripts/testenv up etcd kube`
//! started stores and validates real objects, and the kubectl and helm built with
//! it talk to it.
//!
//! There is no controller manager, so a deleted namespace would stay `Terminating`
//! forever; the test deletes what it created itself and then finalizes its
//! namespace, as the namespace controller would.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use bowchat_testenv::TestEnv;
use serde_json::{json, Value};

/// kubectl against the test server.
struct Kubectl {
    bin: String,
    kubeconfig: String,
}

impl Kubectl {
    fn from_env() -> Self {
        Self {
            bin: TestEnv::require("BOWCHAT_TEST_KUBECTL", "kube"),
            kubeconfig: TestEnv::require("BOWCHAT_TEST_KUBECONFIG", "kube"),
        }
    }

    /// Runs kubectl with `stdin` (if any) and returns what it did, success or not.
    fn output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin));
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(text.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("wait for kubectl")
    }

    /// Runs kubectl and returns its stdout; panics with stderr when it fails.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.output(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all, None)).expect("kubectl -o json prints JSON")
    }
}

/// What one run created; [`Cleanup::run`] deletes it, also when the test panics.
struct Cleanup<'a> {
    kubectl: &'a Kubectl,
    namespace: String,
    crd: String,
    done: bool,
}

impl Cleanup<'_> {
    fn run(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let k = self.kubectl;
        let ns = self.namespace.as_str();
        // Contents first: no namespace controller will delete them later.
        k.output(
            &["delete", "deployments", "--all", "-n", ns, "--wait=false"],
            None,
        );
        // Deleting the CRD deletes its objects (the apiserver's own finalizer).
        k.output(
            &[
                "delete",
                "crd",
                &self.crd,
                "--ignore-not-found",
                "--wait=true",
            ],
            None,
        );
        k.output(&["delete", "namespace", ns, "--wait=false"], None);
        let finalize = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": ns },
            "spec": { "finalizers": [] }
        });
        let path = format!("/api/v1/namespaces/{ns}/finalize");
        k.output(
            &["replace", "--raw", &path, "-f", "-"],
            Some(&finalize.to_string()),
        );
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        self.run();
    }
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000)
}

#[test]
fn apiserver_stores_and_validates_crds_custom_objects_and_deployments() {
    let k = Kubectl::from_env();
    let want_version = TestEnv::require("BOWCHAT_TEST_KUBE_VERSION", "kube");
    let suffix = unique_suffix();
    let ns = format!("smoke-{suffix}");
    let group = format!("s{}.smoke.bowchat.test", suffix.replace('-', ""));
    let crd = format!("auctions.{group}");

    let version = k.json(&["version"]);
    assert_eq!(
        version["serverVersion"]["gitVersion"], want_version,
        "{version}"
    );
    assert_eq!(
        version["clientVersion"]["gitVersion"], want_version,
        "{version}"
    );

    k.ok(&["create", "namespace", &ns], None);
    let mut cleanup = Cleanup {
        kubectl: &k,
        namespace: ns.clone(),
        crd: crd.clone(),
        done: false,
    };

    let definition = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "auctions", "singular": "auction", "kind": "Auction" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["title", "reservePrice"],
                        "properties": {
                            "title": { "type": "string", "minLength": 1 },
                            "reservePrice": { "type": "integer", "minimum": 0 }
                        }
                    }}
                }}
            }]
        }
    });
    k.ok(&["apply", "-f", "-"], Some(&definition.to_string()));
    k.ok(
        &[
            "wait",
            "--for=condition=Established",
            &format!("crd/{crd}"),
            "--timeout=60s",
        ],
        None,
    );

    let auction = json!({
        "apiVersion": format!("{group}/v1"),
        "kind": "Auction",
        "metadata": { "name": "vintage-bow", "namespace": ns },
        "spec": { "title": "Vintage bow", "reservePrice": 5000 }
    });
    k.ok(&["create", "-f", "-"], Some(&auction.to_string()));

    let invalid = json!({
        "apiVersion": format!("{group}/v1"),
        "kind": "Auction",
        "metadata": { "name": "negative", "namespace": ns },
        "spec": { "title": "Negative", "reservePrice": -5 }
    });
    let refused = k.output(&["create", "-f", "-"], Some(&invalid.to_string()));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "invalid object was accepted");
    assert!(
        stderr.contains("spec.reservePrice")
            && stderr.contains("should be greater than or equal to 0"),
        "refusal does not carry the schema message: {stderr}"
    );

    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "bowchat", "namespace": ns, "labels": { "app": "bowchat" } },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "bowchat" } },
            "template": {
                "metadata": { "labels": { "app": "bowchat" } },
                "spec": { "containers": [{
                    "name": "bowchat",
                    "image": "bowchat:smoke",
                    "ports": [{ "containerPort": 8080 }]
                }]}
            }
        }
    });
    k.ok(&["create", "-f", "-"], Some(&deployment.to_string()));

    let crd_back = k.json(&["get", "crd", &crd]);
    let established = crd_back["status"]["conditions"]
        .as_array()
        .expect("CRD conditions")
        .iter()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established, "{crd_back}");
    assert_eq!(crd_back["spec"]["names"]["kind"], "Auction");

    let auction_back = k.json(&[
        "get",
        &format!("auctions.{group}"),
        "vintage-bow",
        "-n",
        &ns,
    ]);
    assert_eq!(auction_back["spec"]["title"], "Vintage bow");
    assert_eq!(auction_back["spec"]["reservePrice"], 5000);
    assert!(auction_back["metadata"]["uid"].is_string());
    let listed = k.json(&["get", &format!("auctions.{group}"), "-n", &ns]);
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "the refused object must not be stored: {listed}"
    );

    let deployment_back = k.json(&["get", "deployment", "bowchat", "-n", &ns]);
    assert_eq!(deployment_back["spec"]["replicas"], 2);
    assert_eq!(
        deployment_back["spec"]["template"]["spec"]["containers"][0]["image"],
        "bowchat:smoke"
    );
    // Defaulting ran on the server.
    assert_eq!(
        deployment_back["spec"]["strategy"]["type"], "RollingUpdate",
        "{deployment_back}"
    );

    cleanup.run();
    let gone = k.output(&["get", "namespace", &ns], None);
    assert!(!gone.status.success(), "namespace {ns} is still there");
    let crd_gone = k.output(&["get", "crd", &crd], None);
    assert!(!crd_gone.status.success(), "CRD {crd} is still there");
}

#[test]
fn helm_runs_and_reaches_the_apiserver() {
    let helm = TestEnv::require("BOWCHAT_TEST_HELM", "kube");
    let kubeconfig = TestEnv::require("BOWCHAT_TEST_KUBECONFIG", "kube");
    // helm's own folders in a scratch place, not the user's home.
    let home: PathBuf = std::env::temp_dir().join(format!("bowchat-helm-{}", unique_suffix()));
    let run = |args: &[&str]| {
        let out = Command::new(&helm)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {helm}: {e}"));
        assert!(
            out.status.success(),
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("helm prints UTF-8")
    };

    let version = run(&["version", "--template", "{{.Version}}"]);
    assert!(version.starts_with("v3."), "helm version: {version}");
    // Listing releases needs the server: a wrong kubeconfig or a dead server fails here.
    let releases: Value =
        serde_json::from_str(&run(&["list", "--all-namespaces", "-o", "json"])).expect("JSON");
    assert!(releases.is_array(), "{releases}");
    let _ = std::fs::remove_dir_all(&home);
}
