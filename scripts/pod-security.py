"""Checks rendered Kubernetes manifests against the Pod Security Standards' restricted profile
(what a namespace labelled pod-security.kubernetes.io/enforce: restricted admits), plus this
project's own rules: a read-only root filesystem, resource requests and limits, probes on
long-running pods, and no secret in an environment variable.

Usage: pod-security.py [--require-namespace] RENDERED.yaml... (the output of `kubectl
kustomize`; with --require-namespace each file must hold a Namespace, labelled as above). Prints
one line per violation on stderr and exits 1 if there is any.
"""

import argparse
import re
import sys

import yaml

# Kinds whose pods run until stopped: they need probes. A Job's pod runs to completion.
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod"}
ALLOWED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}
ALLOWED_CAPABILITY = "NET_BIND_SERVICE"
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Names of variables that hold a secret when given a value (a `..._FILE` variable names a file).
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE_KEY|DATABASE_URL|REDIS_URL")
# A URL with a password in it: scheme://user:password@host.
URL_PASSWORD = re.compile(r"://[^/@\s]*:[^/@\s]+@")


def pod_templates(obj):
    """The pod spec (and its metadata) an object runs, if it runs pods."""
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return obj.get("metadata") or {}, spec
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    if kind in LONG_RUNNING | {"Job", "CronJob"} and template:
        return template.get("metadata") or {}, template.get("spec") or {}
    return None


def all_containers(pod):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(field) or []:
            yield field, container


def check_pod_level(pod, metadata):
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            yield f"{field} is true"
    for volume in pod.get("volumes") or []:
        types = set(volume) - {"name"}
        if not types <= ALLOWED_VOLUME_TYPES:
            yield f"volume {volume.get('name')}: type {', '.join(sorted(types))} is not allowed"
    context = pod.get("securityContext") or {}
    yield from check_common_context(context, "pod")
    for sysctl in context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"sysctl {sysctl.get('name')} is not a safe sysctl"
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/"):
            if value != "runtime/default" and not value.startswith("localhost/"):
                yield f"annotation {key}: {value} is not runtime/default or localhost/*"


def check_common_context(context, where):
    """Rules a pod's and a container's securityContext share."""
    if context.get("runAsUser") == 0:
        yield f"{where}: runAsUser is 0"
    if context.get("runAsNonRoot") is False:
        yield f"{where}: runAsNonRoot is false"
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_TYPES:
        yield f"{where}: seccompProfile {seccomp} is not RuntimeDefault or Localhost"
    apparmor = (context.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in SECCOMP_TYPES:
        yield f"{where}: appArmorProfile {apparmor} is not RuntimeDefault or Localhost"
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        yield f"{where}: seLinuxOptions {selinux} are not allowed"
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        yield f"{where}: windowsOptions.hostProcess is true"


def check_container(pod, field, container, long_running):
    where = f"{field} {container.get('name')}"
    pod_context = pod.get("securityContext") or {}
    context = container.get("securityContext") or {}
    yield from check_common_context(context, where)
    if context.get("privileged"):
        yield f"{where}: privileged"
    if context.get("allowPrivilegeEscalation") is not False:
        yield f"{where}: allowPrivilegeEscalation is not false"
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        yield f"{where}: runAsNonRoot is not true (neither the pod's nor the container's)"
    seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in SECCOMP_TYPES:
        yield f"{where}: no seccompProfile RuntimeDefault or Localhost"
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        yield f"{where}: capabilities do not drop ALL"
    for added in capabilities.get("add") or []:
        if added != ALLOWED_CAPABILITY:
            yield f"{where}: adds capability {added}"
    if context.get("procMount", "Default") != "Default":
        yield f"{where}: procMount {context['procMount']}"
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            yield f"{where}: hostPort {port['hostPort']}"
    # This project's rules, beyond the profile.
    if context.get("readOnlyRootFilesystem") is not True:
        yield f"{where}: readOnlyRootFilesystem is not true"
    resources = container.get("resources") or {}
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(bound) or {}):
                yield f"{where}: no {bound}.{resource}"
    if long_running and field == "containers":
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                yield f"{where}: no {probe}"
    yield from check_environment(where, container)


def check_environment(where, container):
    """Secrets reach the pods as mounted files, never as environment variables."""
    for source in container.get("envFrom") or []:
        if "secretRef" in source:
            yield f"{where}: envFrom a Secret ({source['secretRef'].get('name')})"
    for variable in container.get("env") or []:
        name = variable.get("name", "")
        if "secretKeyRef" in (variable.get("valueFrom") or {}):
            yield f"{where}: env {name} comes from a Secret (secretKeyRef)"
        value = str(variable.get("value", ""))
        if value and SECRET_NAME.search(name) and not name.endswith("_FILE"):
            yield f"{where}: env {name} holds a secret's value"
        if URL_PASSWORD.search(value):
            yield f"{where}: env {name} holds a URL with a password"


def check_namespace(obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for mode in ("enforce", "audit", "warn"):
        if labels.get(f"pod-security.kubernetes.io/{mode}") != "restricted":
            yield f"label pod-security.kubernetes.io/{mode} is not restricted"


def violations(obj):
    if obj.get("kind") == "Namespace":
        yield from check_namespace(obj)
    template = pod_templates(obj)
    if template is None:
        return
    metadata, pod = template
    long_running = obj.get("kind") in LONG_RUNNING
    yield from check_pod_level(pod, metadata)
    for field, container in all_containers(pod):
        yield from check_container(pod, field, container, long_running)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--require-namespace", action="store_true")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    failures = 0
    for path in args.paths:
        pods, found = 0, 0
        with open(path, encoding="utf-8") as file:
            objects = [obj for obj in yaml.safe_load_all(file) if obj]
        if args.require_namespace and not any(obj.get("kind") == "Namespace" for obj in objects):
            print(f"{path}: no Namespace (the one that enforces the restricted profile)", file=sys.stderr)
            found += 1
        for obj in objects:
            name = f"{path}: {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
            pods += pod_templates(obj) is not None
            for violation in violations(obj):
                print(f"{name}: {violation}", file=sys.stderr)
                found += 1
        summary = f"{path}: {pods} pod template(s) against the restricted profile"
        if found:
            print(f"FAILED ({found} violations): {summary}", file=sys.stderr)
        else:
            print(f"ok: {summary}")
        failures += found
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
