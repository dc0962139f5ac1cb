//! Router tests of the customer's verification API: every route's happy path, and refusals
//! for a missing credential, another customer's or a malformed id, bad bodies and bad fields.

use http::Method;
use serde_json::{Value, json};

use crate::api::test_support::{Api, Call, Customer, data, get, post};

const BASE: &str = "/computegate/v1/kyc/applications";

/// A complete individual application for `identity_verified`.
pub(crate) fn individual(name: &str, country: &str) -> Value {
    json!({
        "kind": "individual",
        "requested_tier": "identity_verified",
        "individual": {
            "legal_name": name,
            "date_of_birth": "1988-07-02",
            "nationality": country,
            "address": {"line1": "1 Main Street", "city": "Springfield", "postal_code": "12345", "country": country},
            "id_document": {"type": "passport", "number": "SE9988776", "issuing_country": country},
            "phone": "+46 70 123 45 67"
        },
        "payment_fingerprint": "pm_fp_0123456789",
        "intended_use": {
            "category": "model_training",
            "description": "Fine-tuning language models for customer support.",
            "biological_sequence_data": false,
            "model_export": false
        },
        "expected_peak_accelerators": 16,
        "expected_total_flop": 1.0e21
    })
}

/// A `multipart/form-data` body with a `type` field and a `file` part.
pub(crate) fn upload(doc_type: &str, filename: &str, content_type: &str, bytes: &[u8]) -> Call {
    let boundary = "cgrouterboundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{doc_type}\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Call::new(Method::POST, "/").raw(&format!("multipart/form-data; boundary={boundary}"), body)
}

/// Drafts `payload` for `c`; the application id.
pub(crate) async fn draft(api: &Api, c: &Customer, payload: &Value) -> String {
    let answer = api
        .customer(post(BASE).bearer(&c.token).json(payload))
        .await;
    answer.ok(201)["id"].as_str().unwrap().to_owned()
}

/// Uploads the sample passport PDF to application `id` of `c`; the document id.
pub(crate) async fn upload_passport(api: &Api, c: &Customer, id: &str) -> String {
    let pdf = std::fs::read(data("passport.pdf")).unwrap();
    let mut call = upload("passport", "passport.pdf", "application/pdf", &pdf);
    call.set_path(&format!("{BASE}/{id}/documents"));
    let answer = api.customer(call.bearer(&c.token)).await;
    answer.ok(201)["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_application_is_drafted_patched_documented_and_submitted() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    let partial = json!({"kind": "individual", "requested_tier": "identity_verified",
        "individual": {"legal_name": "Maria Lindqvist"}});
    let created = api
        .customer(post(BASE).bearer(&c.token).json(&partial))
        .await;
    let body = created.ok(201).clone();
    assert!(created.no_store());
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers.get(http::header::LOCATION).unwrap(),
        &format!("{BASE}/{id}")
    );
    assert_eq!(body["status"], "draft");

    let list = api.customer(get(BASE).bearer(&c.token)).await;
    assert_eq!(list.ok(200)["applications"].as_array().unwrap().len(), 1);
    assert!(list.no_store());
    let read = api
        .customer(get(&format!("{BASE}/{id}")).bearer(&c.token))
        .await;
    assert_eq!(
        read.ok(200)["payload"]["individual"]["legal_name"],
        "Maria Lindqvist"
    );

    let patch = Call::new(Method::PATCH, &format!("{BASE}/{id}"))
        .bearer(&c.token)
        .json(&individual("Maria Lindqvist", "SE"));
    let patched = api.customer(patch).await;
    assert_eq!(
        patched.ok(200)["payload"]["individual"]["nationality"],
        "SE"
    );

    let doc_id = upload_passport(&api, &c, &id).await;
    let docs = api
        .customer(get(&format!("{BASE}/{id}/documents")).bearer(&c.token))
        .await;
    let docs = docs.ok(200)["documents"].as_array().unwrap().clone();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["id"], doc_id.as_str());
    assert!(docs[0].get("bytes").is_none());

    // No list imported yet: the application waits in `submitted` for the sweep.
    let submitted = api
        .customer(post(&format!("{BASE}/{id}/submit")).bearer(&c.token))
        .await;
    assert_eq!(submitted.ok(200)["status"], "submitted");
    assert!(submitted.no_store());
    // With a list, a submission is screened at once.
    api.import_list("csl.csv").await;
    let other = api.new_customer().await;
    let id = draft(&api, &other, &individual("Erik Nyberg", "SE")).await;
    let submitted = api
        .customer(post(&format!("{BASE}/{id}/submit")).bearer(&other.token))
        .await;
    assert_eq!(submitted.ok(200)["status"], "pending_review");
}

