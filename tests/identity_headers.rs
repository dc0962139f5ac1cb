//! Black-box tests of the identity headers upstreams receive on authenticated routes: the
//! gateway's verified `X-Computegate-Customer`/`-Tier`/`-Organization` replace anything the client
//! sent, the caller's `Authorization` stays at the gateway, and with
//! `auth.forward_identity_token` a signed `X-Computegate-Identity` that verifies with the JWKS.

mod support;

use serde_json::json;

use support::identity::{
    IdGateway, Setup, create_key, expect_invalid_token, jwks, login, new_account, seen,
    verify_with_jwks,
};
use support::{Sim, TEST_TIMEOUT, client, within};

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let gw = IdGateway::start(sim.addr, &Setup::default()).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        let (_, key) = create_key(&http, &gw, &tokens.access, json!({"name": "k"})).await;

        let spoof = |req: reqwest::RequestBuilder| {
            req.header("X-Computegate-Customer", "someone-else")
                .header("x-computegate-customer", "and-another")
                .header("X-Computegate-Tier", "validated_end_user")
                .header("X-Computegate-Organization", "org-of-someone-else")
                .header("X-COMPUTEGATE-IDENTITY", "eyJhbGciOiJub25lIn0.e30.")
        };
        for bearer in [&tokens.access, &key] {
            let resp = spoof(http.get(gw.url("/v1/echo")).bearer_auth(bearer))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{resp:?}");
            let echo: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(
                seen(&echo, "x-computegate-customer"),
                [account.customer_id.as_str()]
            );
            assert_eq!(seen(&echo, "x-computegate-tier"), ["unverified"]);
            assert!(
                seen(&echo, "x-computegate-organization").is_empty(),
                "{echo}"
            );
            assert!(seen(&echo, "x-computegate-identity").is_empty(), "{echo}");
            assert!(seen(&echo, "authorization").is_empty(), "{echo}");
        }
        // On a public route nothing identity-like arrives either.
        let resp = spoof(http.get(gw.url("/v1/echo/public")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{resp:?}");
        let echo: serde_json::Value = resp.json().await.unwrap();
        for name in ["customer", "tier", "organization", "identity"] {
            let header = format!("x-computegate-{name}");
            assert!(seen(&echo, &header).is_empty(), "{header} reached: {echo}");
        }
        // A refused credential never reaches the upstream at all.
        let resp = spoof(http.get(gw.url("/v1/echo")).bearer_auth("cg_nope_nope"))
            .send()
            .await;
        expect_invalid_token(resp.unwrap(), "bad key with spoofed headers").await;
    })
    .await;
}

#[tokio::test]
async fn forwarded_identity_token_verifies_with_the_jwks() {
    within(TEST_TIMEOUT, async {
        let sim = Sim::start().await;
        let setup = Setup::auth("forward_identity_token = true");
        let gw = IdGateway::start(sim.addr, &setup).await;
        let http = client();
        let account = new_account(&http, &gw).await;
        let tokens = login(&http, &gw, &account).await;
        let resp = http
            .get(gw.url("/v1/echo"))
            .bearer_auth(&tokens.access)
            .header("X-Computegate-Identity", "forged")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let echo: serde_json::Value = resp.json().await.unwrap();
        let forwarded = seen(&echo, "x-computegate-identity");
        assert_eq!(
            forwarded.len(),
            1,
            "one gateway-signed identity token: {echo}"
        );
        assert_ne!(forwarded[0], "forged");
        let claims = verify_with_jwks(
            &forwarded[0],
            &jwks(&http, &gw).await,
            "computegate-upstream",
        )
        .unwrap_or_else(|e| panic!("identity token does not verify: {e}"));
        assert_eq!(claims["sub"], account.customer_id.as_str(), "{claims}");
        assert_eq!(claims["tier"], "unverified", "{claims}");
        assert!(seen(&echo, "authorization").is_empty(), "{echo}");
    })
    .await;
}
