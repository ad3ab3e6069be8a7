//! The CRD: the checked-in YAML matches the Rust types, and the real API
//! server installs it and refuses invalid Auctions with a clear message.

mod support;

use support::{install_crd, kubectl, repo_root, Namespace};

#[test]
fn manifest_matches_the_rust_types() {
    let path = repo_root().join("manifests/crd.yaml");
    let checked_in = std::fs::read_to_string(&path).expect("manifests/crd.yaml");
    let generated = bowchat_operator::crd::crd_yaml();
    assert!(
        checked_in == generated,
        "manifests/crd.yaml drifted from operator/src/crd.rs; regenerate with \
         `cargo run -p bowchat-operator -- crd > manifests/crd.yaml` (and charts/bowchat/crds/)"
    );
    let chart = repo_root().join("charts/bowchat/crds/auctions.bowchat.io.yaml");
    if chart.exists() {
        assert!(
            std::fs::read_to_string(chart).unwrap() == generated,
            "charts/bowchat/crds drifted"
        );
    }
}

#[test]
fn crd_has_validation_columns_and_status() {
    let yaml = bowchat_operator::crd::crd_yaml();
    let crd: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["group"], "bowchat.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"Phase") && columns.contains(&"Price") && columns.contains(&"Bids"),
        "{columns:?}"
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, ["startingPrice", "title"]);
    assert_eq!(spec["properties"]["startingPrice"]["minimum"], 0.0);
    assert_eq!(
        spec["properties"]["onDelete"]["enum"],
        serde_json::json!(["Cancel", "Keep"])
    );
}

#[test]
fn api_server_installs_the_crd_and_refuses_invalid_auctions() {
    install_crd();
    let ns = Namespace::create("crd");
    let example =
        std::fs::read_to_string(repo_root().join("manifests/example-auction.yaml")).unwrap();
    let (ok, out, err) = kubectl(&["-n", &ns.name, "apply", "-f", "-"], Some(&example));
    assert!(ok, "example applies: {out} {err}");

    let invalid = r#"
apiVersion: bowchat.io/v1alpha1
kind: Auction
metadata: {name: bad}
spec:
  title: ""
  startingPrice: -5
  onDelete: Shred
  capacity: {minReplicas: 1, maxReplicas: 0, lagPerReplica: 0, cooldownSeconds: 100000000}
"#;
    let (ok, _, err) = kubectl(&["-n", &ns.name, "apply", "-f", "-"], Some(invalid));
    assert!(!ok, "an invalid Auction must be refused");
    for needle in [
        "spec.startingPrice: Invalid value: -5: spec.startingPrice in body should be greater than or equal to 0",
        "spec.title: Invalid value: \"\": spec.title in body should be at least 1 chars long",
        "spec.onDelete: Unsupported value: \"Shred\": supported values: \"Cancel\", \"Keep\"",
        "spec.capacity.maxReplicas: Invalid value: 0: spec.capacity.maxReplicas in body should be greater than or equal to 1",
        "spec.capacity.lagPerReplica: Invalid value: 0",
        "spec.capacity.cooldownSeconds in body should be less than or equal to 604800",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    let missing = "apiVersion: bowchat.io/v1alpha1\nkind: Auction\nmetadata: {name: bad2}\nspec: {title: x}\n";
    let (ok, _, err) = kubectl(&["-n", &ns.name, "apply", "-f", "-"], Some(missing));
    assert!(!ok);
    assert!(err.contains("spec.startingPrice: Required value"), "{err}");
    let (_, names, _) = kubectl(&["-n", &ns.name, "get", "auctions", "-o", "name"], None);
    assert_eq!(
        names.trim(),
        "auction.bowchat.io/spring-vase",
        "only the valid one is stored"
    );
}

#[test]
fn conditions_are_a_list_map_keyed_by_type() {
    let crd: serde_json::Value =
        serde_yaml_ng::from_str(&bowchat_operator::crd::crd_yaml()).unwrap();
    let conditions = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
        ["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], "map");
    assert_eq!(
        conditions["x-kubernetes-list-map-keys"],
        serde_json::json!(["type"])
    );
}

/// Applies `yaml` in `ns`; returns (accepted, stderr).
fn apply(ns: &str, yaml: &str) -> (bool, String) {
    let (ok, _, err) = kubectl(&["-n", ns, "apply", "-f", "-"], Some(yaml));
    (ok, err)
}

fn auction(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: bowchat.io/v1alpha1\nkind: Auction\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

#[test]
fn cel_rules_refuse_what_the_schema_cannot_express() {
    install_crd();
    let ns = Namespace::create("cel");
    for (spec, message) in [
        (
            "{title: a, startingPrice: 1, capacity: {minReplicas: 3, maxReplicas: 2}}",
            "spec.capacity: Invalid value: minReplicas must not be above maxReplicas",
        ),
        (
            "{title: a, startingPrice: 1, capacity: {maxReplicas: 2, preScaleReplicas: 3}}",
            "spec.capacity: Invalid value: preScaleReplicas must not be above maxReplicas",
        ),
        (
            "{title: a, startingPrice: 1, endsAt: '2030-01-01T00:00:00Z', durationSeconds: 60}",
            "spec: Invalid value: give endsAt or durationSeconds, not both",
        ),
    ] {
        let (ok, err) = apply(&ns.name, &auction("bad", spec));
        assert!(!ok, "{spec} must be refused");
        assert!(err.contains(message), "missing {message:?} in: {err}");
    }
    // The defaults (min 1, max 4) pass the rules.
    let (ok, err) = apply(
        &ns.name,
        &auction(
            "lamp",
            "{title: Lamp, startingPrice: 100, durationSeconds: 600}",
        ),
    );
    assert!(ok, "{err}");

    // The terms are immutable; capacity, onDelete and seller are not.
    let immutable = "spec: Invalid value: the auction's terms are immutable after creation";
    for spec in [
        "{title: Lantern, startingPrice: 100, durationSeconds: 600}",
        "{title: Lamp, startingPrice: 90, durationSeconds: 600}",
        "{title: Lamp, startingPrice: 100, durationSeconds: 900}",
        "{title: Lamp, startingPrice: 100, durationSeconds: 600, reservePrice: 500}",
        "{title: Lamp, startingPrice: 100}",
    ] {
        let (ok, err) = apply(&ns.name, &auction("lamp", spec));
        assert!(!ok, "{spec} must be refused");
        assert!(err.contains(immutable), "missing {immutable:?} in: {err}");
    }
    let (ok, err) = apply(
        &ns.name,
        &auction(
            "lamp",
            "{title: Lamp, startingPrice: 100, durationSeconds: 600, seller: studio, onDelete: Keep, capacity: {maxReplicas: 8}}",
        ),
    );
    assert!(ok, "capacity, onDelete and seller may change: {err}");

    // Two conditions of one type: the list map refuses the duplicate.
    let patch = r#"{"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "a", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"},
        {"type": "Ready", "status": "False", "reason": "b", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}"#;
    let (ok, _, err) = kubectl(
        &[
            "-n",
            &ns.name,
            "patch",
            "auction/lamp",
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ],
        None,
    );
    assert!(!ok, "a duplicate condition type must be refused");
    assert!(
        err.contains("status.conditions[1]: Duplicate value"),
        "{err}"
    );
}
