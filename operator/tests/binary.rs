//! The `bowchat-operator run` binary end to end: kubeconfig from the
//! environment, leader election on a Lease, the reconciler and the scaler
//! against the real API server, Kafka and platform, `/metrics` over HTTP.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bowchat_kafka::{KafkaAdmin, KafkaConfig};
use bowchat_operator::crd::Auction;
use bowchat_testenv::TestEnv;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use support::{eventually, install_crd, kubectl, Namespace, Platform};

/// Kills the operator when the test ends, also when an assertion fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_registers_with_the_lease_and_serves_metrics() {
    install_crd();
    let ns = Namespace::create("binary");
    let platform = Platform::start();
    platform.user("operator", "operator service secret").await;
    let prefix = format!("opbin{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let bootstrap = TestEnv::require("BOWCHAT_TEST_KAFKA_BOOTSTRAP", "kafka");
    let kafka = KafkaAdmin::new(KafkaConfig {
        bootstrap: bootstrap.clone(),
        topic_prefix: prefix.clone(),
        ..KafkaConfig::default()
    })
    .unwrap();
    kafka.ensure_topics(&["auction-bid"], 2, 1).await.unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_bowchat-operator"))
        .arg("run")
        .env("KUBECONFIG", support::kubeconfig())
        .env("BOWCHAT_OPERATOR_PLATFORM_URL", platform.url())
        .env("BOWCHAT_OPERATOR_PLATFORM_EMAIL", "operator@test.bowchat")
        .env(
            "BOWCHAT_OPERATOR_PLATFORM_PASSWORD",
            "operator service secret",
        )
        .env("BOWCHAT_OPERATOR_KAFKA_BOOTSTRAP", &bootstrap)
        .env("BOWCHAT_OPERATOR_KAFKA_TOPIC_PREFIX", &prefix)
        .env("BOWCHAT_OPERATOR_NAMESPACE", &ns.name)
        .env("BOWCHAT_OPERATOR_LEASE_NAMESPACE", &ns.name)
        .env("BOWCHAT_OPERATOR_POLL_SECS", "1")
        .env("BOWCHAT_OPERATOR_SCALE_SECS", "1")
        .env("BOWCHAT_OPERATOR_METRICS", "127.0.0.1:0")
        .env("POD_NAME", "operator-test-0")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start bowchat-operator");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child = Running(child);
    let mut metrics_addr = None;
    for line in lines.by_ref() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap_or_default();
        if v["fields"]["message"] == "metrics listening" {
            metrics_addr = v["fields"]["addr"].as_str().map(str::to_string);
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let metrics_addr = metrics_addr.expect("the operator printed its metrics address");

    let deployment = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"bowchat-auction"},
      "spec":{"replicas":1,"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"a"}},
      "spec":{"containers":[{"name":"a","image":"bowchat:test"}]}}}}"#;
    let (ok, _, err) = kubectl(&["-n", &ns.name, "apply", "-f", "-"], Some(deployment));
    assert!(ok, "{err}");
    let client = support::client().await;
    let api: Api<Auction> = Api::namespaced(client.clone(), &ns.name);
    let auction: Auction = serde_json::from_value(json!({
        "apiVersion": "bowchat.io/v1alpha1", "kind": "Auction", "metadata": {"name": "kettle"},
        "spec": {"title": "Kettle", "startingPrice": 100, "durationSeconds": 600,
                 "capacity": {"partitions": 4, "minReplicas": 2, "maxReplicas": 3}}
    }))
    .unwrap();
    api.create(&Default::default(), &auction).await.unwrap();
    let status = eventually(30, "registered by the binary", || async {
        api.get("kettle")
            .await
            .ok()?
            .status
            .filter(|s| s.phase.as_deref() == Some("Open") && s.partitions == Some(4))
    })
    .await;
    assert!(status.auction_id.is_some());
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns.name);
    let lease = leases.get("bowchat-operator").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("operator-test-0"));
    // The scaler raised the Deployment to the minimum of 2 (no lag).
    eventually(20, "scaled to the minimum", || async {
        let out = kubectl(
            &[
                "-n",
                &ns.name,
                "get",
                "deployment",
                "bowchat-auction",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
        .1;
        (out == "2").then_some(())
    })
    .await;
    let text = reqwest::get(format!("http://{metrics_addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "bowchat_operator_leader 1",
        "bowchat_operator_registrations_total 1",
        "bowchat_operator_auction_bid_partitions 4",
        "bowchat_operator_desired_replicas 2",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    drop(child);
    kafka.delete_topics(&["auction-bid"]).await.unwrap();
}
