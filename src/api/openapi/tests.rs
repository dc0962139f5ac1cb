//! The documents against the real routers: each is served, is OpenAPI 3.1, documents every
//! route (by construction: no route is added outside `routes!`, checked in the sources) and
//! documents nothing the router does not serve; every operation that takes a body answers a
//! body over its limit with 413 problem+json.

use computegate_kyc::accounts::StaffRole;
use http::{Method, header};
use serde_json::Value;
use uuid::Uuid;

use crate::api::test_support::{Answer, Api, Call, get};

/// The methods probed on every documented path.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Larger than every body limit of both APIs (documents: 10 MiB + multipart framing).
const OVERSIZED: usize = 11 * 1024 * 1024;

/// Which API a document describes.
#[derive(Clone, Copy, Debug)]
enum Side {
    Customer,
    Staff,
}

async fn call(api: &Api, side: Side, req: Call) -> Answer {
    match side {
        Side::Customer => api.customer(req).await,
        Side::Staff => api.staff(req).await,
    }
}

async fn document(api: &Api, side: Side) -> Value {
    let path = match side {
        Side::Customer => "/computegate/openapi.json",
        Side::Staff => "/staff/v1/openapi.json",
    };
    let answer = call(api, side, get(path)).await;
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "{side:?}"
    );
    answer.ok(200).clone()
}

/// `path` with every `{parameter}` filled: a provider name for webhooks, a UUID otherwise.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("closing brace") + start;
        out.push_str(&rest[..start]);
        match &rest[start + 1..end] {
            "provider" => out.push_str("stripe"),
            _ => out.push_str(&Uuid::now_v7().to_string()),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The documented operations: (path template, method, operation).
fn operations(doc: &Value) -> Vec<(String, Method, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in &METHODS {
            let key = method.as_str().to_ascii_lowercase();
            if let Some(op) = item.get(&key) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn both_documents_are_served_as_openapi_3_1() {
    let api = Api::start().await;
    for (side, scheme, sample) in [
        (Side::Customer, "customer", "/computegate/v1/keys"),
        (Side::Staff, "staff", "/staff/v1/applications"),
    ] {
        let doc = document(&api, side).await;
        assert_eq!(doc["openapi"], "3.1.0", "{side:?}");
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"], "bearer",
            "{side:?}"
        );
        assert!(doc["paths"][sample]["get"].is_object(), "{side:?}: {doc}");
        let mut ids = std::collections::BTreeSet::new();
        for (path, method, op) in operations(&doc) {
            // Every operation may answer a problem document.
            let problem = &op["responses"]["4XX"]["content"]["application/problem+json"];
            assert!(problem.is_object(), "{method} {path}: {op}");
            // OpenAPI 3.1 requires a description on every response, and unique operation ids.
            for (status, response) in op["responses"].as_object().unwrap() {
                let description = response["description"].as_str().unwrap_or_default();
                assert!(!description.is_empty(), "{method} {path} {status}");
            }
            let id = op["operationId"].as_str().expect("an operation id");
            assert!(ids.insert(id.to_owned()), "{side:?}: {id} twice");
        }
    }
    // Each API documents only its own listener's paths.
    let customer = document(&api, Side::Customer).await;
    let staff = document(&api, Side::Staff).await;
    assert!(
        customer["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| { p.starts_with("/computegate/") || p.starts_with("/.well-known/") })
    );
    assert!(
        (staff["paths"].as_object().unwrap().keys()).all(|p| p.starts_with("/staff/")),
        "{staff}"
    );
    // The lists document their page contract.
    let keys = &customer["paths"]["/computegate/v1/keys"]["get"];
    let params: Vec<&str> = (keys["parameters"].as_array().unwrap().iter())
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(params, ["limit", "cursor"]);
    let list = &customer["components"]["schemas"]["KeyList"]["properties"];
    assert!(list["next"].is_object(), "{list}");
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method() {
    let api = Api::start().await;
    for side in [Side::Customer, Side::Staff] {
        let doc = document(&api, side).await;
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() > 10, "{side:?}: {doc}");
        for (template, item) in paths {
            let path = concrete(template);
            for method in METHODS {
                let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
                let answer = call(&api, side, Call::new(method.clone(), &path)).await;
                let what = format!("{side:?} {method} {template}");
                if documented {
                    // Anything but the router's own refusals: the handler ran (most answer 401
                    // here, since no credential is sent).
                    assert_ne!(answer.status, 405, "{what}: {answer:?}");
                    assert_ne!(
                        answer.body["detail"], "nothing is served at this path",
                        "{what}: {answer:?}"
                    );
                } else {
                    answer.problem(405, "method-not-allowed");
                }
            }
        }
        // And the fallback is what the probe above tells apart.
        let nowhere = call(&api, side, get("/computegate/v1/nowhere")).await;
        assert_eq!(nowhere.body["detail"], "nothing is served at this path");
    }
}

#[test]
fn no_route_is_added_outside_routes_macro() {
    // `routes!` registers a handler and documents it in one step; a route added any other way
    // would be served undocumented.
    let sources = [
        ("mod.rs", include_str!("../mod.rs")),
        ("applications.rs", include_str!("../applications.rs")),
        ("customer.rs", include_str!("../customer.rs")),
        ("incidents.rs", include_str!("../incidents.rs")),
        ("jobs.rs", include_str!("../jobs.rs")),
        ("metering.rs", include_str!("../metering.rs")),
        ("organizations.rs", include_str!("../organizations.rs")),
        ("review.rs", include_str!("../review.rs")),
        ("tokens.rs", include_str!("../tokens.rs")),
        ("usage.rs", include_str!("../usage.rs")),
        ("webhooks.rs", include_str!("../webhooks.rs")),
    ];
    for (file, text) in sources {
        for bypass in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            assert!(!text.contains(bypass), "{file} adds a route with {bypass}");
        }
    }
}

#[tokio::test]
async fn every_body_over_its_limit_is_413_problem_json() {
    let api = Api::start().await;
    let customer = api.new_customer().await;
    let reviewer = api.staff_token(StaffRole::Reviewer).await;
    let mut checked = 0;
    for side in [Side::Customer, Side::Staff] {
        let doc = document(&api, side).await;
        for (template, method, op) in operations(&doc) {
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            let media = content.keys().next().expect("a media type").clone();
            let mut req = Call::new(method.clone(), &concrete(&template))
                // Usage events are refused unsigned before their body is looked at.
                .header(
                    http::HeaderName::from_static("x-computegate-signature"),
                    "t=1,v1=00",
                );
            req = match side {
                Side::Customer => req.bearer(&customer.token),
                Side::Staff => req.bearer(&reviewer),
            };
            let req = if media == "multipart/form-data" {
                let mut body = b"--XX\r\nContent-Disposition: form-data; name=\"file\"; \
                    filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
                    .to_vec();
                body.resize(body.len() + OVERSIZED, b'x');
                body.extend_from_slice(b"\r\n--XX--\r\n");
                req.raw("multipart/form-data; boundary=XX", body)
            } else {
                let mut body = br#"{"reason":""#.to_vec();
                body.resize(body.len() + OVERSIZED, b'x');
                body.extend_from_slice(br#""}"#);
                req.raw(&media, body)
            };
            let answer = call(&api, side, req).await;
            assert_eq!(
                answer.status.as_u16(),
                413,
                "{side:?} {method} {template}: {answer:?}"
            );
            answer.problem(413, "payload-too-large");
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} operations take a body");
}
