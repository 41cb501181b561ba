//! The Kubernetes manifests against the binaries: what `deploy/k8s` configures (config files,
//! environment variable names, probe ports and paths, grace periods) must be what the
//! binaries accept and serve. Renders with `kubectl kustomize`.

// figment::Jail closures return figment::Error, which clippy finds large.
#![allow(clippy::result_large_err)]

use std::{collections::BTreeMap, path::Path, process::Command};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use figment::providers::{Format, Yaml};
use serde_json::Value;

use crate::helpers::repo_root;

const OVERLAYS: [&str; 3] = ["deploy/k8s/base", "deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod"];

/// The Secret the pods read their secrets from, as files (kustomize may add a hash suffix).
const SECRET: &str = "auth-svc-secrets";

/// The values of the Secret: the overlay's own where it renders one (dev), else placeholders that
/// pass validation for the keys the template names (the Secret is created by hand there).
fn secret_values(objects: &[Value]) -> BTreeMap<String, String> {
    if let Some(secret) = objects.iter().find(|o| o["kind"] == "Secret" && is_the_secret(&o["metadata"]["name"])) {
        let data = secret["data"].as_object().unwrap();
        let decode = |value: &Value| String::from_utf8(BASE64.decode(value.as_str().unwrap()).unwrap()).unwrap();
        return data.iter().map(|(key, value)| (key.clone(), decode(value))).collect();
    }
    let template = std::fs::read_to_string(repo_root().join("deploy/k8s/base/secret.example.yaml")).unwrap();
    let secret: Value = figment::Figment::from(Yaml::string(&template)).extract().unwrap();
    secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .map(|key| {
            let value = match key.as_str() {
                "AUTH_SVC__AUTH__ACCESS_SECRET" => "a".repeat(48),
                "AUTH_SVC__AUTH__REFRESH_SECRET" => "r".repeat(48),
                "AUTH_SVC__DATABASE_URL" => "postgres://auth:pw@db:5432/auth".to_owned(),
                "AUTH_SVC__REDIS_URL" => "redis://redis:6379".to_owned(),
                other => panic!("a Secret key this test does not know: {other}"),
            };
            (key.clone(), value)
        })
        .collect()
}

fn is_the_secret(name: &Value) -> bool {
    name.as_str().is_some_and(|name| name.starts_with(SECRET))
}

