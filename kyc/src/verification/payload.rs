//! The application a customer fills in (the Contract JSON) and its validation, which
//! reports every bad field at once. Drafts may be incomplete ([`ValidationMode::Draft`] checks
//! only what is present); submission requires everything ([`ValidationMode::Submit`]).

use time::{Date, Month};

use super::countries::is_country_code;
use crate::accounts::Tier;

/// Longest legal name, address line, city or organization name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest free-text description of intended use, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// Longest identifier (document number, registration number, postal code …), in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Largest declared peak accelerator count.
pub const MAX_ACCELERATORS: u64 = 10_000_000;
/// Largest declared total compute, in FLOP.
pub const MAX_TOTAL_FLOP: f64 = 1e32;
/// Youngest and oldest plausible applicant or owner, in whole years.
pub const AGE_RANGE: std::ops::RangeInclusive<i32> = 16..=120;

/// Individual (KYC) or organization (KYB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantKind {
    /// A natural person.
    Individual,
    /// A company or other legal entity.
    Organization,
}

/// The application as submitted: `{"kind", "requested_tier", "individual", "organization",
/// "payment_fingerprint", "intended_use", "expected_peak_accelerators", "expected_total_flop"}`.
/// Every field but `kind` may be absent in a draft.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApplicationPayload {
    /// Individual or organization.
    pub kind: ApplicantKind,
    /// The tier applied for (a tier name from policy).
    #[serde(default)]
    pub requested_tier: Option<String>,
    /// The applicant, for `kind = individual`.
    #[serde(default)]
    pub individual: Option<Person>,
    /// The organization, for `kind = organization`.
    #[serde(default)]
    pub organization: Option<OrganizationDetails>,
    /// Opaque fingerprint of the means of payment (from the payment processor).
    #[serde(default)]
    pub payment_fingerprint: Option<String>,
    /// What the compute is for.
    #[serde(default)]
    pub intended_use: Option<IntendedUse>,
    /// Peak number of accelerators expected at once.
    #[serde(default)]
    pub expected_peak_accelerators: Option<u64>,
    /// Total compute expected, in FLOP.
    #[serde(default)]
    pub expected_total_flop: Option<f64>,
}

/// A natural person: the individual applicant, an organization's representative or a
/// beneficial owner.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Person {
    /// Full legal name.
    #[serde(default)]
    pub legal_name: Option<String>,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub nationality: Option<String>,
    /// Residence address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Identity document.
    #[serde(default)]
    pub id_document: Option<IdDocument>,
    /// Phone number, international form (`+` and 7–15 digits; spaces, dots, dashes and
    /// parentheses ignored).
    #[serde(default)]
    pub phone: Option<String>,
}

// === impl Person ===

impl Person {
    /// Whether `other` is the same person as far as identity verification is concerned: the
    /// same legal name, date of birth, nationality and identity document. Contact details
    /// (address, phone) may change without invalidating a verification.
    pub fn same_identity(&self, other: &Person) -> bool {
        self.legal_name == other.legal_name
            && self.date_of_birth == other.date_of_birth
            && self.nationality == other.nationality
            && self.id_document == other.id_document
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// Street and number.
    #[serde(default)]
    pub line1: Option<String>,
    /// Optional second line.
    #[serde(default)]
    pub line2: Option<String>,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub country: Option<String>,
}

/// An identity document.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IdDocument {
    /// `passport`, `national_id` or `driving_licence`.
    #[serde(default, rename = "type")]
    pub doc_type: Option<String>,
    /// The document number.
    #[serde(default)]
    pub number: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub issuing_country: Option<String>,
}

/// The organization (KYB).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct OrganizationDetails {
    /// Registered legal name.
    #[serde(default)]
    pub legal_name: Option<String>,
    /// Company registration number.
    #[serde(default)]
    pub registration_number: Option<String>,
    /// Country of registration (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Registered address.
    #[serde(default)]
    pub address: Option<Address>,
    /// Headquarters country (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub headquarters_country: Option<String>,
    /// Ultimate parent's country (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub ultimate_parent_country: Option<String>,
    /// The person acting for the organization.
    #[serde(default)]
    pub representative: Option<Person>,
    /// Everyone owning 25 % or more.
    #[serde(default)]
    pub beneficial_owners: Vec<BeneficialOwner>,
    /// Whether the organization resells compute to its own customers.
    #[serde(default)]
    pub reseller: Option<bool>,
}

/// A beneficial owner: a person with an ownership share.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct BeneficialOwner {
    /// The person.
    #[serde(flatten)]
    pub person: Person,
    /// Share owned, 25..=100.
    #[serde(default)]
    pub ownership_percent: Option<f64>,
}

