//! Resellers through the real API: a KYB-verified organization staff mark as reseller, its
//! organization id, and end customers it registers (`POST /computegate/v1/end-customers`)
//! with the identity of an application.

use serde_json::{Value, json};

use super::kyc::individual_application;
use super::{Cust, Meter};

/// `/computegate/v1/end-customers`.
pub(crate) const END_CUSTOMERS: &str = "/computegate/v1/end-customers";

/// `POST /computegate/v1/end-customers` as `c` with `identity`.
pub(crate) async fn register(m: &Meter, c: &Cust, identity: &Value) -> reqwest::Response {
    m.http
        .post(m.gw.url(END_CUSTOMERS))
        .header("authorization", format!("Bearer {}", c.access))
        .json(identity)
        .send()
        .await
        .expect("send end-customer registration")
}

/// Registers a new end customer, asserting 201 and `status`; returns its id.
pub(crate) async fn registered(m: &Meter, c: &Cust, identity: &Value, status: &str) -> String {
    let resp = register(m, c, identity).await;
    let code = resp.status();
    let doc: Value = resp.json().await.expect("end customer JSON");
    assert_eq!(code, 201, "register: {doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert_eq!(doc["already_registered"], false, "{doc}");
    doc["id"].as_str().expect("id").to_owned()
}

/// The identity of a person (an application's, without what only applications carry).
pub(crate) fn person(name: &str, dob: &str, country: &str, passport: &str) -> Value {
    let mut doc = individual_application(name, dob, country, passport);
    let doc = doc.as_object_mut().expect("object");
    doc.remove("requested_tier");
    Value::Object(doc.clone())
}

/// A fresh Swedish person's identity.
pub(crate) fn stranger(name: &str) -> Value {
    let passport = format!("SE{}", &uuid::Uuid::new_v4().simple().to_string()[..7]);
    person(name, "1988-07-01", "SE", &passport)
}

/// The organization of `c`, from `GET /computegate/v1/me`.
pub(crate) async fn organization_of(m: &Meter, c: &Cust) -> String {
    let resp = m
        .http
        .get(m.gw.url("/computegate/v1/me"))
        .header("authorization", format!("Bearer {}", c.access))
        .send()
        .await
        .expect("send me");
    let me: Value = resp.json().await.expect("me JSON");
    me["organization_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no organization: {me}"))
        .to_owned()
}

/// `POST /staff/v1/organizations/{org}/reseller` as `staff`.
pub(crate) async fn mark_reseller(m: &Meter, staff: &str, org: &str) -> reqwest::Response {
    let mark = format!("/staff/v1/organizations/{org}/reseller");
    m.staff_post(staff, &mark, &json!({})).await
}

/// A KYB-verified organization `legal_name` approved and marked as reseller by `staff`:
/// its owner and its organization id.
pub(crate) async fn reseller(m: &Meter, staff: &str, legal_name: &str) -> (Cust, String) {
    let (owner, _) = m.verified_organization(staff, legal_name).await;
    let org = organization_of(m, &owner).await;
    let resp = mark_reseller(m, staff, &org).await;
    assert_eq!(resp.status(), 201, "mark: {resp:?}");
    (owner, org)
}
