use serde_json::json;

use super::*;

fn parse_json(v: Value) -> Result<JobSpec, SpecError> {
    parse(&v, &SpecLimits::default())
}

fn path_of(e: SpecError) -> String {
    match e {
        SpecError::Field { path, .. } => path,
        other => panic!("expected a field error, got {other:?}"),
    }
}

/// A Job whose pod template is `pod`.
fn job_with_pod(pod: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "train"},
           "spec": {"template": {"spec": pod}}})
}

fn gpus(limits: Value) -> Value {
    json!({"name": "c", "image": "x", "resources": {"limits": limits}})
}

#[test]
fn quantities() {
    for (q, n) in [
        ("8", 8),
        ("1k", 1000),
        ("2Ki", 2048),
        ("1e3", 1000),
        ("8000m", 8),
        ("+4", 4),
        ("0", 0),
        ("1.5k", 1500),
        ("3E0", 3),
        ("12000000000u", 12000),
    ] {
        assert_eq!(parse_quantity(q), Ok(n), "{q}");
    }
    for q in [
        "500m",
        "0.5",
        "-1",
        "",
        "1x",
        "1e100",
        "99999999999999999999999",
        "1.2.3",
        "e3",
        ".",
        "1Ei0",
    ] {
        assert!(parse_quantity(q).is_err(), "{q}");
    }
}

#[test]
fn parallelism_times_pod_gpus() {
    let mut v = job_with_pod(json!({"containers": [gpus(json!({"nvidia.com/gpu": 8})),
        gpus(json!({"nvidia.com/gpu": "2"})), {"name": "sidecar", "image": "y"}]}));
    v["spec"]["parallelism"] = json!(4);
    assert_eq!(parse_json(v).unwrap().accelerators, 40);
    let no_parallelism = job_with_pod(json!({"containers": [gpus(json!({"nvidia.com/gpu": 1}))]}));
    assert_eq!(parse_json(no_parallelism).unwrap().accelerators, 1);
}

#[test]
fn init_containers_follow_the_effective_request_rule() {
    let pod = json!({
        "initContainers": [
            gpus(json!({"nvidia.com/gpu": 6})),
            {"name": "sidecar", "image": "s", "restartPolicy": "Always",
             "resources": {"limits": {"nvidia.com/gpu": 1}}}
        ],
        "containers": [gpus(json!({"nvidia.com/gpu": 4}))]
    });
    // max(6, 4 + 1) = 6
    assert_eq!(parse_json(job_with_pod(pod)).unwrap().accelerators, 6);
    let requests_only = json!({"containers": [{"name": "c", "image": "x",
        "resources": {"requests": {"nvidia.com/gpu": 3}}}]});
    assert_eq!(
        parse_json(job_with_pod(requests_only))
            .unwrap()
            .accelerators,
        3
    );
    let tpu = json!({"containers": [gpus(json!({"google.com/tpu": 4}))],
        "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": "tpu-v5p-slice"}});
    let spec = parse_json(job_with_pod(tpu)).unwrap();
    assert_eq!(
        (spec.accelerators, spec.accelerator_type.as_deref()),
        (4, Some("tpu-v5p-slice"))
    );
}

#[test]
fn types_from_selectors_and_affinity() {
    let pod = json!({
        "containers": [gpus(json!({"nvidia.com/gpu": 1}))],
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "nvidia.com/gpu.product", "operator": "In",
                 "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-B200"]},
                {"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": ["NVIDIA-A100-SXM4-80GB"]},
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
            ]}]}}}
    });
    let spec = parse_json(job_with_pod(pod)).unwrap();
    assert_eq!(
        spec.accelerator_type.as_deref(),
        Some("NVIDIA-H100-80GB-HBM3")
    );
    assert_eq!(
        spec.accelerator_alternatives,
        vec!["NVIDIA-B200".to_string()]
    );
}

#[test]
fn deadline_and_declarations() {
    let mut v = job_with_pod(json!({"containers": [gpus(json!({"nvidia.com/gpu": 8}))]}));
    v["spec"]["activeDeadlineSeconds"] = json!(3600);
    v["metadata"]["labels"] = json!({
        "computegate.dev/run-id": "r-7",
        "computegate.dev/end-customer": "ec-1",
        "app": "train"
    });
    v["metadata"]["annotations"] = json!({
        "computegate.dev/parent-run-id": "r-6",
        "computegate.dev/model-parameters": "7e9",
        "computegate.dev/dataset-tokens": "140000000000",
        "computegate.dev/dataset-kind": "biological_sequence",
        "computegate.dev/precision": "bf16"
    });
    let spec = parse_json(v.clone()).unwrap();
    assert_eq!(spec.duration.unwrap().as_secs(), 3600);
    assert_eq!(spec.run_id.as_deref(), Some("r-7"));
    assert_eq!(spec.end_customer.as_deref(), Some("ec-1"));
    assert_eq!(spec.parent_run_id.as_deref(), Some("r-6"));
    assert!(spec.is_biological_sequence());
    assert_eq!(spec.declared.unwrap().flop(), Some(6.0 * 7e9 * 1.4e11));
    v["metadata"]["annotations"]["computegate.dev/run-id"] = json!("r-8");
    assert_eq!(path_of(parse_json(v).unwrap_err()), "metadata.annotations");
}

#[test]
fn bad_input_is_named() {
    let c = |limits: Value| json!({"containers": [gpus(limits)]});
    let cases = [
        (json!({"kind": "Pod", "spec": {}}), "kind"),
        (json!({"apiVersion": "batch/v2", "spec": {}}), "apiVersion"),
        (json!({"kind": "Job"}), "spec"),
        (json!({"spec": {"template": {}}}), "spec.template.spec"),
        (job_with_pod(json!({})), "spec.template.spec.containers"),
        (
            job_with_pod(json!({"containers": []})),
            "spec.template.spec.containers",
        ),
        (
            job_with_pod(json!({"containers": "x"})),
            "spec.template.spec.containers",
        ),
        (
            job_with_pod(c(json!({"nvidia.com/gpu": "500m"}))),
            "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
        ),
        (
            job_with_pod(c(json!({"nvidia.com/gpu": -1}))),
            "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
        ),
        (
            job_with_pod(c(json!({"nvidia.com/gpu": 0.5}))),
            "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
        ),
        (
            job_with_pod(c(json!({"nvidia.com/gpu": "1E"}))),
            "spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]",
        ),
        (
            job_with_pod(json!({"containers": [{"resources": {"limits": 3}}]})),
            "spec.template.spec.containers[0].resources.limits",
        ),
    ];
    for (body, path) in cases {
        let err = parse_json(body.clone()).expect_err("invalid");
        assert_eq!(path_of(err), path, "{body}");
    }
    let mut v = job_with_pod(c(json!({"nvidia.com/gpu": 8})));
    v["spec"]["parallelism"] = json!(-2);
    assert_eq!(
        path_of(parse_json(v.clone()).unwrap_err()),
        "spec.parallelism"
    );
    v["spec"]["parallelism"] = json!(1_000_000);
    assert_eq!(
        path_of(parse_json(v.clone()).unwrap_err()),
        "spec.parallelism"
    );
    v["spec"]["parallelism"] = json!(1);
    v["spec"]["activeDeadlineSeconds"] = json!(0);
    assert_eq!(
        path_of(parse_json(v.clone()).unwrap_err()),
        "spec.activeDeadlineSeconds"
    );
    v["spec"]["activeDeadlineSeconds"] = json!(1e12);
    assert_eq!(
        path_of(parse_json(v).unwrap_err()),
        "spec.activeDeadlineSeconds"
    );
}
