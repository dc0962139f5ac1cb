//! Staff bearer tokens on the admin listener: EdDSA JWTs with the staff audience, checked against
//! the current keyring and the staff user's current record on every call (staff traffic is small;
//! a disabled user or changed role takes effect at once).

use std::net::IpAddr;

use computegate_gateway::auth::AuthError;
use computegate_kyc::access_log::AccessAction;
use computegate_kyc::accounts::{StaffUser, Subject};
use jsonwebtoken::{Algorithm, Validation};
use time::OffsetDateTime;

use super::{Identity, IdentityError, StaffClaims};

// === impl Identity ===

impl Identity {
    /// Verifies a staff bearer token and returns the staff user as stored now. The refusals
    /// are the data plane's [`AuthError`]s, so one mapping answers customers and staff alike.
    pub async fn authenticate_staff(&self, bearer: &str) -> Result<StaffUser, AuthError> {
        let claims = self.decode(bearer, &self.auth.staff_audience)?;
        let id = claims
            .staff_id()
            .ok_or(AuthError::Invalid("not a staff token"))?;
        let staff = self
            .store
            .accounts()
            .staff_by_id(id)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot read the staff user");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::Invalid("unknown staff user"))?;
        if staff.disabled_at.is_some() {
            return Err(AuthError::AccountInactive {
                state: "disabled",
                reason: None,
            });
        }
        let revoked = self
            .store
            .credentials()
            .is_access_token_revoked(&claims.jti)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot read token revocations");
                AuthError::Unavailable
            })?;
        if revoked {
            return Err(AuthError::Invalid("token revoked"));
        }
        Ok(staff)
    }

    /// Ends a staff session (console sign-out): revokes the access token `token` when it is a
    /// valid staff token, so a copy of the session cookie is worthless from then on, and logs
    /// the logout. A token that no longer decodes (expired, foreign) has nothing to revoke.
    pub async fn staff_logout(
        &self,
        token: &str,
        client_ip: IpAddr,
        now: OffsetDateTime,
    ) -> Result<(), IdentityError> {
        let Ok(claims) = self.decode(token, &self.auth.staff_audience) else {
            return Ok(());
        };
        let Some(id) = claims.staff_id() else {
            return Ok(());
        };
        let subject = Subject::Staff(id);
        self.store
            .credentials()
            .revoke_access_token(&claims.jti, subject, claims.exp, now)
            .await
            .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
        self.record_access(AccessAction::Logout, subject, client_ip, now)
            .await;
        Ok(())
    }

    /// Verifies signature, issuer, audience and times of an access token against the keyring.
    pub fn decode(&self, token: &str, audience: &str) -> Result<StaffClaims, AuthError> {
        let invalid = || AuthError::Invalid("the token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let keys = self.keyring().decoding_keys().map_err(|e| {
            // Our own key material failed to load: fail closed, and say so once in the log.
            tracing::error!(error = %e, "cannot read the verification keys");
            AuthError::Unavailable
        })?;
        let key = keys
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key)
            .ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[self.auth.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.leeway = self.auth.leeway.as_secs();
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "aud", "iss"]);
        let data =
            jsonwebtoken::decode::<StaffClaims>(token, key, &validation).map_err(|_| invalid())?;
        if data.claims.exp < OffsetDateTime::now_utc().unix_timestamp() - validation.leeway as i64 {
            return Err(invalid());
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> StaffClaims {
        StaffClaims {
            sub: sub.to_owned(),
            jti: "j".to_owned(),
            exp: 0,
        }
    }

    #[test]
    fn the_staff_id_comes_from_a_prefixed_or_bare_subject() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(claims(&format!("staff:{id}")).staff_id(), Some(id));
        assert_eq!(claims(&id.to_string()).staff_id(), Some(id));
        assert_eq!(claims(&format!("customer:{id}")).staff_id(), None);
        assert_eq!(claims("staff:").staff_id(), None);
    }
}