/// Declared intended use.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IntendedUse {
    /// One of [`USE_CATEGORIES`].
    #[serde(default)]
    pub category: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Training on biological-sequence data.
    #[serde(default)]
    pub biological_sequence_data: Option<bool>,
    /// Intent to export the trained model's weights.
    #[serde(default)]
    pub model_export: Option<bool>,
}

/// Accepted intended-use categories.
pub const USE_CATEGORIES: [&str; 6] = [
    "research",
    "model_training",
    "fine_tuning",
    "inference",
    "evaluation",
    "other",
];

/// Accepted identity document types.
pub const ID_DOCUMENT_TYPES: [&str; 3] = ["passport", "national_id", "driving_licence"];

/// Whether an applicant of `kind` may apply for tier `tier` (the built-in tiers belong to one
/// kind each; a tier a policy adds is open to both).
pub fn tier_fits(kind: ApplicantKind, tier: &str) -> bool {
    match tier {
        Tier::UNVERIFIED => false,
        Tier::IDENTITY_VERIFIED => kind == ApplicantKind::Individual,
        Tier::ORGANIZATION_VERIFIED | Tier::VALIDATED_END_USER => {
            kind == ApplicantKind::Organization
        }
        _ => true,
    }
}

/// How strict validation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// Check the fields that are present.
    Draft,
    /// Also require every field needed for a decision.
    Submit,
}

/// One bad field: a dotted path (`individual.date_of_birth`,
/// `organization.beneficial_owners[1].ownership_percent`), a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Where.
    pub field: String,
    /// Machine-readable problem: `missing`, `too_long`, `invalid`, `not_a_country`,
    /// `implausible`, `out_of_range`, `not_allowed`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub problem: String,
}

/// Collects field errors under a path prefix.
struct Checker {
    mode: ValidationMode,
    today: Date,
    errors: Vec<FieldError>,
}

// === impl ApplicationPayload ===

impl ApplicationPayload {
    /// The person identity verification checks: the individual applicant, or an organization's
    /// representative.
    pub fn verified_person(&self) -> Option<&Person> {
        match &self.organization {
            Some(org) => org.representative.as_ref(),
            None => self.individual.as_ref(),
        }
    }
}

impl ApplicationPayload {
    /// Parses JSON. A body that is not the right shape at all (wrong types) yields one error
    /// at `$`; field-level problems come from [`ApplicationPayload::validate`].
    pub fn from_json(bytes: &[u8]) -> Result<ApplicationPayload, Vec<FieldError>> {
        serde_json::from_slice(bytes).map_err(|e| {
            vec![FieldError {
                field: "$".into(),
                code: "invalid",
                problem: format!("not a valid application document: {e}"),
            }]
        })
    }

    /// Every problem with the payload, in field order; empty when valid. `today` is the date
    /// ages are computed at.
    pub fn validate(&self, mode: ValidationMode, today: Date) -> Vec<FieldError> {
        let mut c = Checker {
            mode,
            today,
            errors: Vec::new(),
        };
        self.check_tier(&mut c);
        match self.kind {
            ApplicantKind::Individual => {
                c.required("individual", self.individual.as_ref(), |c, p| {
                    c.person("individual", p)
                });
                if self.organization.is_some() {
                    c.push(
                        "organization",
                        "not_allowed",
                        "only for kind = organization",
                    );
                }
            }
            ApplicantKind::Organization => {
                c.required("organization", self.organization.as_ref(), |c, o| {
                    c.organization(o)
                });
                if self.individual.is_some() {
                    c.push("individual", "not_allowed", "only for kind = individual");
                }
            }
        }
        c.text(
            "payment_fingerprint",
            self.payment_fingerprint.as_deref(),
            128,
            false,
        );
        if let Some(fp) = &self.payment_fingerprint
            && !fp
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:-.".contains(&b))
        {
            c.push(
                "payment_fingerprint",
                "invalid",
                "letters, digits and _ : - . only",
            );
        }
        c.required("intended_use", self.intended_use.as_ref(), |c, u| {
            c.intended_use(u)
        });
        match self.expected_peak_accelerators {
            Some(n) if n > MAX_ACCELERATORS => c.push(
                "expected_peak_accelerators",
                "out_of_range",
                &format!("at most {MAX_ACCELERATORS}"),
            ),
            Some(_) => {}
            None => c.missing("expected_peak_accelerators"),
        }
        match self.expected_total_flop {
            Some(f) if !f.is_finite() || !(0.0..=MAX_TOTAL_FLOP).contains(&f) => c.push(
                "expected_total_flop",
                "out_of_range",
                "a number of FLOP between 0 and 1e32",
            ),
            Some(_) => {}
            None => c.missing("expected_total_flop"),
        }
        c.errors
    }