fn render(dir: &str) -> Vec<Value> {
    let output =
        Command::new("kubectl").args(["kustomize", dir]).current_dir(repo_root()).output().expect("kubectl runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .unwrap()
        .split("\n---\n")
        .map(|doc| figment::Figment::from(Yaml::string(doc)).extract::<Value>().unwrap())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// The container's environment: plain values only, as secrets reach the pods as files. The
/// Downward API's pod identity (the traces' resource attributes) is left out: no config key.
fn plain_env(container: &Value) -> Vec<(String, String)> {
    assert!(container["envFrom"].is_null(), "{}: no envFrom: secrets are mounted files", container["name"]);
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .filter(|e| !e["valueFrom"]["fieldRef"].is_object() || !is_pod_identity(e))
                .map(|e| {
                    let name = e["name"].as_str().unwrap();
                    let value = e["value"].as_str().unwrap_or_else(|| panic!("{name}: a plain value, not valueFrom"));
                    (name.to_owned(), value.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `POD_NAME`, `POD_NAMESPACE` or `NODE_NAME`, which the telemetry reads.
fn is_pod_identity(env: &Value) -> bool {
    service_kit::telemetry::POD_ATTRIBUTES.iter().any(|(variable, _)| env["name"] == *variable)
}

/// Both Deployments hand their pods their own name, namespace and node (the Downward API), which
/// become the `k8s.*` resource attributes of their traces.
#[test]
fn both_deployments_tell_their_pods_who_they_are() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for name in ["auth-svc", "gateway"] {
            let env = container(find(&objects, "Deployment", name))["env"].as_array().unwrap().clone();
            for (variable, field) in
                [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"), ("NODE_NAME", "spec.nodeName")]
            {
                let set = env.iter().find(|e| e["name"] == variable);
                let path = set.map(|e| &e["valueFrom"]["fieldRef"]["fieldPath"]);
                assert_eq!(path.and_then(Value::as_str), Some(field), "{overlay}: {name}'s {variable}");
            }
        }
    }
}

/// Where the workload's first container mounts the Secret, if it does.
fn secret_mount(workload: &Value) -> Option<&str> {
    let pod = &workload["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array()?.iter().find(|volume| is_the_secret(&volume["secret"]["secretName"]))?;
    let mounts = pod["containers"][0]["volumeMounts"].as_array()?;
    mounts.iter().find(|mount| mount["name"] == volume["name"])?["mountPath"].as_str()
}

/// Sets the workload's environment in `jail` as its pod has it. A `…_FILE` variable naming a file
/// of the mounted Secret points to a file in the jail instead, holding that key's value.
fn set_pod_env(
    jail: &mut figment::Jail,
    workload: &Value,
    secrets: &BTreeMap<String, String>,
    overlay: &str,
) -> figment::Result<()> {
    let mount = secret_mount(workload);
    for (name, value) in plain_env(container(workload)) {
        let secret_key = mount.and_then(|mount| Path::new(&value).strip_prefix(mount).ok());
        match secret_key.filter(|_| name.ends_with("_FILE")) {
            Some(key) => {
                let key = key.to_str().unwrap();
                let secret = secrets.get(key).ok_or(format!("{overlay}: {name} names {key}, not in the Secret"))?;
                jail.create_file(key, secret)?;
                jail.set_env(&name, key);
            }
            None => jail.set_env(&name, &value),
        }
    }
    Ok(())
}

/// `auth_svc::Config` as the workload's pod loads it, from the overlay's ConfigMap.
fn auth_svc_config(objects: &[Value], workload: &Value, overlay: &str) -> figment::Result<auth_svc::Config> {
    let config_text = find(objects, "ConfigMap", "auth-svc-config")["data"]["auth-svc.yaml"].as_str().unwrap();
    let mut loaded = Err(figment::Error::from("not loaded".to_owned()));
    figment::Jail::try_with(|jail| {
        jail.create_file("auth-svc.yaml", config_text)?;
        set_pod_env(jail, workload, &secret_values(objects), overlay)?;
        loaded = auth_svc::Config::load(Some(Path::new("auth-svc.yaml"))).map_err(|e| format!("{overlay}: {e}").into());
        Ok(())
    })?;
    loaded
}

fn port_named(container: &Value, name: &str) -> u64 {
    let ports = container["ports"].as_array().unwrap();
    ports.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Whether `file` lies in a volume the pod mounts from a Secret (where key files belong).
fn secret_mount_holds(deployment: &Value, file: &Path) -> bool {
    let pod = &deployment["spec"]["template"]["spec"];
    let secret_volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|volume| volume["secret"].is_object())
        .filter_map(|volume| volume["name"].as_str())
        .collect();
    pod["containers"][0]["volumeMounts"].as_array().into_iter().flatten().any(|mount| {
        mount["name"].as_str().is_some_and(|name| secret_volumes.contains(&name))
            && mount["mountPath"].as_str().is_some_and(|path| file.starts_with(path))
    })
}

fn pre_stop_seconds(container: &Value) -> u64 {
    container["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64().unwrap_or(0)
}

#[test]
fn auth_svc_manifests_match_what_the_binary_accepts_and_serves() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let deployment = find(&objects, "Deployment", "auth-svc");
        let c = container(deployment);
        let config = auth_svc_config(&objects, deployment, overlay).unwrap_or_else(|e| panic!("{e}"));
        assert!(!config.database.migrate_on_start, "{overlay}: replicas must leave migrations to the Job");
        assert_eq!(port_named(c, "grpc"), u64::from(config.listen.port()), "{overlay}: container port");
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            assert_eq!(c[probe]["grpc"]["port"].as_u64(), Some(u64::from(config.listen.port())), "{overlay} {probe}");
        }
        assert_eq!(c["readinessProbe"]["grpc"]["service"], "user.v1.UserService");
        for (kid, key) in &config.auth.keys {
            for file in [&key.private_key_file, &key.public_key_file].into_iter().flatten() {
                assert!(secret_mount_holds(deployment, file), "{overlay}: key {kid}: {file:?} is in no Secret mount");
            }
        }
        if let Some(kid) = &config.auth.signing_key {
            assert!(config.auth.keys.contains_key(kid), "{overlay}: signing key {kid}");
        }
        // The Secret's URLs reached the config, from its files.
        assert_ne!(config.database_url, auth_svc::config::DEFAULT_DATABASE_URL, "{overlay}: database_url");
        assert!(config.redis_url.is_some(), "{overlay}: redis_url");
        if overlay.ends_with("prod") {
            assert!(config.auth.signing_key.is_some(), "prod signs with an asymmetric key (JWKS)");
            // Three replicas must share it: a random one per process would refuse the others'.
            assert!(config.auth.refresh_secret.is_some(), "prod: the refresh secret, from the Secret");
        }
        // The gateway reaches auth-svc from another pod: with loopback alone every user
        // would be counted as the gateway's one address.
        let gateway_pod: std::net::IpAddr = "10.244.3.17".parse().unwrap();
        assert!(
            config.grpc.trusted_forwarders.iter().any(|net| net.contains(&gateway_pod)),
            "{overlay}: grpc.trusted_forwarders must cover the gateway's pod network"
        );
        let admin = config.admin_listen.unwrap_or_else(|| panic!("{overlay}: admin_listen must be set for metrics"));
        assert_eq!(port_named(c, "metrics"), u64::from(admin.port()), "{overlay}: metrics port");
        let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/port"], admin.port().to_string(), "{overlay}: scrape port");
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
        let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            pre_stop_seconds(c) + config.grpc.shutdown_grace_seconds < grace,
            "{overlay}: preStop + drain must end before Kubernetes kills the pod"
        );

        let job = find(&objects, "Job", "auth-svc-migrate");
        let args = container(job)["command"].as_array().unwrap();
        assert_eq!(args.last().unwrap(), "migrate", "{overlay}");
        let job_config = auth_svc_config(&objects, job, overlay).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job_config.database_url, config.database_url, "{overlay}: the Job migrates the served database");
        let service = find(&objects, "Service", "auth-svc");
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "grpc");
        assert_eq!(service["spec"]["ports"][0]["name"], "grpc", "named so meshes see gRPC");
    }
}

#[test]
fn gateway_manifests_match_what_the_binary_accepts_and_serves() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let config_text = find(&objects, "ConfigMap", "gateway-config")["data"]["gateway.yaml"].as_str().unwrap();
        let deployment = find(&objects, "Deployment", "gateway");
        let c = container(deployment);
        let env = plain_env(c);
        let auth_service_port = find(&objects, "Service", "auth-svc")["spec"]["ports"][0]["port"].as_u64().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.create_file("gateway.yaml", config_text)?;
            for (name, value) in &env {
                jail.set_env(name, value);
            }
            let config =
                gateway::Config::load(Some(Path::new("gateway.yaml"))).map_err(|e| format!("{overlay}: {e}"))?;
            assert_eq!(port_named(c, "http"), u64::from(config.listen.port()), "{overlay}: container port");
            assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
            let admin = config.admin_listen.ok_or(format!("{overlay}: admin_listen must be set for metrics"))?;
            assert_eq!(port_named(c, "metrics"), u64::from(admin.port()), "{overlay}: metrics port");
            let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
            assert_eq!(annotations["prometheus.io/port"], admin.port().to_string(), "{overlay}: scrape port");
            assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
            for probe in ["readinessProbe", "livenessProbe"] {
                assert_eq!(c[probe]["httpGet"]["port"], "http", "{overlay} {probe}");
            }
            let upstream = config.upstream_uri().map_err(|e| e.to_string())?;
            assert_eq!(upstream.host(), Some("auth-svc"), "{overlay}: the auth-svc Service");
            assert_eq!(upstream.port_u16().map(u64::from), Some(auth_service_port), "{overlay}");
            let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
            assert!(
                pre_stop_seconds(c) + config.http.shutdown_grace_seconds < grace,
                "{overlay}: drain within the grace"
            );
            Ok(())
        });
    }
}

