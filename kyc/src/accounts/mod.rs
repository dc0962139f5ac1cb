//! Accounts: customers (individuals and organizations' members), organizations and staff users,
//! with normalized unique emails, lifecycle status and verification tier.
//!
//! This file holds the value types and the pure rules (email normalization, parsing stored
//! enums); `customers` and `staff` hold the store operations, [`membership`] the rules of
//! organization membership and `organizations` its store operations. Status and tier changes are
//! administrative actions: each writes its access-log row in the same transaction, and a
//! customer leaving `active` loses every refresh token at once.

mod customers;
pub mod membership;
mod membership_tx;
mod organizations;
mod staff;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::names::stored_enum;
use crate::store::StoreError;

pub(crate) use self::membership_tx::MembershipTx;
pub use self::organizations::MAX_REMOVAL_REASON_CHARS;
pub use crate::names::UnknownName;

/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Longest accepted organization name, in characters.
pub const MAX_ORGANIZATION_NAME_CHARS: usize = 200;

/// A normalized email address: trimmed, lowercased, one `@` with text on both sides, no
/// whitespace or control characters, at most [`MAX_EMAIL_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Whether a customer is a person or acts for an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerKind {
    /// A natural person (KYC).
    Individual,
    /// A member of an organization (KYB).
    Organization,
}

/// Lifecycle status of a customer account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerStatus {
    /// May authenticate and use the service.
    Active,
    /// Refused everywhere until reinstated by staff.
    Suspended,
    /// Permanently closed.
    Closed,
}

/// A verification tier name. Tiers are policy data, so this is a validated name rather than a
/// closed enum: 1–64 characters of `a-z`, `0-9` and `_`. The shipped tiers are
/// [`Tier::UNVERIFIED`], [`Tier::IDENTITY_VERIFIED`], [`Tier::ORGANIZATION_VERIFIED`] and
/// [`Tier::VALIDATED_END_USER`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tier(String);

/// Staff roles, from least to most privileged for account administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// Works the review queue.
    Reviewer,
    /// Reviewer who may give top-tier approvals.
    SeniorReviewer,
    /// Read-only access to records and the audit chain.
    Auditor,
    /// Manages staff, keys and configuration.
    Admin,
}

/// Who a credential belongs to: a customer or a staff user. Written as `customer:<uuid>` or
/// `staff:<uuid>` in tokens and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A customer account.
    Customer(Uuid),
    /// A staff user.
    Staff(Uuid),
}

/// Who performed an administrative action and from where, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `staff:<uuid>`, `customer:<uuid>` or `system:<label>` (CLI, scheduled jobs).
    pub name: String,
    /// Client address, when the action came over the network.
    pub client_ip: Option<IpAddr>,
}

/// A customer account. The password hash is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Individual or organization member.
    pub kind: CustomerKind,
    /// Lifecycle status.
    pub status: CustomerStatus,
    /// Current verification tier.
    pub tier: Tier,
    /// The organization the customer belongs to, if any.
    pub organization_id: Option<Uuid>,
    /// When the account was created (UTC).
    pub created_at: OffsetDateTime,
    /// Last change to status, tier, organization or password (UTC).
    pub updated_at: OffsetDateTime,
}

/// An organization whose members are customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// Name as entered, stored verbatim.
    pub name: String,
    /// When it was created (UTC).
    pub created_at: OffsetDateTime,
}

/// A staff user. The password hash is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffUser {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// Normalized email.
    pub email: String,
    /// Role.
    pub role: StaffRole,
    /// When the user was created (UTC).
    pub created_at: OffsetDateTime,
    /// When the user was disabled, if ever.
    pub disabled_at: Option<OffsetDateTime>,
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The email is not a plausible address.
    #[error("invalid email address")]
    InvalidEmail,
    /// Another account already uses this (normalized) email.
    #[error("email address already registered")]
    EmailTaken,
    /// The tier name is not 1–64 characters of `a-z0-9_`.
    #[error("invalid tier name")]
    InvalidTier,
    /// The organization name is empty or too long.
    #[error("organization name must be 1..={MAX_ORGANIZATION_NAME_CHARS} characters")]
    InvalidOrganizationName,
    /// No customer with that id.
    #[error("customer not found")]
    CustomerNotFound,
    /// No organization with that id.
    #[error("organization not found")]
    OrganizationNotFound,
    /// No staff user with that id.
    #[error("staff user not found")]
    StaffNotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

crate::store::from_sqlx!(AccountError);

// === impl Email ===