    /// The country used for queue filters and jurisdiction rules: residence for an
    /// individual, headquarters for an organization.
    pub fn primary_country(&self) -> Option<&str> {
        match self.kind {
            ApplicantKind::Individual => self
                .individual
                .as_ref()
                .and_then(|p| p.address.as_ref())
                .and_then(|a| a.country.as_deref()),
            ApplicantKind::Organization => self
                .organization
                .as_ref()
                .and_then(|o| o.headquarters_country.as_deref()),
        }
    }

    /// Every country the application names (nationalities, residences, jurisdiction,
    /// headquarters, ultimate parent, document issuers), deduplicated, for jurisdiction rules.
    pub fn countries(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |c: Option<&String>| {
            if let Some(c) = c
                && !out.contains(c)
            {
                out.push(c.clone());
            }
        };
        let person = |p: &Person, add: &mut dyn FnMut(Option<&String>)| {
            add(p.nationality.as_ref());
            add(p.address.as_ref().and_then(|a| a.country.as_ref()));
            add(p
                .id_document
                .as_ref()
                .and_then(|d| d.issuing_country.as_ref()));
        };
        if let Some(p) = &self.individual {
            person(p, &mut add);
        }
        if let Some(o) = &self.organization {
            add(o.jurisdiction.as_ref());
            add(o.headquarters_country.as_ref());
            add(o.ultimate_parent_country.as_ref());
            add(o.address.as_ref().and_then(|a| a.country.as_ref()));
            if let Some(r) = &o.representative {
                person(r, &mut add);
            }
            for owner in &o.beneficial_owners {
                person(&owner.person, &mut add);
            }
        }
        out
    }

    fn check_tier(&self, c: &mut Checker) {
        let Some(tier) = self.requested_tier.as_deref() else {
            c.missing("requested_tier");
            return;
        };
        if Tier::new(tier).is_err() || tier == Tier::UNVERIFIED {
            c.push(
                "requested_tier",
                "invalid",
                "not a tier that can be applied for",
            );
            return;
        }
        if !tier_fits(self.kind, tier) {
            c.push(
                "requested_tier",
                "not_allowed",
                "tier does not fit the application kind",
            );
        }
    }
}

// === impl Checker ===

