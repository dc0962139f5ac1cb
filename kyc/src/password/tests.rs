use super::*;

fn fast() -> PasswordParams {
    PasswordParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
}

#[test]
fn default_is_owasp_minimum() {
    let p = PasswordParams::default();
    assert_eq!((p.memory_kib, p.iterations, p.parallelism), (19456, 2, 1));
    p.validate().unwrap();
}

#[test]
fn hash_verify_round_trip() {
    let h = Hasher::new(fast()).unwrap();
    let phc = h.hash("correct horse battery").unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    assert_eq!(
        h.verify("correct horse battery", &phc).unwrap(),
        Verified {
            needs_rehash: false
        }
    );
    assert!(matches!(
        h.verify("wrong horse battery", &phc),
        Err(PasswordError::Mismatch)
    ));
    assert!(matches!(
        h.verify("x", "not a phc string"),
        Err(PasswordError::MalformedHash)
    ));
    // Salted: two hashes of one password differ.
    assert_ne!(phc, h.hash("correct horse battery").unwrap());
}

#[test]
fn changed_params_ask_for_rehash() {
    let old = Hasher::new(fast()).unwrap();
    let phc = old.hash("correct horse battery").unwrap();
    let new = Hasher::new(PasswordParams {
        memory_kib: 2048,
        ..fast()
    })
    .unwrap();
    assert!(
        new.verify("correct horse battery", &phc)
            .unwrap()
            .needs_rehash
    );
    let argon2i = Argon2::new(
        Algorithm::Argon2i,
        Version::V0x13,
        fast().to_argon2().unwrap(),
    )
    .hash_password(b"correct horse battery")
    .unwrap()
    .to_string();
    assert!(
        old.verify("correct horse battery", &argon2i)
            .unwrap()
            .needs_rehash
    );
}

#[test]
fn invalid_params_are_refused() {
    let bad = PasswordParams {
        memory_kib: 1,
        ..fast()
    };
    assert!(matches!(
        bad.validate(),
        Err(PasswordError::InvalidParams(_))
    ));
    assert!(Hasher::new(bad).is_err());
}

#[test]
fn unknown_user_verification_does_not_panic() {
    let h = Hasher::new(fast()).unwrap();
    h.verify_unknown_user("anything at all");
    h.verify_unknown_user("");
}

#[test]
fn policy_counts_characters_not_bytes() {
    assert!(matches!(
        check_policy("short"),
        Err(PasswordError::TooShort { min: 12 })
    ));
    check_policy(&"é".repeat(12)).unwrap();
    check_policy(&"a".repeat(1024)).unwrap();
    assert!(matches!(
        check_policy(&"a".repeat(1025)),
        Err(PasswordError::TooLong { max: 1024 })
    ));
    assert!(check_policy(&"ü".repeat(11)).is_err());
}

#[tokio::test]
async fn async_wrappers() {
    let h = Hasher::new(fast()).unwrap();
    let phc = h.hash_async("correct horse battery".into()).await.unwrap();
    h.verify_async("correct horse battery".into(), phc)
        .await
        .unwrap();
    h.verify_unknown_user_async("nobody".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hashing_is_bounded_and_the_overflow_is_busy() {
    let params = PasswordParams {
        memory_kib: 16384,
        iterations: 4,
        parallelism: 1,
    };
    let one = Concurrency {
        running: 1,
        queued: 2,
    };
    let h = Hasher::with_concurrency(params, one).unwrap();
    let calls: Vec<_> = (0..12)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.hash_async(format!("password number {i}")).await })
        })
        .collect();
    let mut done = 0;
    let mut busy = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(_) => done += 1,
            Err(PasswordError::Busy) => busy += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // One running and two queued at most when the burst arrives; the rest are told to retry.
    assert!(busy >= 6, "{busy} busy, {done} done");
    assert!(done >= 1, "{busy} busy, {done} done");
    // The bound frees up: a later call runs.
    h.hash_async("afterwards".into()).await.unwrap();
}