impl Email {
    /// Normalizes and validates an address.
    pub fn parse(raw: &str) -> Result<Email, AccountError> {
        let email = normalize_email(raw);
        let valid = email.len() <= MAX_EMAIL_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if valid {
            Ok(Email(email))
        } else {
            Err(AccountError::InvalidEmail)
        }
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Trims and lowercases, without validating: what lookups use, so a login with
/// `" Alice@Example.COM "` finds `alice@example.com`.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

// === impl CustomerKind, CustomerStatus, StaffRole ===

stored_enum!(CustomerKind { Individual => "individual", Organization => "organization" });
stored_enum!(CustomerStatus { Active => "active", Suspended => "suspended", Closed => "closed" });
stored_enum!(StaffRole {
    Reviewer => "reviewer",
    SeniorReviewer => "senior_reviewer",
    Auditor => "auditor",
    Admin => "admin",
});

// === impl Tier ===

impl Tier {
    /// Signed up, not yet verified.
    pub const UNVERIFIED: &'static str = "unverified";
    /// Individual: identity verification passed, screening clear.
    pub const IDENTITY_VERIFIED: &'static str = "identity_verified";
    /// Organization: KYB passed, beneficial owners screened.
    pub const ORGANIZATION_VERIFIED: &'static str = "organization_verified";
    /// Validated end user: compliance plan, two senior approvals.
    pub const VALIDATED_END_USER: &'static str = "validated_end_user";

    /// Validates a tier name.
    pub fn new(name: &str) -> Result<Tier, AccountError> {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Tier(name.to_owned()))
        } else {
            Err(AccountError::InvalidTier)
        }
    }

    /// The tier every new customer starts in.
    pub fn unverified() -> Tier {
        Tier(Tier::UNVERIFIED.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Tier {
    type Error = AccountError;
    fn try_from(s: String) -> Result<Tier, AccountError> {
        Tier::new(&s)
    }
}

impl From<Tier> for String {
    fn from(t: Tier) -> String {
        t.0
    }
}

// === impl Subject ===

impl Subject {
    /// The account id, whichever kind.
    pub fn id(self) -> Uuid {
        match self {
            Subject::Customer(id) | Subject::Staff(id) => id,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Customer(id) => write!(f, "customer:{id}"),
            Subject::Staff(id) => write!(f, "staff:{id}"),
        }
    }
}

impl FromStr for Subject {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Subject, UnknownName> {
        let (kind, id) = s.split_once(':').ok_or(UnknownName)?;
        let id = Uuid::parse_str(id).map_err(|_| UnknownName)?;
        match kind {
            "customer" => Ok(Subject::Customer(id)),
            "staff" => Ok(Subject::Staff(id)),
            _ => Err(UnknownName),
        }
    }
}

// === impl Actor ===

impl Actor {
    /// A staff user acting over the network.
    pub fn staff(id: Uuid, client_ip: Option<IpAddr>) -> Actor {
        Actor {
            name: Subject::Staff(id).to_string(),
            client_ip,
        }
    }

    /// A customer acting on their own account.
    pub fn customer(id: Uuid, client_ip: Option<IpAddr>) -> Actor {
        Actor {
            name: Subject::Customer(id).to_string(),
            client_ip,
        }
    }

    /// The system itself, e.g. `Actor::system("cli")`.
    pub fn system(label: &str) -> Actor {
        Actor {
            name: format!("system:{label}"),
            client_ip: None,
        }
    }
}

/// Parses a stored enum, reporting the column when the value is unknown.
pub(crate) fn parse_column<T: FromStr>(value: &str, column: &'static str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::CorruptRow { column })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  Alice.Smith@Example.COM\n")
                .unwrap()
                .as_str(),
            "alice.smith@example.com"
        );
        assert_eq!(
            Email::parse("ÉMILE@exemple.fr").unwrap().as_str(),
            "émile@exemple.fr"
        );
        // SQL metacharacters are just characters.
        Email::parse("o'brien+\"x\";--@example.com").unwrap();
    }

    #[test]
    fn implausible_emails_are_refused() {
        for bad in [
            "",
            "no-at-sign",
            "@example.com",
            "alice@",
            "a@b@c",
            "al ice@example.com",
            "alice@exa\u{0}mple.com",
        ] {
            assert!(
                matches!(Email::parse(bad), Err(AccountError::InvalidEmail)),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn enums_round_trip_through_text() {
        for s in [
            CustomerStatus::Active,
            CustomerStatus::Suspended,
            CustomerStatus::Closed,
        ] {
            assert_eq!(s.as_str().parse::<CustomerStatus>().unwrap(), s);
        }
        assert_eq!(
            "senior_reviewer".parse::<StaffRole>().unwrap(),
            StaffRole::SeniorReviewer
        );
        assert!("root".parse::<StaffRole>().is_err());
        assert_eq!(
            serde_json::to_string(&CustomerKind::Organization).unwrap(),
            "\"organization\""
        );
    }

    #[test]
    fn tier_names_are_validated() {
        assert_eq!(Tier::unverified().as_str(), "unverified");
        Tier::new(Tier::VALIDATED_END_USER).unwrap();
        for bad in [
            "",
            "Upper",
            "with space",
            "x'; DROP TABLE customers;--",
            &"a".repeat(65),
        ] {
            assert!(Tier::new(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<Tier>("\"bad tier\"").is_err());
    }

    #[test]
    fn subject_text_form() {
        let id = Uuid::now_v7();
        let s = Subject::Customer(id);
        assert_eq!(s.to_string(), format!("customer:{id}"));
        assert_eq!(s.to_string().parse::<Subject>().unwrap(), s);
        assert_eq!(
            format!("staff:{id}").parse::<Subject>().unwrap(),
            Subject::Staff(id)
        );
        assert!("admin:x".parse::<Subject>().is_err());
        assert_eq!(Actor::system("cli").name, "system:cli");
    }
}
