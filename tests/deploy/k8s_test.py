#!/usr/bin/env python3
"""k8s/ rendered with `kubectl kustomize` and validated offline.

    k8s_test.py BIN_DIR

For k8s/base and every k8s/overlays/*: renders it, then checks every object
  - against the Kubernetes schemas of kubernetes-validate (built-in kinds, strict: unknown fields are errors), or
    for MPIJob (kubeflow.org/v2beta1) and PodMonitor (monitoring.coreos.com/v1) against tests/deploy/schemas,
    whose pod templates and metadata refer to the same Kubernetes definitions;
  - for consistency: every ConfigMap and PersistentVolumeClaim a pod template names is rendered too, every volume
    mount names a volume, GPU workers ask for as many GPUs as slotsPerWorker and mount a memory-backed /dev/shm,
    the coordinator's probes use gRPC on a declared port, a PodMonitor selects a pod template with its port;
  - the training config in the rendered ConfigMap is accepted by `ijepa-train --validate`.
Also checks that the validators reject a broken object, so that a pass means something.
"""
import copy
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KUBERNETES_VERSION = "1.32.0"  # kubectl on the machine image; GPU clusters of 2025-26
KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=os.path.join(ROOT, ".venv/bin"))
SCHEMA_FILES = {("kubeflow.org/v2beta1", "MPIJob"): "mpijob-kubeflow-v2beta1.json",
                ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json"}

failures = []


def fail(where, message):
    print(f"FAIL: {where}: {message}", file=sys.stderr)
    failures.append(message)


class Validator:
    """Kubernetes' schemas for built-in kinds; ours, resolved against the same definitions, for the CRDs."""

    def __init__(self):
        import jsonschema
        import kubernetes_validate
        import referencing
        from importlib import resources

        self.kubernetes_validate = kubernetes_validate
        self.jsonschema = jsonschema
        folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
        definitions = json.loads((folder / "_definitions.json").read_text())
        registry = referencing.Registry().with_resource(definitions["$id"],
                                                        referencing.Resource.from_contents(definitions))
        self.crd_validators = {}
        for key, name in SCHEMA_FILES.items():
            with open(os.path.join(HERE, "schemas", name)) as f:
                schema = json.load(f)
            self.crd_validators[key] = jsonschema.Draft202012Validator(schema, registry=registry)

    def errors(self, obj):
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in self.crd_validators:
            found = sorted(self.crd_validators[key].iter_errors(obj), key=lambda e: list(e.absolute_path))
            return ["/".join(map(str, e.absolute_path)) + ": " + e.message for e in found]
        try:
            self.kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            return []
        except self.kubernetes_validate.ValidationError as e:
            return ["/".join(map(str, e.path)) + ": " + e.message]
        except self.kubernetes_validate.SchemaNotFoundError as e:
            return [e.message]


def render(folder):
    result = subprocess.run([KUBECTL, "kustomize", folder], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        fail(folder, "kubectl kustomize failed: " + result.stderr.strip())
        return []
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def pod_templates(obj):
    """(name, pod template) of a Deployment or of each MPIJob replica."""
    if obj["kind"] == "Deployment":
        return [(obj["metadata"]["name"], obj["spec"]["template"])]
    if obj["kind"] == "MPIJob":
        return [(f"{obj['metadata']['name']}/{role}", spec["template"])
                for role, spec in obj["spec"]["mpiReplicaSpecs"].items()]
    return []


def check_references(where, objects):
    names = {kind: {o["metadata"]["name"] for o in objects if o["kind"] == kind}
             for kind in ("ConfigMap", "PersistentVolumeClaim")}
    for obj in objects:
        for name, template in pod_templates(obj):
            spec = template["spec"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for v in volumes.values():
                if "configMap" in v and v["configMap"]["name"] not in names["ConfigMap"]:
                    fail(where, f"{name}: volume {v['name']} names ConfigMap {v['configMap']['name']}, not rendered")
                claim = v.get("persistentVolumeClaim", {}).get("claimName")
                if claim and claim not in names["PersistentVolumeClaim"]:
                    fail(where, f"{name}: volume {v['name']} names PersistentVolumeClaim {claim}, not rendered")
            for container in spec["containers"]:
                for mount in container.get("volumeMounts", []):
                    if mount["name"] not in volumes:
                        fail(where, f"{name}: container {container['name']} mounts unknown volume {mount['name']}")


def check_mpijob(where, job):
    spec = job["spec"]
    worker = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    volumes = {v["name"]: v for v in worker.get("volumes", [])}
    for container in worker["containers"]:
        gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        if gpus is not None and int(gpus) != spec.get("slotsPerWorker", 1):
            fail(where, f"worker asks for {gpus} GPUs but slotsPerWorker is {spec.get('slotsPerWorker', 1)}")
        shm = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"]
        if not shm or volumes[shm[0]["name"]].get("emptyDir", {}).get("medium") != "Memory":
            fail(where, f"worker container {container['name']} has no memory-backed /dev/shm")
    if not spec.get("runPolicy", {}).get("cleanPodPolicy"):
        fail(where, "MPIJob has no runPolicy.cleanPodPolicy")


def check_probes(where, deployment):
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        ports = {p["containerPort"] for p in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe"):
            grpc = container.get(probe, {}).get("grpc")
            if not grpc or grpc["port"] not in ports:
                fail(where, f"{deployment['metadata']['name']}: {probe} is not a gRPC probe on a declared port")


def check_pod_monitor(where, monitor, objects):
    wanted = monitor["spec"]["selector"].get("matchLabels", {})
    ports = [e["port"] for e in monitor["spec"].get("podMetricsEndpoints", []) if "port" in e]
    for obj in objects:
        for _, template in pod_templates(obj):
            labels = template.get("metadata", {}).get("labels", {})
            if wanted.items() <= labels.items():
                declared = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
                missing = [p for p in ports if p not in declared]
                if missing:
                    fail(where, f"PodMonitor {monitor['metadata']['name']}: selected pods have no port {missing}")
                return
    fail(where, f"PodMonitor {monitor['metadata']['name']} selects no rendered pod template")


def check_training_config(where, config_map, bin_dir, scratch):
    text = config_map.get("data", {}).get("train.yaml")
    if text is None:
        return
    path = os.path.join(scratch, "train.yaml")
    with open(path, "w") as f:
        f.write(text)
    overrides = []
    config = yaml.safe_load(text)
    dataset = os.path.join(config["data"]["root_path"], config["data"].get("image_folder", ""))
    if not os.path.exists(dataset):  # a cluster's dataset; check everything else
        overrides = ["--set", f"data.root_path={scratch}", "--set", "data.image_folder="]
    result = subprocess.run([os.path.join(bin_dir, "ijepa-train"), "--config", path, "--validate"] + overrides,
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        fail(where, f"ConfigMap {config_map['metadata']['name']}: ijepa-train --validate: {result.stderr.strip()}")


def check_validators_reject_broken_objects(validator, objects):
    job = copy.deepcopy(next(o for o in objects if o["kind"] == "MPIJob"))
    job["spec"]["runPolicy"]["cleanPodPolicy"] = "Sometimes"
    job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["gpus"] = 8
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    deployment["spec"]["replica"] = 1
    for broken, expected in ((job, "Sometimes"), (job, "gpus"), (deployment, "replica")):
        if not any(expected in e for e in validator.errors(broken)):
            fail("validator", f"a {broken['kind']} with a bad '{expected}' was accepted")


def main():
    bin_dir = sys.argv[1]
    if not KUBECTL:
        print("SKIP: kubectl is missing: run deploy/setup.sh (installs it into .venv when the machine lacks one)")
        return 77
    try:
        validator = Validator()
    except ImportError as e:
        print(f"SKIP: {e.name} is missing: run deploy/setup.sh (installs kubernetes-validate into .venv)")
        return 77
    folders = [os.path.join(ROOT, "k8s/base")] + sorted(glob.glob(os.path.join(ROOT, "k8s/overlays/*")))
    counted = 0
    with tempfile.TemporaryDirectory(prefix="ijepa-k8s-test.") as scratch:
        for folder in folders:
            where = os.path.relpath(folder, ROOT)
            objects = render(folder)
            for obj in objects:
                for error in validator.errors(obj):
                    fail(where, f"{obj['kind']} {obj['metadata']['name']}: {error}")
            counted += len(objects)
            kinds = {o["kind"] for o in objects}
            for required in ("Deployment", "Service", "PersistentVolumeClaim", "ConfigMap", "MPIJob"):
                if required not in kinds:
                    fail(where, f"renders no {required}")
            check_references(where, objects)
            for obj in objects:
                if obj["kind"] == "MPIJob":
                    check_mpijob(where, obj)
                elif obj["kind"] == "Deployment":
                    check_probes(where, obj)
                elif obj["kind"] == "PodMonitor":
                    check_pod_monitor(where, obj, objects)
                elif obj["kind"] == "ConfigMap":
                    check_training_config(where, obj, bin_dir, scratch)
            if folder == folders[0]:
                check_validators_reject_broken_objects(validator, objects)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print(f"PASS: {len(folders)} kustomizations, {counted} objects valid against Kubernetes {KUBERNETES_VERSION} "
          "and the MPIJob/PodMonitor schemas; references, GPUs, /dev/shm, probes and training configs consistent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
