//! Criterion bench of the per-request header work: hop-by-hop removal, forwarding headers,
//! identity-header stripping and request-id handling, on a typical browser/SDK request head.

use std::hint::black_box;

use computegate_gateway::forward::{
    ClientFacts, prepare_request_headers, prepare_response_headers, request_id,
};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};

fn typical_request() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.gpu-cloud.example:8080"),
        ("user-agent", "computegate-sdk/1.4 (linux; x86_64)"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        (
            "authorization",
            "Bearer cg_abcdefghijklmnop_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
        ),
        ("content-type", "application/json"),
        ("content-length", "512"),
        ("connection", "keep-alive"),
        ("x-computegate-run", "run-42"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn bench(c: &mut Criterion) {
    let facts = ClientFacts {
        ip: "203.0.113.9".parse().unwrap(),
        proto: "https",
        trust_forwarded: false,
    };
    let template = typical_request();
    c.bench_function("prepare_request_headers", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |h| black_box(prepare_request_headers(h, &facts)),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("request_id_generate", |b| {
        let empty = HeaderMap::new();
        b.iter(|| black_box(request_id(&empty)))
    });
    let mut resp = HeaderMap::new();
    resp.insert("content-type", HeaderValue::from_static("application/json"));
    resp.insert("content-length", HeaderValue::from_static("49"));
    resp.insert(
        "date",
        HeaderValue::from_static("Wed, 25 Nov 2026 16:12:36 GMT"),
    );
    c.bench_function("prepare_response_headers", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            |h| prepare_response_headers(h, false),
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
