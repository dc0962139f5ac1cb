//! Password login: success, uniform failure, throttling, account state, rehash.

use std::net::IpAddr;

use computegate_kyc::access_log::{AccessAction, AccessOutcome};
use computegate_kyc::accounts::{Actor, CustomerKind, CustomerStatus, StaffRole, Subject};
use computegate_kyc::cluster::{LoginThrottle, ThrottleLimits};
use computegate_kyc::login::{LoginAttempt, LoginError};
use computegate_kyc::password::{Hasher, PasswordParams};
use time::Duration;

use crate::support::{Ctx, fast_params, hasher, t0};

const PASSWORD: &str = "correct horse battery staple";

fn attempt<'a>(email: &'a str, password: &'a str, ip: IpAddr) -> LoginAttempt<'a> {
    LoginAttempt {
        email,
        password,
        client_ip: ip,
    }
}

async fn customer_login_rules(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let throttle = LoginThrottle::in_process(ThrottleLimits::default());
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    let hash = h.hash(PASSWORD).unwrap();
    let c = s
        .accounts()
        .create_customer("dave@example.com", &hash, CustomerKind::Individual, t0())
        .await
        .unwrap();

    let ok = s
        .accounts()
        .login_customer(
            &h,
            &throttle,
            attempt(" Dave@Example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(ok.id, c.id);

    let wrong = s
        .accounts()
        .login_customer(
            &h,
            &throttle,
            attempt("dave@example.com", "wrong password!!", ip),
            t0(),
        )
        .await
        .unwrap_err();
    let unknown = s
        .accounts()
        .login_customer(
            &h,
            &throttle,
            attempt("nobody@example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(wrong, LoginError::InvalidCredentials));
    assert!(matches!(unknown, LoginError::InvalidCredentials));
    assert_eq!(wrong.to_string(), unknown.to_string());

    let huge = "x".repeat(100_000);
    assert!(matches!(
        s.accounts()
            .login_customer(&h, &throttle, attempt("dave@example.com", &huge, ip), t0())
            .await,
        Err(LoginError::InvalidCredentials)
    ));

    // Access log: one success, two failures for the account, one for the unknown email.
    let log = s
        .access()
        .access_log_for_subject(&Subject::Customer(c.id).to_string(), 10)
        .await
        .unwrap();
    let logins: Vec<_> = log
        .iter()
        .filter(|r| r.event.action == AccessAction::Login)
        .map(|r| r.event.outcome)
        .collect();
    assert_eq!(
        logins,
        [
            AccessOutcome::Failure,
            AccessOutcome::Failure,
            AccessOutcome::Success
        ]
    );
    assert!(log.iter().all(|r| r.event.client_ip == Some(ip)));
    let unknown_log = s
        .access()
        .access_log_for_subject("email:nobody@example.com", 10)
        .await
        .unwrap();
    assert_eq!(unknown_log.len(), 1);

    // Suspended: reported only with the right password.
    s.accounts()
        .set_customer_status(
            c.id,
            CustomerStatus::Suspended,
            &Actor::system("test"),
            "x",
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.accounts()
            .login_customer(
                &h,
                &throttle,
                attempt("dave@example.com", PASSWORD, ip),
                t0()
            )
            .await,
        Err(LoginError::AccountSuspended)
    ));
    assert!(matches!(
        s.accounts()
            .login_customer(
                &h,
                &throttle,
                attempt("dave@example.com", "wrong password!!", ip),
                t0()
            )
            .await,
        Err(LoginError::InvalidCredentials)
    ));
}

async fn throttling_stops_guessing(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let throttle = LoginThrottle::in_process(ThrottleLimits::default());
    let ip: IpAddr = "192.0.2.78".parse().unwrap();
    let hash = h.hash(PASSWORD).unwrap();
    s.accounts()
        .create_customer("erin@example.com", &hash, CustomerKind::Individual, t0())
        .await
        .unwrap();
    for _ in 0..5 {
        let err = s
            .accounts()
            .login_customer(
                &h,
                &throttle,
                attempt("erin@example.com", "guess guess guess", ip),
                t0(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::InvalidCredentials));
    }
    // Even the right password is refused until the window ends.
    match s
        .accounts()
        .login_customer(
            &h,
            &throttle,
            attempt("erin@example.com", PASSWORD, ip),
            t0(),
        )
        .await
    {
        Err(LoginError::Throttled { retry_after }) => {
            assert_eq!(retry_after, std::time::Duration::from_secs(15 * 60));
        }
        other => panic!("expected Throttled, got {other:?}"),
    }
    let later = t0() + Duration::minutes(15);
    s.accounts()
        .login_customer(
            &h,
            &throttle,
            attempt("erin@example.com", PASSWORD, ip),
            later,
        )
        .await
        .unwrap();
}

async fn changed_params_rehash_on_login(ctx: Ctx) {
    let s = &ctx.store;
    let old = hasher();
    let new = Hasher::new(PasswordParams {
        memory_kib: 2048,
        ..fast_params()
    })
    .unwrap();
    let throttle = LoginThrottle::in_process(ThrottleLimits::default());
    let ip: IpAddr = "192.0.2.79".parse().unwrap();
    let c = s
        .accounts()
        .create_customer(
            "fay@example.com",
            &old.hash(PASSWORD).unwrap(),
            CustomerKind::Individual,
            t0(),
        )
        .await
        .unwrap();
    s.accounts()
        .login_customer(
            &new,
            &throttle,
            attempt("fay@example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap();
    let log = s
        .access()
        .access_log_for_subject(&Subject::Customer(c.id).to_string(), 10)
        .await
        .unwrap();
    assert!(
        log.iter()
            .any(|r| r.event.action == AccessAction::PasswordChange
                && r.event.actor.as_deref() == Some("system:rehash"))
    );
    // Logging in again needs no further rehash, and the old hasher still verifies.
    s.accounts()
        .login_customer(
            &new,
            &throttle,
            attempt("fay@example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap();
    let rehashes = s
        .access()
        .access_log_for_subject(&Subject::Customer(c.id).to_string(), 10)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.event.action == AccessAction::PasswordChange)
        .count();
    assert_eq!(rehashes, 1);
    s.accounts()
        .login_customer(
            &old,
            &throttle,
            attempt("fay@example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap();
}

async fn staff_login(ctx: Ctx) {
    let s = &ctx.store;
    let h = hasher();
    let throttle = LoginThrottle::in_process(ThrottleLimits::default());
    let ip: IpAddr = "2001:db8::7".parse().unwrap();
    let staff = s
        .accounts()
        .create_staff(
            "admin@example.com",
            StaffRole::Admin,
            &h.hash(PASSWORD).unwrap(),
            &Actor::system("cli"),
            t0(),
        )
        .await
        .unwrap();
    let got = s
        .accounts()
        .login_staff(
            &h,
            &throttle,
            attempt("admin@example.com", PASSWORD, ip),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(got.id, staff.id);
    assert!(matches!(
        s.accounts()
            .login_staff(
                &h,
                &throttle,
                attempt("admin@example.com", "nope nope nope", ip),
                t0()
            )
            .await,
        Err(LoginError::InvalidCredentials)
    ));
    // A customer account is not a staff account.
    s.accounts()
        .create_customer(
            "cust@example.com",
            &h.hash(PASSWORD).unwrap(),
            CustomerKind::Individual,
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.accounts()
            .login_staff(
                &h,
                &throttle,
                attempt("cust@example.com", PASSWORD, ip),
                t0()
            )
            .await,
        Err(LoginError::InvalidCredentials)
    ));
}

crate::store_suite!(
    customer_login_rules,
    throttling_stops_guessing,
    changed_params_rehash_on_login,
    staff_login,
);
