//! A customer's own applications through the [`Verification`] service: drafting (with the
//! policy's tier check the store cannot make), JSON merge patches over the stored draft or a
//! whole replacement (the portal's form), and
//! submission with immediate screening — each counted in the funnel and announced to the
//! application gauges here, so the HTTP handlers only translate.

use computegate_kyc::verification::{
    ApplicationPayload, ApplicationStatus, ApplicationView, CustomerCaller, FieldError,
    ValidationMode, VerificationError,
};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Verification;

// === impl Verification ===

impl Verification {
    /// Creates a draft from `payload` (checked like a draft, with the requested tier against the
    /// policy in force).
    pub async fn create_application(
        &self,
        caller: &CustomerCaller,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        self.prevalidate(payload, now)?;
        let view = self
            .store()
            .verification()
            .create_draft(self.master(), caller, payload, now)
            .await?;
        self.metrics().funnel("draft");
        self.stats_changed();
        Ok(view)
    }

    /// Applies an RFC 7396 merge `patch` to the stored application, while it is a draft or
    /// waiting for more information, and answers the application as stored afterwards.
    pub async fn patch_application(
        &self,
        caller: &CustomerCaller,
        id: Uuid,
        patch: &Value,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        let current = self
            .store()
            .verification()
            .get_application(self.master(), caller, id)
            .await?;
        let mut doc = serde_json::to_value(current.require_payload()?).map_err(document_error)?;
        merge_patch(&mut doc, patch);
        let bytes = serde_json::to_vec(&doc).map_err(document_error)?;
        let payload = ApplicationPayload::from_json(&bytes).map_err(VerificationError::Invalid)?;
        self.replace_application(caller, id, &payload, now).await
    }

    /// Replaces the stored application with `payload` as a whole (the portal's form holds every
    /// field), while it is a draft or waiting for more information; checked like a draft.
    pub async fn replace_application(
        &self,
        caller: &CustomerCaller,
        id: Uuid,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        self.prevalidate(payload, now)?;
        self.store()
            .verification()
            .update_draft(self.master(), caller, id, payload, now)
            .await
    }

    /// Hands the application in and screens it at once when a list is loaded (otherwise the
    /// background sweep does); the answer is the application as it stands afterwards.
    pub async fn submit_application(
        &self,
        caller: &CustomerCaller,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<ApplicationView, VerificationError> {
        let view = self
            .store()
            .verification()
            .submit_application(self.master(), caller, id, &self.jurisdiction(), now)
            .await?;
        self.metrics().funnel("submitted");
        self.stats_changed();
        match view.status {
            ApplicationStatus::Rejected => {
                // Rejected for an embargoed jurisdiction: suspended, on every replica at once.
                self.metrics().funnel("rejected");
                self.customer_changed(caller.customer_id).await;
            }
            ApplicationStatus::Submitted => match self.screen_submitted(id).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::info!(application = %id, "no screening list imported yet; screening deferred")
                }
                Err(e) => {
                    tracing::warn!(error = %e, application = %id, "screening failed; the sweep retries")
                }
            },
            _ => {}
        }
        self.store()
            .verification()
            .get_application(self.master(), caller, id)
            .await
    }

    /// The draft checks of the payload plus one the store cannot make: the requested tier must
    /// be a tier of the policy in force. Every problem at once.
    fn prevalidate(
        &self,
        payload: &ApplicationPayload,
        now: OffsetDateTime,
    ) -> Result<(), VerificationError> {
        let mut errors = payload.validate(ValidationMode::Draft, now.date());
        if let Some(tier) = payload.requested_tier.as_deref()
            && !self.tier_defined(tier)
            && !errors.iter().any(|e| e.field == "requested_tier")
        {
            errors.insert(
                0,
                FieldError {
                    field: "requested_tier".into(),
                    code: "invalid",
                    problem: "not a tier of the policy in force".into(),
                },
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(VerificationError::Invalid(errors))
        }
    }
}

/// A stored payload that cannot be turned back into JSON (it always can: the payload is plain
/// data) is reported as an invalid document rather than a panic.
fn document_error(e: serde_json::Error) -> VerificationError {
    VerificationError::Invalid(vec![FieldError {
        field: "(document)".into(),
        code: "invalid",
        problem: e.to_string(),
    }])
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(fields) = target {
        for (key, value) in changes {
            if value.is_null() {
                fields.remove(key);
            } else {
                merge_patch(fields.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1], "e": "x"});
        merge_patch(
            &mut doc,
            &serde_json::json!({"a": {"b": null, "z": 3}, "d": [2, 3], "e": null, "f": {"g": 1}}),
        );
        assert_eq!(
            doc,
            serde_json::json!({"a": {"c": 2, "z": 3}, "d": [2, 3], "f": {"g": 1}})
        );
    }
}
