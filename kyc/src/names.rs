//! Stored names: the one mapping between a fieldless enum and the text the databases hold.
//!
//! Every enum that kyc writes to a column (statuses, kinds, roles, actions, formats) gets its
//! `as_str`, `FromStr`, `Display` and its list of variants `ALL` from [`stored_enum!`], so the
//! string is written once per variant. `as_str` is an exhaustive `match` over the same list
//! that `ALL` and `FromStr` are built from, so a variant left out of the list is a compile
//! error, and `ALL` cannot miss one. The stored strings are data: changing one needs a
//! migration of both SQL dialects.

/// A name that matches no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown name")]
pub struct UnknownName;

/// `ALL`, `as_str`, `from_name`, `FromStr` and `Display` for a fieldless enum stored as text.
///
/// ```ignore
/// stored_enum!(CustomerStatus { Active => "active", Suspended => "suspended" });
/// // `FromStr` with another error than `UnknownName`:
/// stored_enum!(IdvProvider: WebhookError = WebhookError::UnknownProvider; { Stripe => "stripe" });
/// ```
macro_rules! stored_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $crate::names::stored_enum!(
            $ty: $crate::names::UnknownName = $crate::names::UnknownName;
            { $($variant => $text),+ }
        );
    };
    ($ty:ident: $err:ty = $unknown:expr; { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order of the stored names.
            pub const ALL: [$ty; [$($text),+].len()] = [$($ty::$variant),+];

            /// The stored and serialized name (bounded: usable as a metric label).
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// The variant whose stored name is exactly `name`.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, $err> {
                $ty::from_name(s).ok_or($unknown)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use stored_enum;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::fmt::Debug;
    use std::str::FromStr;

    use computegate_policy::{Action, Scope};
    use proptest::prelude::*;

    use crate::access_log::{AccessAction, AccessOutcome};
    use crate::accounts::{CustomerKind, CustomerStatus, StaffRole};
    use crate::audit::{AuditAction, ExportFormat as AuditExportFormat};
    use crate::ledger::{
        ExportFormat as LedgerExportFormat, JobStatus, LinkAttribute, ReportStatus, ReviewStatus,
    };
    use crate::screening::{Decision, EntryKind, ListFormat};
    use crate::verification::{
        ApplicantKind, ApplicationStatus, ContentType, DocumentType, IdvOutcome, IdvProvider,
        ScreeningDecision,
    };

    /// One stored enum, type-erased: its name, its stored names, and its parser.
    struct Checked {
        ty: &'static str,
        names: HashSet<&'static str>,
        parse: fn(&str) -> Option<&'static str>,
    }

    /// Checks every stored enum: each variant round-trips (`as_str` → `FromStr` and
    /// `from_name` → the same variant; `Display` = `as_str`) and no two variants of one enum
    /// share a name.
    fn all_checked() -> Vec<Checked> {
        fn check<T, E>(
            ty: &'static str,
            all: &[T],
            as_str: fn(T) -> &'static str,
        ) -> HashSet<&'static str>
        where
            T: Copy + PartialEq + Debug + FromStr<Err = E> + std::fmt::Display,
        {
            let mut names = HashSet::new();
            for &v in all {
                let name = as_str(v);
                assert!(
                    names.insert(name),
                    "{ty}::{v:?}: stored name {name:?} used twice"
                );
                assert_eq!(
                    v.to_string(),
                    name,
                    "{ty}::{v:?}: Display differs from as_str"
                );
                assert!(
                    name.parse::<T>().ok() == Some(v),
                    "{ty}: {name:?} does not parse back"
                );
            }
            names
        }
        macro_rules! check {
            ($($ty:ty),+ $(,)?) => {
                vec![$(Checked {
                    ty: stringify!($ty),
                    names: check(stringify!($ty), &<$ty>::ALL, <$ty>::as_str),
                    parse: |s| <$ty>::from_name(s).map(<$ty>::as_str),
                }),+]
            };
        }
        check![
            AccessAction,
            AuditAction,
            AccessOutcome,
            CustomerKind,
            CustomerStatus,
            StaffRole,
            AuditExportFormat,
            LedgerExportFormat,
            JobStatus,
            LinkAttribute,
            ReportStatus,
            ReviewStatus,
            Action,
            Scope,
            Decision,
            EntryKind,
            ListFormat,
            ApplicantKind,
            ApplicationStatus,
            ContentType,
            DocumentType,
            IdvOutcome,
            IdvProvider,
            ScreeningDecision,
        ]
    }

    #[test]
    fn every_variant_round_trips_through_its_stored_name() {
        for checked in all_checked() {
            for name in &checked.names {
                assert_eq!((checked.parse)(name), Some(*name), "{}", checked.ty);
            }
        }
    }

    /// The stored strings are data in existing databases: these must never change.
    #[test]
    fn stored_names_are_the_ones_the_databases_hold() {
        let names = DocumentType::ALL.map(DocumentType::as_str);
        assert_eq!(
            names,
            [
                "passport",
                "national_id",
                "driving_licence",
                "proof_of_address",
                "registration_certificate",
                "ownership_register",
                "compliance_plan",
                "other",
            ]
        );
        assert_eq!(ApplicationStatus::PendingReview.as_str(), "pending_review");
        assert_eq!(JobStatus::HeldForReview.as_str(), "held_for_review");
        assert_eq!(StaffRole::SeniorReviewer.as_str(), "senior_reviewer");
        assert_eq!(ContentType::Jpeg.as_str(), "image/jpeg");
        assert_eq!(
            AccessAction::SigningKeyRotate.as_str(),
            "signing_key_rotate"
        );
        assert_eq!(ContentType::from_name("image/jpg"), None);
    }

    proptest! {
        /// Any text parses exactly when it is one of the enum's stored names (exact, case
        /// sensitive), and then names that same text.
        #[test]
        fn only_stored_names_parse(
            s in "[a-z_/]{0,24}|passport|image/png|senior_reviewer|held_for_review|Passport| active"
        ) {
            for checked in all_checked() {
                let expected = checked.names.get(s.as_str()).copied();
                prop_assert_eq!((checked.parse)(&s), expected, "{}", checked.ty);
            }
        }
    }
}