/// Who reaches auth-svc and where the migration Job goes, as the NetworkPolicies say (no cluster
/// here to try them): a pod label alone must not admit a pod of another namespace.
#[test]
fn network_policies_admit_other_namespaces_only_by_their_label_and_confine_the_job() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let policy = find(&objects, "NetworkPolicy", "auth-svc");
        let peers: Vec<&Value> = policy["spec"]["ingress"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rule| rule["from"].as_array().into_iter().flatten())
            .collect();
        assert!(!peers.is_empty(), "{overlay}: auth-svc admits someone");
        for peer in peers {
            if peer["namespaceSelector"].is_null() {
                continue; // A podSelector alone: pods of this namespace.
            }
            assert_eq!(
                peer["namespaceSelector"],
                serde_json::json!({"matchLabels": {"auth-svc-clients": "true"}}),
                "{overlay}: another namespace only by its label"
            );
            assert_eq!(
                peer["podSelector"],
                serde_json::json!({"matchLabels": {"auth-svc-client": "true"}}),
                "{overlay}: and only its pods labelled as clients, in the same peer"
            );
        }

        let job = find(&objects, "Job", "auth-svc-migrate");
        let job_policy = find(&objects, "NetworkPolicy", "auth-svc-migrate");
        let selected = job_policy["spec"]["podSelector"]["matchLabels"].as_object().unwrap();
        let pod_labels = &job["spec"]["template"]["metadata"]["labels"];
        assert!(selected.iter().all(|(label, value)| &pod_labels[label] == value), "{overlay}: selects the Job's pod");
        assert_eq!(job_policy["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]), "{overlay}");
        assert!(job_policy["spec"]["ingress"].is_null(), "{overlay}: nothing reaches the Job");
        for rule in job_policy["spec"]["egress"].as_array().unwrap() {
            for port in rule["ports"].as_array().unwrap() {
                let port = port["port"].as_u64().unwrap();
                assert!(
                    [53, 5432, 3306].contains(&port),
                    "{overlay}: the Job reaches DNS and the database only, not {port}"
                );
            }
        }
    }
}

/// The Dockerfile's dependency layer copies every workspace member's manifest and stubs its
/// sources; a member it misses leaves cargo unable to load the workspace there.
#[test]
fn the_dockerfile_stubs_every_workspace_member() {
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let members_line = manifest.lines().find(|line| line.starts_with("members = [")).expect("a members line");
    let members: Vec<&str> = members_line
        .trim_start_matches("members = [")
        .trim_end_matches(']')
        .split(',')
        .map(|member| member.trim().trim_matches('"'))
        .filter(|member| !member.is_empty() && *member != ".")
        .collect();
    assert!(members.len() >= 5, "{members:?}");
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    for member in members {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "Dockerfile: no {member}/Cargo.toml"
        );
        assert!(dockerfile.contains(&format!("{member}/src")), "Dockerfile: no stub for {member}/src");
    }
}