impl Checker {
    fn push(&mut self, field: &str, code: &'static str, problem: &str) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            code,
            problem: problem.to_owned(),
        });
    }

    fn missing(&mut self, field: &str) {
        if self.mode == ValidationMode::Submit {
            self.push(field, "missing", "required");
        }
    }

    fn required<T>(&mut self, field: &str, value: Option<&T>, check: impl FnOnce(&mut Self, &T)) {
        match value {
            Some(v) => check(self, v),
            None => self.missing(field),
        }
    }

    /// Trimmed-non-empty, no control characters, at most `max` characters.
    fn text(&mut self, field: &str, value: Option<&str>, max: usize, required: bool) {
        let Some(v) = value else {
            if required {
                self.missing(field);
            }
            return;
        };
        if v.trim().is_empty() {
            self.push(field, "missing", "must not be blank");
        } else if v.chars().count() > max {
            self.push(field, "too_long", &format!("at most {max} characters"));
        } else if v.chars().any(char::is_control) {
            self.push(field, "invalid", "control characters are not allowed");
        }
    }

    fn country(&mut self, field: &str, value: Option<&str>) {
        match value {
            Some(v) if !is_country_code(v) => self.push(
                field,
                "not_a_country",
                "an ISO 3166-1 alpha-2 code in upper case, e.g. DE",
            ),
            Some(_) => {}
            None => self.missing(field),
        }
    }

    fn person(&mut self, at: &str, p: &Person) {
        let f = |name: &str| format!("{at}.{name}");
        self.text(
            &f("legal_name"),
            p.legal_name.as_deref(),
            MAX_NAME_CHARS,
            true,
        );
        match p.date_of_birth.as_deref() {
            Some(d) => self.birth_date(&f("date_of_birth"), d),
            None => self.missing(&f("date_of_birth")),
        }
        self.country(&f("nationality"), p.nationality.as_deref());
        self.required(&f("address"), p.address.as_ref(), |c, a| {
            c.address(&f("address"), a)
        });
        self.required(&f("id_document"), p.id_document.as_ref(), |c, d| {
            let g = |name: &str| format!("{at}.id_document.{name}");
            match d.doc_type.as_deref() {
                Some(t) if !ID_DOCUMENT_TYPES.contains(&t) => c.push(
                    &g("type"),
                    "invalid",
                    "passport, national_id or driving_licence",
                ),
                Some(_) => {}
                None => c.missing(&g("type")),
            }
            c.text(&g("number"), d.number.as_deref(), MAX_ID_CHARS, true);
            c.country(&g("issuing_country"), d.issuing_country.as_deref());
        });
        match p.phone.as_deref() {
            Some(phone) if !is_phone(phone) => self.push(
                &f("phone"),
                "invalid",
                "international form: + and 7 to 15 digits",
            ),
            Some(_) => {}
            None => self.missing(&f("phone")),
        }
    }

    fn address(&mut self, at: &str, a: &Address) {
        let f = |name: &str| format!("{at}.{name}");
        self.text(&f("line1"), a.line1.as_deref(), MAX_NAME_CHARS, true);
        self.text(&f("line2"), a.line2.as_deref(), MAX_NAME_CHARS, false);
        self.text(&f("city"), a.city.as_deref(), 100, true);
        self.text(&f("postal_code"), a.postal_code.as_deref(), 20, true);
        self.country(&f("country"), a.country.as_deref());
    }

    fn organization(&mut self, o: &OrganizationDetails) {
        let at = "organization";
        let f = |name: &str| format!("{at}.{name}");
        self.text(
            &f("legal_name"),
            o.legal_name.as_deref(),
            MAX_NAME_CHARS,
            true,
        );
        self.text(
            &f("registration_number"),
            o.registration_number.as_deref(),
            MAX_ID_CHARS,
            true,
        );
        self.country(&f("jurisdiction"), o.jurisdiction.as_deref());
        self.required(&f("address"), o.address.as_ref(), |c, a| {
            c.address(&f("address"), a)
        });
        self.country(
            &f("headquarters_country"),
            o.headquarters_country.as_deref(),
        );
        self.country(
            &f("ultimate_parent_country"),
            o.ultimate_parent_country.as_deref(),
        );
        self.required(&f("representative"), o.representative.as_ref(), |c, p| {
            c.person(&f("representative"), p)
        });
        let mut total = 0.0;
        for (i, owner) in o.beneficial_owners.iter().enumerate() {
            let path = format!("{at}.beneficial_owners[{i}]");
            self.person(&path, &owner.person);
            match owner.ownership_percent {
                Some(p) if p.is_finite() && (25.0..=100.0).contains(&p) => total += p,
                Some(_) => self.push(
                    &format!("{path}.ownership_percent"),
                    "out_of_range",
                    "between 25 and 100",
                ),
                None => self.missing(&format!("{path}.ownership_percent")),
            }
        }
        if total > 100.0 + 1e-9 {
            self.push(
                &f("beneficial_owners"),
                "out_of_range",
                "ownership percentages add up to more than 100",
            );
        }
        if o.reseller.is_none() {
            self.missing(&f("reseller"));
        }
    }

    fn intended_use(&mut self, u: &IntendedUse) {
        match u.category.as_deref() {
            Some(cat) if !USE_CATEGORIES.contains(&cat) => self.push(
                "intended_use.category",
                "invalid",
                &format!("one of {}", USE_CATEGORIES.join(", ")),
            ),
            Some(_) => {}
            None => self.missing("intended_use.category"),
        }
        self.text(
            "intended_use.description",
            u.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
            true,
        );
        if u.biological_sequence_data.is_none() {
            self.missing("intended_use.biological_sequence_data");
        }
        if u.model_export.is_none() {
            self.missing("intended_use.model_export");
        }
    }

    fn birth_date(&mut self, field: &str, text: &str) {
        let Some(date) = parse_date(text) else {
            self.push(field, "invalid", "a date as YYYY-MM-DD");
            return;
        };
        let age = age_at(date, self.today);
        if !AGE_RANGE.contains(&age) {
            self.push(
                field,
                "implausible",
                &format!(
                    "age must be {}..={} years",
                    AGE_RANGE.start(),
                    AGE_RANGE.end()
                ),
            );
        }
    }
}

/// Parses exactly `YYYY-MM-DD` into a real calendar date.
pub fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

/// Whole years from `born` to `today`.
pub fn age_at(born: Date, today: Date) -> i32 {
    let mut age = today.year() - born.year();
    if (today.month() as u8, today.day()) < (born.month() as u8, born.day()) {
        age -= 1;
    }
    age
}

/// `+` then 7..=15 digits once spaces, dots, dashes and parentheses are removed.
fn is_phone(text: &str) -> bool {
    let Some(rest) = text.trim().strip_prefix('+') else {
        return false;
    };
    let mut digits = 0;
    for c in rest.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return false,
        }
    }
    (7..=15).contains(&digits)
}

// === impl ApplicantKind ===

crate::names::stored_enum!(ApplicantKind { Individual => "individual", Organization => "organization" });

#[cfg(test)]
mod tests;
