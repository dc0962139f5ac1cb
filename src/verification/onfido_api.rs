//! Onfido's API as the webhook worker needs it: `GET {base}/{checks|reports|workflow_runs}/{id}`
//! with `Authorization: Token token=<api token>`, over the pooled hyper-util client with
//! rustls (ring, webpki roots). Configuration from the environment through one function:
//!
//! - `COMPUTEGATE_IDV_ONFIDO_API_TOKEN` — the API token (required to fetch; without it verified
//!   notices are queued and wait);
//! - `COMPUTEGATE_IDV_ONFIDO_REGION` — `eu` (default), `us` or `ca`:
//!   `https://api.{region}.onfido.com/v3.6`;
//! - `COMPUTEGATE_IDV_ONFIDO_API_URL` — a base URL instead of the region's (a proxy, a test
//!   server), version path included;
//! - `COMPUTEGATE_IDV_ONFIDO_TIMEOUT_MS` — per request, default 10000;
//! - `COMPUTEGATE_IDV_ONFIDO_RETRY_MS` — first retry delay, default 5000, doubling per attempt
//!   up to 10 minutes.
//!
//! Errors say whether asking again may help ([`FetchError::retryable`]); the token never
//! appears in `Debug`, logs or errors.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use computegate_kyc::verification::onfido::{OnfidoRegion, OnfidoResource};
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use uuid::Uuid;

/// Default per-request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first retry delay.
const DEFAULT_RETRY: Duration = Duration::from_secs(5);
/// Largest response body read (a check or run is a few KiB; reports with breakdowns more).
const MAX_RESPONSE: usize = 1024 * 1024;

/// The Onfido API settings.
#[derive(Clone)]
pub struct OnfidoApiConfig {
    /// Base URL, version path included, no trailing slash.
    pub base_url: String,
    token: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// First retry delay (doubles per attempt, capped by the worker).
    pub retry: Duration,
}

/// Why the settings are unusable (named by key; never the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnfidoConfigError {
    /// A value does not parse.
    #[error("{key}: {reason}")]
    Invalid {
        /// The environment variable.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why one fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No answer in time.
    #[error("Onfido API did not answer within the timeout")]
    Timeout,
    /// Connection or protocol failure.
    #[error("Onfido API unreachable: {0}")]
    Transport(String),
    /// An HTTP error status.
    #[error("Onfido API answered {0}")]
    Status(StatusCode),
    /// A 2xx answer that is not JSON (or too large).
    #[error("Onfido API answer is not JSON")]
    NotJson,
}

/// A client of Onfido's API.
#[derive(Clone)]
pub struct OnfidoApi {
    config: OnfidoApiConfig,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

// === impl OnfidoApiConfig ===

impl OnfidoApiConfig {
    /// Reads the settings with `env`; `Ok(None)` when no API token is set.
    pub fn from_env(
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OnfidoApiConfig>, OnfidoConfigError> {
        let read = |k: &str| {
            env(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some(token) = read("COMPUTEGATE_IDV_ONFIDO_API_TOKEN") else {
            return Ok(None);
        };
        let base_url = match read("COMPUTEGATE_IDV_ONFIDO_API_URL") {
            Some(url) => {
                let uri: http::Uri = url.parse().map_err(|_| invalid_url())?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(invalid_url());
                }
                url.trim_end_matches('/').to_owned()
            }
            None => {
                let region = match read("COMPUTEGATE_IDV_ONFIDO_REGION") {
                    Some(r) => r.parse().map_err(|_| OnfidoConfigError::Invalid {
                        key: "COMPUTEGATE_IDV_ONFIDO_REGION",
                        reason: "expected eu, us or ca",
                    })?,
                    None => OnfidoRegion::Eu,
                };
                region.base_url().to_owned()
            }
        };
        let millis =
            |key: &'static str, default: Duration| -> Result<Duration, OnfidoConfigError> {
                match read(key) {
                    None => Ok(default),
                    Some(v) => v
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| (1..=3_600_000).contains(ms))
                        .map(Duration::from_millis)
                        .ok_or(OnfidoConfigError::Invalid {
                            key,
                            reason: "expected milliseconds between 1 and 3600000",
                        }),
                }
            };
        Ok(Some(OnfidoApiConfig {
            base_url,
            token,
            timeout: millis("COMPUTEGATE_IDV_ONFIDO_TIMEOUT_MS", DEFAULT_TIMEOUT)?,
            retry: millis("COMPUTEGATE_IDV_ONFIDO_RETRY_MS", DEFAULT_RETRY)?,
        }))
    }
}

fn invalid_url() -> OnfidoConfigError {
    OnfidoConfigError::Invalid {
        key: "COMPUTEGATE_IDV_ONFIDO_API_URL",
        reason: "expected an http(s) URL such as https://api.eu.onfido.com/v3.6",
    }
}

impl fmt::Debug for OnfidoApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnfidoApiConfig")
            .field("base_url", &self.base_url)
            .field("token", &"..")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

// === impl FetchError ===

impl FetchError {
    /// Whether asking again later may succeed: timeouts, transport failures, 408, 429 and
    /// 5xx. Other statuses (401 bad token, 404 unknown id, …) will not change by themselves.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Timeout | FetchError::Transport(_) => true,
            FetchError::Status(s) => {
                s.is_server_error()
                    || *s == StatusCode::TOO_MANY_REQUESTS
                    || *s == StatusCode::REQUEST_TIMEOUT
            }
            FetchError::NotJson => false,
        }
    }
}