#[tokio::test]
async fn every_application_route_refuses_a_missing_credential() {
    let api = Api::start().await;
    let id = uuid::Uuid::now_v7();
    let calls = [
        post(BASE).json(&json!({})),
        get(BASE),
        get(&format!("{BASE}/{id}")),
        Call::new(Method::PATCH, &format!("{BASE}/{id}")).json(&json!({})),
        post(&format!("{BASE}/{id}/submit")),
        get(&format!("{BASE}/{id}/documents")),
        post(&format!("{BASE}/{id}/documents")),
    ];
    for call in calls {
        api.customer(call).await.problem(401, "unauthenticated");
    }
}

#[tokio::test]
async fn another_customers_or_a_malformed_id_is_not_found() {
    let api = Api::start().await;
    let owner = api.new_customer().await;
    let eve = api.new_customer().await;
    let id = draft(&api, &owner, &individual("Maria Lindqvist", "SE")).await;
    for path in [format!("{BASE}/{id}"), format!("{BASE}/not-a-uuid")] {
        api.customer(get(&path).bearer(&eve.token))
            .await
            .problem(404, "not-found");
        let patch = Call::new(Method::PATCH, &path)
            .bearer(&eve.token)
            .json(&json!({}));
        api.customer(patch).await.problem(404, "not-found");
        api.customer(post(&format!("{path}/submit")).bearer(&eve.token))
            .await
            .problem(404, "not-found");
        api.customer(get(&format!("{path}/documents")).bearer(&eve.token))
            .await
            .problem(404, "not-found");
    }
    let pdf = std::fs::read(data("passport.pdf")).unwrap();
    let mut call = upload("passport", "passport.pdf", "application/pdf", &pdf);
    call.set_path(&format!("{BASE}/{id}/documents"));
    api.customer(call.bearer(&eve.token))
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn bad_bodies_and_fields_are_refused() {
    let api = Api::start().await;
    let c = api.new_customer().await;
    api.customer(
        post(BASE)
            .bearer(&c.token)
            .raw("application/json", b"{".to_vec()),
    )
    .await
    .problem(422, "invalid-request");
    let mut bad = individual("Maria Lindqvist", "se");
    bad["expected_total_flop"] = json!(-1.0);
    let doc = api.customer(post(BASE).bearer(&c.token).json(&bad)).await;
    let doc = doc.problem(422, "invalid-request");
    assert!(doc["errors"].as_array().unwrap().len() >= 2, "{doc}");
    let mut unknown_tier = individual("Maria Lindqvist", "SE");
    unknown_tier["requested_tier"] = json!("galactic");
    let doc = api
        .customer(post(BASE).bearer(&c.token).json(&unknown_tier))
        .await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "requested_tier"
    );

    let id = draft(&api, &c, &individual("Maria Lindqvist", "SE")).await;
    let not_object = Call::new(Method::PATCH, &format!("{BASE}/{id}"))
        .bearer(&c.token)
        .json(&json!([1, 2]));
    api.customer(not_object)
        .await
        .problem(400, "malformed-body");
    let bad_patch = Call::new(Method::PATCH, &format!("{BASE}/{id}"))
        .bearer(&c.token)
        .json(&json!({"expected_total_flop": -5}));
    api.customer(bad_patch)
        .await
        .problem(422, "invalid-request");

    let not_multipart = post(&format!("{BASE}/{id}/documents"))
        .bearer(&c.token)
        .json(&json!({}));
    api.customer(not_multipart)
        .await
        .problem(415, "unsupported-media-type");
    let png = std::fs::read(data("photo.png")).unwrap();
    let mut lying = upload("passport", "passport.pdf", "application/pdf", &png);
    lying.set_path(&format!("{BASE}/{id}/documents"));
    let doc = api.customer(lying.bearer(&c.token)).await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "file"
    );
    let mut no_type = upload("spaceship", "passport.pdf", "application/pdf", &png);
    no_type.set_path(&format!("{BASE}/{id}/documents"));
    let doc = api.customer(no_type.bearer(&c.token)).await;
    assert_eq!(
        doc.problem(422, "invalid-request")["errors"][0]["field"],
        "type"
    );

    // A second application while one is in progress is a conflict naming the open one.
    let answer = api
        .customer(
            post(BASE)
                .bearer(&c.token)
                .json(&individual("Maria Lindqvist", "SE")),
        )
        .await;
    let doc = answer.problem(409, "application-in-progress");
    assert_eq!(doc["application_id"], id.to_string());
    assert_eq!(doc["application"], format!("{BASE}/{id}"));
}
