use serde_json::json;

use super::*;

fn parse_json(v: Value) -> Result<JobSpec, SpecError> {
    parse(&v, &SpecLimits::default())
}

fn job(fields: Value) -> JobSpec {
    parse_json(json!({ "job": fields })).expect("valid job")
}

fn path_of(e: SpecError) -> String {
    match e {
        SpecError::Field { path, .. } => path,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn tres_forms() {
    let cases = [
        ("gres/gpu:h100:8", 8, Some("h100")),
        ("gres/gpu:h100=8", 8, Some("h100")),
        ("gres/gpu=8", 8, None),
        ("gres/gpu:8", 8, None),
        ("gres/gpu", 1, None),
        ("gres/gpu:h100", 1, Some("h100")),
        ("cpu=4,mem=16G,gres/gpu:a100:2", 2, Some("a100")),
        ("gres:gpu:4", 4, None),
        ("gres/shard=4,license/matlab=1", 0, None),
    ];
    for (tres, n, t) in cases {
        let spec = job(json!({"tres_per_job": tres, "time_limit": 60}));
        assert_eq!(spec.accelerators, n, "{tres}");
        assert_eq!(spec.accelerator_type.as_deref(), t, "{tres}");
    }
}

#[test]
fn per_node_task_and_gres_multiply() {
    let spec = job(json!({"tres_per_node": "gres/gpu:h100:8", "nodes": "2-4"}));
    assert_eq!(spec.accelerators, 32);
    let spec = job(json!({"tres_per_node": "gres/gpu:8", "nodes": 2}));
    assert_eq!(spec.accelerators, 16);
    let spec = job(json!({"tres_per_node": "gres/gpu:8", "minimum_nodes": 3, "maximum_nodes": 5}));
    assert_eq!(spec.accelerators, 40);
    let spec = job(
        json!({"tres_per_node": "gres/gpu:8", "nodes": {"number": 2, "set": true, "infinite": false}}),
    );
    assert_eq!(spec.accelerators, 16);
    let spec = job(json!({"tres_per_task": "gres/gpu:1", "tasks": 16}));
    assert_eq!(spec.accelerators, 16);
    let spec = job(json!({"tres_per_task": "gres/gpu:1", "tasks_per_node": 4, "nodes": "3"}));
    assert_eq!(spec.accelerators, 12);
    let spec = job(json!({"gres": "gpu:a100:4", "nodes": "1,3,2"}));
    assert_eq!(spec.accelerators, 12);
    // The same request in two fields is not double counted.
    let spec = job(json!({"tres_per_node": "gres/gpu:4", "tres_per_job": "gres/gpu:4"}));
    assert_eq!(spec.accelerators, 4);
    // No GPU request at all: a CPU job.
    let spec = job(json!({"name": "cpu-only", "tasks": 4}));
    assert_eq!(spec.accelerators, 0);
}

#[test]
fn several_types_become_candidates() {
    let spec = job(json!({"tres_per_node": "gres/gpu:a100:1,gres/gpu:h100:1"}));
    assert_eq!(spec.accelerators, 2);
    assert_eq!(spec.accelerator_type.as_deref(), Some("a100"));
    assert_eq!(spec.accelerator_alternatives, vec!["h100".to_string()]);
}

#[test]
fn time_limit_forms() {
    let minutes = |v: Value| job(json!({"time_limit": v})).duration.map(|d| d.as_secs());
    assert_eq!(minutes(json!(120)), Some(7200));
    assert_eq!(minutes(json!("90")), Some(5400));
    assert_eq!(
        minutes(json!({"number": 30, "set": true, "infinite": false})),
        Some(1800)
    );
    assert_eq!(minutes(json!({"number": 30, "set": false})), None);
    assert_eq!(minutes(json!({"set": true, "infinite": true})), None);
    assert_eq!(minutes(json!(0)), None, "Slurm reads 0 as no limit");
    assert_eq!(job(json!({})).duration, None);
}

#[test]
fn heterogeneous_jobs_sum() {
    let spec = parse_json(json!({"jobs": [
        {"tres_per_node": "gres/gpu:h100:8", "nodes": 2, "time_limit": 60},
        {"tres_per_job": "gres/gpu:b200:4", "time_limit": {"number": 120, "set": true}},
        {"tasks": 1, "time_limit": 30}
    ]}))
    .unwrap();
    assert_eq!(spec.accelerators, 20);
    assert_eq!(spec.accelerator_type.as_deref(), Some("h100"));
    assert_eq!(spec.accelerator_alternatives, vec!["b200".to_string()]);
    assert_eq!(spec.duration.unwrap().as_secs(), 7200);
    let open = parse_json(json!({"jobs": [{"time_limit": 60}, {"tasks": 1}]})).unwrap();
    assert_eq!(
        open.duration, None,
        "one component without a limit leaves the job unbounded"
    );
}

#[test]
fn declarations_travel_in_the_environment() {
    let spec = job(json!({"tres_per_job": "gres/gpu:8", "environment": [
        "PATH=/bin:/usr/bin",
        "COMPUTEGATE_RUN_ID=llm-70b",
        "COMPUTEGATE_PARENT_RUN_ID=llm-70b-base",
        "COMPUTEGATE_MODEL_PARAMETERS=7e10",
        "COMPUTEGATE_DATASET_TOKENS=1.5e12",
        "COMPUTEGATE_DATASET_KIND=text",
        "COMPUTEGATE_PRECISION=fp8"
    ]}));
    assert_eq!(spec.run_id.as_deref(), Some("llm-70b"));
    assert_eq!(spec.parent_run_id.as_deref(), Some("llm-70b-base"));
    assert_eq!(spec.declared.unwrap().flop(), Some(6.0 * 7e10 * 1.5e12));
    assert_eq!(spec.dataset_kind.as_deref(), Some("text"));
    assert_eq!(spec.precision, Some(crate::policy::Precision::Fp8));
    let spec = job(json!({"environment": {
        "COMPUTEGATE_RUN_ID": "r1",
        "COMPUTEGATE_END_CUSTOMER": "ec-1",
        "HOME": "/home/a"
    }}));
    assert_eq!(spec.run_id.as_deref(), Some("r1"));
    assert_eq!(spec.end_customer.as_deref(), Some("ec-1"));
    let conflict = parse_json(json!({"jobs": [
        {"environment": ["COMPUTEGATE_RUN_ID=a"]},
        {"environment": ["COMPUTEGATE_RUN_ID=b"]}
    ]}))
    .unwrap_err();
    assert_eq!(path_of(conflict), "jobs[1].environment");
}

#[test]
fn bad_input_is_named() {
    let cases = [
        (json!({}), "job"),
        (json!({"job": 3}), "job"),
        (json!({"job": {}, "jobs": []}), "jobs"),
        (json!({"jobs": []}), "jobs"),
        (json!({"jobs": [3]}), "jobs[0]"),
        (
            json!({"job": {"tres_per_node": "gres/gpu:h100:-8"}}),
            "job.tres_per_node",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:h100:1k"}}),
            "job.tres_per_node",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:a:b:8"}}),
            "job.tres_per_node",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:99999999999999999999"}}),
            "job.tres_per_node",
        ),
        (json!({"job": {"tres_per_node": 8}}), "job.tres_per_node"),
        (
            json!({"job": {"tres_per_node": "gres/gpu:8", "nodes": "2-x"}}),
            "job.nodes",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:8", "nodes": -1}}),
            "job.nodes",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:8", "nodes": 1e30}}),
            "job.nodes",
        ),
        (
            json!({"job": {"tres_per_node": "gres/gpu:1000", "nodes": 1_000_000}}),
            "job.tres_per_node",
        ),
        (
            json!({"job": {"tres_per_socket": "gres/gpu:2"}}),
            "job.tres_per_socket",
        ),
        (json!({"job": {"time_limit": -5}}), "job.time_limit"),
        (json!({"job": {"time_limit": "2:00:00"}}), "job.time_limit"),
        (
            json!({"job": {"time_limit": {"minutes": 10}}}),
            "job.time_limit.number",
        ),
        (json!({"job": {"time_limit": 1_000_000}}), "job.time_limit"),
        (
            json!({"job": {"environment": "PATH=/bin"}}),
            "job.environment",
        ),
        (
            json!({"job": {"environment": ["COMPUTEGATE_RUN_ID=has space"]}}),
            "job.environment[COMPUTEGATE_RUN_ID]",
        ),
        (
            json!({"job": {"environment": ["COMPUTEGATE_MODEL_PARAMETERS=NaN"]}}),
            "job.environment[COMPUTEGATE_MODEL_PARAMETERS]",
        ),
        (
            json!({"job": {"environment": ["COMPUTEGATE_RUN_ID=a", "COMPUTEGATE_PARENT_RUN_ID=a"]}}),
            "job.environment[COMPUTEGATE_PARENT_RUN_ID]",
        ),
    ];
    for (body, path) in cases {
        let err = parse_json(body.clone()).expect_err("invalid");
        assert_eq!(path_of(err), path, "{body}");
    }
}
