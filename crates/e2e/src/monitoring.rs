//! The alerts and the dashboard of `deploy/k8s/components/monitoring` against what the binaries
//! export: every metric a rule or a panel queries must be one a running auth-svc or gateway
//! serves on its admin port, so a renamed metric cannot leave an alert that never fires.

use std::{collections::BTreeSet, process::Command};

use figment::providers::Format as _;
use serde_json::Value;

use crate::helpers::{PASSWORD, bearer, http_get_ok, repo_root, spawn_app_with};

const COMPONENT: &str = "deploy/k8s/components/monitoring";
/// Metrics the rules take from kube-state-metrics, not from the binaries.
const EXTERNAL: [&str; 1] = ["kube_pod_status_ready"];

/// The metric names in PromQL `expr`: identifiers of our prefixes (and kube-state-metrics').
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if is_word(bytes[start]) && (start == 0 || !is_word(bytes[start - 1])) {
            let end = (start..bytes.len()).find(|&i| !is_word(bytes[i])).unwrap_or(bytes.len());
            let word = &expr[start..end];
            // Label values inside quotes name no metric.
            let quoted = expr[..start].matches('"').count() % 2 == 1;
            if !quoted && ["auth_", "gateway_", "kube_"].iter().any(|prefix| word.starts_with(prefix)) {
                names.insert(word.to_owned());
            }
            start = end;
        } else {
            start += 1;
        }
    }
    names
}

/// Every `expr` of the PrometheusRule and every target of the dashboard.
fn queries() -> Vec<String> {
    let rules = std::fs::read_to_string(repo_root().join(COMPONENT).join("prometheusrule.yaml")).unwrap();
    let rules: Value = figment::Figment::from(figment::providers::Yaml::string(&rules)).extract().unwrap();
    let mut exprs: Vec<String> = rules["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .map(|rule| rule["expr"].as_str().expect("every rule has an expr").to_owned())
        .collect();
    let rule_count = exprs.len();
    assert!(rule_count >= 10, "the rules were read: {rule_count}");
    let dashboard = std::fs::read_to_string(repo_root().join(COMPONENT).join("grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() > rule_count + 10, "the dashboard's queries were read");
    exprs
}

/// The sample names (`name` or `name{…}` before the value) of a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_metric_name_reader_finds_names_and_skips_label_values() {
    let names = metric_names(r#"sum(rate(auth_rpc_requests_total{code="auth_x"}[5m])) / gateway_up_total > 0"#);
    assert_eq!(names, BTreeSet::from(["auth_rpc_requests_total".to_owned(), "gateway_up_total".to_owned()]));
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let app = spawn_app_with(|config| config.admin_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let gateway_config = gateway::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        upstream: format!("http://{}", app.addr),
        ..gateway::Config::default()
    };
    let gateway = gateway::App::build(&gateway_config).await.unwrap();
    let (base, gateway_admin) = (format!("http://{}", gateway.local_addr().unwrap()), gateway.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(async move {
        let _ = stopped.await;
    }));

    // The traffic that makes every family appear: logins right, wrong and throttled, a refresh,
    // a user lookup, through the gateway.
    let pair = app.signed_in("alice").await;
    app.refresh(&pair.refresh_token).await.unwrap();
    app.user_info(&bearer(&pair.access_token)).await.unwrap();
    for _ in 0..6 {
        let _ = app.login("alice", "not the password").await;
    }
    let http = reqwest::Client::new();
    let body = serde_json::json!({"username": "alice", "password": PASSWORD});
    http.post(format!("{base}/user/login")).json(&body).send().await.unwrap();

    let mut served = exported(&http_get_ok(&format!("http://{}/metrics", app.admin.unwrap())).await);
    served.extend(exported(&http_get_ok(&format!("http://{gateway_admin}/metrics")).await));
    let mut used = BTreeSet::new();
    for expr in queries() {
        used.extend(metric_names(&expr));
    }
    let unknown: Vec<_> =
        used.iter().filter(|name| !served.contains(*name) && !EXTERNAL.contains(&name.as_str())).collect();
    assert!(unknown.is_empty(), "queried but not exported: {unknown:?}\nexported: {served:?}");
    assert!(used.contains("auth_logins_total") && used.contains("gateway_http_request_duration_seconds_bucket"));
    drop(stop);
}

#[test]
fn the_component_renders_the_rules_the_scrape_and_the_dashboard_beside_an_overlay() {
    let dir = tempfile::tempdir().unwrap();
    // kustomize wants relative paths: from the temporary directory up to `/`, then down.
    let up = "../".repeat(dir.path().components().count() - 1);
    let root = format!("{up}{}", repo_root().display().to_string().trim_start_matches('/'));
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: auth\nresources:\n  - {root}/deploy/k8s/overlays/prod\ncomponents:\n  - {root}/{COMPONENT}\n"
    );
    std::fs::write(dir.path().join("kustomization.yaml"), kustomization).unwrap();
    let output = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rendered = String::from_utf8(output.stdout).unwrap();
    let objects: Vec<Value> = rendered
        .split("\n---\n")
        .map(|doc| figment::Figment::from(figment::providers::Yaml::string(doc)).extract::<Value>().unwrap())
        .collect();
    let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).unwrap_or_else(|| panic!("{kind}"));
    assert_eq!(find("PrometheusRule")["metadata"]["namespace"], "auth");
    assert_eq!(find("PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    let dashboard = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "auth-grafana-dashboard")
        .expect("the dashboard's ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(dashboard["data"]["auth.json"].as_str().unwrap()).unwrap();
    assert_eq!(json["uid"], "auth-svc-overview");
    // Both deployments expose the port the PodMonitor scrapes.
    for deployment in objects.iter().filter(|o| o["kind"] == "Deployment") {
        let ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"].as_array().unwrap();
        assert!(ports.iter().any(|port| port["name"] == "metrics"), "{}", deployment["metadata"]["name"]);
    }
}
