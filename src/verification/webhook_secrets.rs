//! IDV webhook signing secrets, read from the environment through one function:
//! `COMPUTEGATE_IDV_<PROVIDER>_SECRET` and, while a provider rotates its secret,
//! `COMPUTEGATE_IDV_<PROVIDER>_SECRET_PREVIOUS` (`<PROVIDER>` = `STRIPE`, `PERSONA`, `ONFIDO`).
//! A provider without a secret is not configured: its webhooks are refused (401) and nothing
//! is stored. Secrets never appear in `Debug`, logs or errors.

use computegate_kyc::verification::IdvProvider;
use computegate_kyc::verification::webhooks::{WebhookSecret, WebhookSecrets};

/// The providers, in a fixed order.
const PROVIDERS: [IdvProvider; 3] = [
    IdvProvider::Stripe,
    IdvProvider::Persona,
    IdvProvider::Onfido,
];

/// Configured secrets per provider.
#[derive(Debug, Clone, Default)]
pub struct IdvSecrets {
    stripe: Option<WebhookSecrets>,
    persona: Option<WebhookSecrets>,
    onfido: Option<WebhookSecrets>,
}

/// Reads the secrets with `env` (pass `|k| std::env::var(k).ok()` in the binary; a map in
/// tests). Blank values count as unset; a `_PREVIOUS` without a current secret is ignored.
pub fn idv_secrets_from_env(env: impl Fn(&str) -> Option<String>) -> IdvSecrets {
    let read = |name: String| env(&name).filter(|v| !v.trim().is_empty());
    let mut secrets = IdvSecrets::default();
    for provider in PROVIDERS {
        let base = format!(
            "COMPUTEGATE_IDV_{}_SECRET",
            provider.as_str().to_ascii_uppercase()
        );
        let previous = read(format!("{base}_PREVIOUS"));
        let Some(current) = read(base) else {
            if previous.is_some() {
                tracing::warn!(provider = %provider, "a previous IDV webhook secret is set without a current one; ignored");
            }
            continue;
        };
        let set = WebhookSecrets {
            current: WebhookSecret::new(current),
            previous: previous.map(WebhookSecret::new),
        };
        *secrets.slot(provider) = Some(set);
    }
    secrets
}

// === impl IdvSecrets ===

impl IdvSecrets {
    /// The secrets of `provider`, when configured.
    pub fn get(&self, provider: IdvProvider) -> Option<&WebhookSecrets> {
        match provider {
            IdvProvider::Stripe => self.stripe.as_ref(),
            IdvProvider::Persona => self.persona.as_ref(),
            IdvProvider::Onfido => self.onfido.as_ref(),
        }
    }

    /// Names of the configured providers (for the start-up log).
    pub fn configured(&self) -> Vec<&'static str> {
        PROVIDERS
            .into_iter()
            .filter(|p| self.get(*p).is_some())
            .map(IdvProvider::as_str)
            .collect()
    }

    fn slot(&mut self, provider: IdvProvider) -> &mut Option<WebhookSecrets> {
        match provider {
            IdvProvider::Stripe => &mut self.stripe,
            IdvProvider::Persona => &mut self.persona,
            IdvProvider::Onfido => &mut self.onfido,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn secrets_are_read_per_provider_with_rotation() {
        let env: HashMap<&str, &str> = [
            ("COMPUTEGATE_IDV_STRIPE_SECRET", "whsec_new"),
            ("COMPUTEGATE_IDV_STRIPE_SECRET_PREVIOUS", "whsec_old"),
            ("COMPUTEGATE_IDV_PERSONA_SECRET", "  "),
            ("COMPUTEGATE_IDV_ONFIDO_SECRET_PREVIOUS", "orphan"),
        ]
        .into_iter()
        .collect();
        let secrets = idv_secrets_from_env(|k| env.get(k).map(|v| v.to_string()));
        let stripe = secrets.get(IdvProvider::Stripe).unwrap();
        assert!(stripe.previous.is_some());
        assert!(secrets.get(IdvProvider::Persona).is_none());
        assert!(secrets.get(IdvProvider::Onfido).is_none());
        assert_eq!(secrets.configured(), ["stripe"]);
        let shown = format!("{secrets:?}");
        assert!(
            !shown.contains("whsec_new") && !shown.contains("whsec_old"),
            "{shown}"
        );
    }
}
