use std::sync::atomic::{AtomicUsize, Ordering};

use http::StatusCode;
use http_body_util::BodyExt;

use super::*;
use bytes::Bytes;
use http_body::Frame;

use crate::auth::{AuthMethod, IdentityHeaders};
use crate::body::peek::PeekedBody;

/// Bindings in memory: `job → customer` as the ledger knows it, `(upstream, id) → job`.
#[derive(Default)]
struct Memory {
    jobs: Mutex<HashMap<String, String>>,
    bound: Mutex<HashMap<(String, String), String>>,
    lookups: AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl JobOwners for Memory {
    fn bind(
        &self,
        job_id: String,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<(), OwnersUnavailable>> {
        let result = if self.down.load(Ordering::SeqCst) {
            Err(OwnersUnavailable)
        } else {
            let mut bound = self.bound.lock().expect("lock");
            bound.insert((upstream.to_string(), upstream_job_id), job_id);
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn owner(
        &self,
        upstream: Arc<str>,
        upstream_job_id: String,
    ) -> BoxFuture<Result<Option<String>, OwnersUnavailable>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let result = if self.down.load(Ordering::SeqCst) {
            Err(OwnersUnavailable)
        } else {
            let bound = self.bound.lock().expect("lock");
            let jobs = self.jobs.lock().expect("lock");
            Ok(bound
                .get(&(upstream.to_string(), upstream_job_id))
                .and_then(|job| jobs.get(job).cloned()))
        };
        Box::pin(async move { result })
    }
}

fn principal(customer: &str) -> Principal {
    Principal {
        customer_id: Arc::from(customer),
        tier: Arc::from("identity_verified"),
        organization_id: None,
        jurisdictions: Arc::from(Vec::new()),
        method: AuthMethod::Jwt,
        scopes: crate::scope::Scopes::ALL,
        credential_id: None,
        headers: IdentityHeaders::new(customer, "identity_verified", None).expect("header-safe"),
    }
}

fn setup() -> (Arc<Memory>, Ownership, OwnerPath, Arc<str>) {
    let memory = Arc::new(Memory::default());
    memory
        .jobs
        .lock()
        .expect("lock")
        .insert("ledger-1".into(), "alice".into());
    let ownership = Ownership::new(Some(memory.clone() as Arc<dyn JobOwners>));
    let template = OwnerPath::parse("/v1/jobs/{id}").expect("template");
    (memory, ownership, template, Arc::from("sim"))
}

fn answer(body: &'static str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = StatusCode::CREATED;
    resp
}

async fn body_text(resp: Response<ResponseBody>) -> String {
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn the_owner_passes_and_everyone_else_gets_404() {
    let (_memory, ownership, template, sim) = setup();
    let (alice, bob) = (principal("alice"), principal("bob"));
    let resp = ownership
        .learn(
            &sim,
            "/id",
            "ledger-1".into(),
            &alice,
            answer(r#"{"id":"j-7"}"#),
        )
        .await;
    assert_eq!(body_text(resp).await, r#"{"id":"j-7"}"#, "answer unchanged");

    for path in ["/v1/jobs/j-7", "/v1/jobs/j-7/logs", "/v1/jobs/j-7/attach"] {
        assert!(ownership.check(&template, &sim, path, &alice).await.is_ok());
        let refused = ownership.check(&template, &sim, path, &bob).await;
        assert!(matches!(refused, Err(GatewayError::NotOwner)), "{path}");
    }
    // The collection and other paths are not owner-checked.
    assert!(
        ownership
            .check(&template, &sim, "/v1/jobs", &bob)
            .await
            .is_ok()
    );
    // An unknown id is refused to everyone, like another customer's.
    let unknown = ownership
        .check(&template, &sim, "/v1/jobs/j-8", &alice)
        .await;
    assert!(matches!(unknown, Err(GatewayError::NotOwner)));
    // Another upstream's id space is apart.
    let other = ownership
        .check(&template, &Arc::from("slurm"), "/v1/jobs/j-7", &alice)
        .await;
    assert!(matches!(other, Err(GatewayError::NotOwner)));
    let problem = GatewayError::NotOwner.to_problem();
    assert_eq!(problem.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lookups_are_cached_and_a_dead_store_fails_closed() {
    let (memory, _, template, sim) = setup();
    memory
        .bound
        .lock()
        .expect("lock")
        .insert(("sim".into(), "j-7".into()), "ledger-1".into());
    let ownership = Ownership::new(Some(memory.clone() as Arc<dyn JobOwners>));
    let alice = principal("alice");
    for _ in 0..3 {
        assert!(
            ownership
                .check(&template, &sim, "/v1/jobs/j-7", &alice)
                .await
                .is_ok()
        );
    }
    assert_eq!(memory.lookups.load(Ordering::SeqCst), 1, "one store lookup");

    memory.down.store(true, Ordering::SeqCst);
    let down = ownership
        .check(&template, &sim, "/v1/jobs/j-9", &alice)
        .await;
    assert!(matches!(down, Err(GatewayError::Unavailable { .. })));
    let unwired = Ownership::new(None);
    let down = unwired.check(&template, &sim, "/v1/jobs/j-7", &alice).await;
    assert!(matches!(down, Err(GatewayError::Unavailable { .. })));
}

#[tokio::test]
async fn non_canonical_paths_are_refused() {
    let (_memory, ownership, template, sim) = setup();
    let bob = principal("bob");
    let refused = ownership
        .check(&template, &sim, "/v1/jobs/x/../j-7", &bob)
        .await;
    assert!(matches!(refused, Err(GatewayError::BadRequest(_))));
}

#[tokio::test]
async fn ids_come_from_the_pointer_as_string_or_integer() {
    assert_eq!(id_at(br#"{"id":"a"}"#, "/id").as_deref(), Some("a"));
    assert_eq!(id_at(br#"{"job_id":42}"#, "/job_id").as_deref(), Some("42"));
    assert_eq!(
        id_at(br#"{"metadata":{"name":"train"}}"#, "/metadata/name").as_deref(),
        Some("train")
    );
    assert_eq!(id_at(br#"{"id":""}"#, "/id"), None);
    assert_eq!(id_at(br#"{"id":1.5}"#, "/id"), None);
    assert_eq!(id_at(b"not json", "/id"), None);
}

#[tokio::test]
async fn a_large_answer_is_forwarded_whole_and_binds_nothing() {
    let (memory, ownership, _template, sim) = setup();
    let big: &'static str = Box::leak(
        format!("{{\"id\":\"j\",\"pad\":\"{}\"}}", "x".repeat(ANSWER_CAP)).into_boxed_str(),
    );
    // A streamed body of two frames, the first already past the cap.
    let (a, b) = big.split_at(ANSWER_CAP + 8);
    let two_frames = PeekedBody::from_frames(
        [a, b]
            .into_iter()
            .map(|part| Frame::data(Bytes::from_static(part.as_bytes()))),
    );
    let resp = Response::new(ResponseBody::Boxed(two_frames.boxed_unsync()));
    let resp = ownership
        .learn(&sim, "/id", "ledger-1".into(), &principal("alice"), resp)
        .await;
    assert_eq!(body_text(resp).await, big);
    assert!(memory.bound.lock().expect("lock").is_empty());
}