// === impl OnfidoApi ===

impl OnfidoApi {
    /// A client for `config`. Needs the process crypto provider (installed at start).
    pub fn new(config: OnfidoApiConfig) -> OnfidoApi {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        OnfidoApi { config, client }
    }

    /// The settings.
    pub fn config(&self) -> &OnfidoApiConfig {
        &self.config
    }

    /// `GET` of resource `id`, its JSON body.
    pub async fn get(
        &self,
        resource: OnfidoResource,
        id: Uuid,
    ) -> Result<serde_json::Value, FetchError> {
        let url = resource.url(&self.config.base_url, id);
        let request = Request::get(url)
            .header(
                header::AUTHORIZATION,
                format!("Token token={}", self.config.token),
            )
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, "computegate")
            .body(Empty::new())
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(FetchError::Status(status));
            }
            let body = Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map_err(|_| FetchError::NotJson)?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|_| FetchError::NotJson)
        };
        tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<OnfidoApiConfig>, OnfidoConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OnfidoApiConfig::from_env(|k| env.get(k).cloned())
    }

    #[test]
    fn settings_from_the_environment() {
        assert!(config(&[]).unwrap().is_none(), "no token, no client");
        let token = ("COMPUTEGATE_IDV_ONFIDO_API_TOKEN", "api_sandbox.secret");
        let eu = config(&[token]).unwrap().unwrap();
        assert_eq!(eu.base_url, "https://api.eu.onfido.com/v3.6");
        assert_eq!((eu.timeout, eu.retry), (DEFAULT_TIMEOUT, DEFAULT_RETRY));
        assert!(
            !format!("{eu:?}").contains("secret"),
            "the token stays out of Debug"
        );
        let us = config(&[token, ("COMPUTEGATE_IDV_ONFIDO_REGION", "us")])
            .unwrap()
            .unwrap();
        assert_eq!(us.base_url, "https://api.us.onfido.com/v3.6");
        let local = config(&[
            token,
            ("COMPUTEGATE_IDV_ONFIDO_API_URL", "http://127.0.0.1:9/v3.6/"),
            ("COMPUTEGATE_IDV_ONFIDO_RETRY_MS", "50"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(local.base_url, "http://127.0.0.1:9/v3.6");
        assert_eq!(local.retry, Duration::from_millis(50));
        for bad in [
            ("COMPUTEGATE_IDV_ONFIDO_REGION", "ap"),
            ("COMPUTEGATE_IDV_ONFIDO_API_URL", "ftp://x/v3.6"),
            ("COMPUTEGATE_IDV_ONFIDO_TIMEOUT_MS", "0"),
            ("COMPUTEGATE_IDV_ONFIDO_RETRY_MS", "soon"),
        ] {
            let err = config(&[token, bad]).unwrap_err();
            assert!(err.to_string().starts_with(bad.0), "{err}");
        }
    }

    #[test]
    fn only_passing_failures_are_retried() {
        assert!(FetchError::Timeout.retryable());
        assert!(FetchError::Transport("reset".into()).retryable());
        assert!(FetchError::Status(StatusCode::SERVICE_UNAVAILABLE).retryable());
        assert!(FetchError::Status(StatusCode::TOO_MANY_REQUESTS).retryable());
        assert!(!FetchError::Status(StatusCode::UNAUTHORIZED).retryable());
        assert!(!FetchError::Status(StatusCode::NOT_FOUND).retryable());
        assert!(!FetchError::NotJson.retryable());
    }
}
