//! Documents attached to an application (passport scans, registration certificates,
//! compliance plans): an allow-list by magic bytes, a size limit, and envelope encryption —
//! each document under a fresh AES-256-GCM data key, the data key sealed by the master key.
//! Customers only ever get metadata back; staff downloads are audited.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::state::check_conflict;
use super::{CustomerCaller, StaffCaller, VerificationError};
use crate::accounts::{StaffRole, parse_column};
use crate::audit::{self, AuditAction, AuditEntry};
use crate::crypto::{CryptoError, MasterKey, random_bytes};
use crate::names::stored_enum;
use crate::store::{DbTime, StoreError, VerificationStore, in_transaction, on_pool};

/// Default largest document, in bytes (10 MiB).
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;

/// Most documents one application may hold.
pub const MAX_DOCUMENTS_PER_APPLICATION: i64 = 20;

const NONCE_LEN: usize = 12;

/// Limits on uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    /// Largest document in bytes. Default [`DEFAULT_MAX_DOCUMENT_BYTES`].
    pub max_bytes: usize,
}

/// What a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    /// Passport.
    Passport,
    /// National identity card.
    NationalId,
    /// Driving licence.
    DrivingLicence,
    /// Utility bill, bank statement …
    ProofOfAddress,
    /// Company registration certificate.
    RegistrationCertificate,
    /// Register of beneficial owners.
    OwnershipRegister,
    /// Compliance plan (required for `validated_end_user`).
    CompliancePlan,
    /// Anything else staff asked for.
    Other,
}

/// A file type we accept, identified by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ContentType {
    /// `application/pdf`
    #[serde(rename = "application/pdf")]
    Pdf,
    /// `image/png`
    #[serde(rename = "image/png")]
    Png,
    /// `image/jpeg`
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// `image/webp`
    #[serde(rename = "image/webp")]
    Webp,
    /// `image/tiff`
    #[serde(rename = "image/tiff")]
    Tiff,
}

/// An upload as received by the HTTP layer.
#[derive(Clone, PartialEq, Eq)]
pub struct DocumentUpload {
    /// What it is.
    pub doc_type: DocumentType,
    /// The content type the client declared (multipart part header).
    pub declared_content_type: String,
    /// The client's file name, if any; its extension must agree with the content.
    pub filename: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Stored document metadata — all a customer ever gets back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocumentMeta {
    /// Id.
    pub id: Uuid,
    /// The application it belongs to.
    pub application_id: Uuid,
    /// What it is.
    pub doc_type: DocumentType,
    /// Sniffed content type.
    pub content_type: ContentType,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the plaintext, hex.
    pub sha256: String,
    /// When it was uploaded.
    #[serde(with = "time::serde::rfc3339")]
    pub uploaded_at: OffsetDateTime,
}

/// A decrypted document for staff.
#[derive(Clone, PartialEq, Eq)]
pub struct StaffDocument {
    /// Metadata.
    pub meta: DocumentMeta,
    /// The plaintext.
    pub bytes: Vec<u8>,
}

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Empty body.
    #[error("document is empty")]
    Empty,
    /// Over the size limit.
    #[error("document is larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The bytes are none of PDF, PNG, JPEG, WebP or TIFF.
    #[error("unsupported document type (PDF, PNG, JPEG, WebP or TIFF only)")]
    UnsupportedType,
    /// The declared content type or the file extension disagrees with the bytes.
    #[error("declared type {declared} does not match the content ({actual})")]
    LyingContentType {
        /// What the client claimed.
        declared: String,
        /// What the bytes are.
        actual: &'static str,
    },
    /// The application already holds the maximum number of documents.
    #[error("too many documents on this application")]
    TooMany,
    /// Documents can only be added while the application is open.
    #[error("documents cannot be added in this application status")]
    ApplicationClosed,
}

#[derive(sqlx::FromRow)]
struct DocumentRow {
    id: Uuid,
    application_id: Uuid,
    doc_type: String,
    content_type: String,
    size_bytes: i64,
    sha256: Vec<u8>,
    uploaded_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    meta: DocumentRow,
    wrapped_key: Vec<u8>,
    ciphertext: Vec<u8>,
    customer_id: Uuid,
    email: String,
    organization_id: Option<Uuid>,
}

// === impl ContentType ===

stored_enum!(ContentType {
    Pdf => "application/pdf",
    Png => "image/png",
    Jpeg => "image/jpeg",
    Webp => "image/webp",
    Tiff => "image/tiff",
});

impl ContentType {
    /// Identifies the bytes by their magic number.
    pub fn sniff(bytes: &[u8]) -> Option<ContentType> {
        if bytes.starts_with(b"%PDF-") {
            Some(ContentType::Pdf)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ContentType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ContentType::Jpeg)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ContentType::Webp)
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Some(ContentType::Tiff)
        } else {
            None
        }
    }

    /// Parses a declared type: case-insensitive, parameters ignored, `image/jpg` accepted.
    pub fn from_declared(declared: &str) -> Option<ContentType> {
        let essence = declared
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Some(ContentType::Pdf),
            "image/png" => Some(ContentType::Png),
            "image/jpeg" | "image/jpg" => Some(ContentType::Jpeg),
            "image/webp" => Some(ContentType::Webp),
            "image/tiff" => Some(ContentType::Tiff),
            _ => None,
        }
    }

    /// The type a file extension names.
    pub fn from_extension(filename: &str) -> Option<ContentType> {
        let (_, ext) = filename.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "pdf" => Some(ContentType::Pdf),
            "png" => Some(ContentType::Png),
            "jpg" | "jpeg" => Some(ContentType::Jpeg),
            "webp" => Some(ContentType::Webp),
            "tif" | "tiff" => Some(ContentType::Tiff),
            _ => None,
        }
    }
}

// === impl DocumentType ===

stored_enum!(DocumentType {
    Passport => "passport",
    NationalId => "national_id",
    DrivingLicence => "driving_licence",
    ProofOfAddress => "proof_of_address",
    RegistrationCertificate => "registration_certificate",
    OwnershipRegister => "ownership_register",
    CompliancePlan => "compliance_plan",
    Other => "other",
});

impl Default for DocumentLimits {
    fn default() -> DocumentLimits {
        DocumentLimits {
            max_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

impl fmt::Debug for DocumentUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentUpload")
            .field("doc_type", &self.doc_type)
            .field("declared_content_type", &self.declared_content_type)
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for StaffDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffDocument")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Checks an upload against the limits and the allow-list; returns the sniffed type.
pub fn check_upload(
    upload: &DocumentUpload,
    limits: &DocumentLimits,
) -> Result<ContentType, DocumentError> {
    if upload.bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    if upload.bytes.len() > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            max: limits.max_bytes,
        });
    }
    let actual = ContentType::sniff(&upload.bytes).ok_or(DocumentError::UnsupportedType)?;
    let lying = |declared: &str| DocumentError::LyingContentType {
        declared: declared.chars().take(100).collect(),
        actual: actual.as_str(),
    };
    if ContentType::from_declared(&upload.declared_content_type) != Some(actual) {
        return Err(lying(&upload.declared_content_type));
    }
    if let Some(name) = &upload.filename
        && name.contains('.')
        && ContentType::from_extension(name) != Some(actual)
    {
        return Err(lying(name));
    }
    Ok(actual)
}

/// Encrypts `plaintext` under a fresh data key; returns (wrapped data key, ciphertext). Both
/// are bound to the document id.
fn seal_document(
    key: &MasterKey,
    id: Uuid,
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let data_key = random_bytes::<32>()?;
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(data_key));
    let nonce = random_bytes::<NONCE_LEN>()?;
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: id.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::SealFailed)?;
    let mut ciphertext = Vec::with_capacity(NONCE_LEN + sealed.len());
    ciphertext.extend_from_slice(&nonce);
    ciphertext.extend_from_slice(&sealed);
    let wrapped = key.seal(&data_key, &key_aad(id))?;
    Ok((wrapped, ciphertext))
}

fn open_document(
    key: &MasterKey,
    id: Uuid,
    wrapped: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let data_key: [u8; 32] = key
        .open(wrapped, &key_aad(id))?
        .try_into()
        .map_err(|_| CryptoError::OpenFailed)?;
    if ciphertext.len() < NONCE_LEN {
        return Err(CryptoError::SealedTooShort);
    }
    let (nonce, body) = ciphertext.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::SealedTooShort)?;
    Aes256Gcm::new(&Key::<Aes256Gcm>::from(data_key))
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: body,
                aad: id.as_bytes(),
            },
        )
        .map_err(|_| CryptoError::OpenFailed)
}

fn key_aad(id: Uuid) -> Vec<u8> {
    let mut aad = b"document-key:".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// Roles that may download documents.
const DOWNLOADERS: &[StaffRole] = &[
    StaffRole::Reviewer,
    StaffRole::SeniorReviewer,
    StaffRole::Auditor,
];

// === impl VerificationStore ===

impl VerificationStore<'_> {
    /// Adds a document to one of the customer's own open applications (another customer's id
    /// is [`VerificationError::NotFound`]). Sniffs, checks and encrypts before anything is
    /// written; records `kyc.document.uploaded` in the same transaction.
    pub async fn add_document(
        &self,
        key: &MasterKey,
        caller: &CustomerCaller,
        application_id: Uuid,
        upload: &DocumentUpload,
        limits: &DocumentLimits,
        now: OffsetDateTime,
    ) -> Result<DocumentMeta, VerificationError> {
        let content_type = check_upload(upload, limits)?;
        let id = Uuid::now_v7();
        let (wrapped, ciphertext) = seal_document(key, id, &upload.bytes)?;
        let meta = DocumentMeta {
            id,
            application_id,
            doc_type: upload.doc_type,
            content_type,
            size_bytes: upload.bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&upload.bytes)),
            uploaded_at: DbTime::new(now).get(),
        };
        let entry = AuditEntry::new(
            now,
            &caller.actor(),
            AuditAction::DocumentUploaded,
            format!("application:{application_id}"),
        )
        .with_detail(serde_json::json!({
            "document_id": id,
            "doc_type": meta.doc_type,
            "content_type": content_type,
            "size_bytes": meta.size_bytes,
            "sha256": meta.sha256,
        }));
        in_transaction!(self.store, |tx| {
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM verification_applications WHERE id = $1 AND customer_id = $2",
            )
            .bind(application_id)
            .bind(caller.customer_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(status) = status else {
                return Err(VerificationError::NotFound);
            };
            let status: super::ApplicationStatus =
                parse_column(&status, "verification_applications.status")?;
            if !status.is_open() {
                return Err(DocumentError::ApplicationClosed.into());
            }
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM verification_documents WHERE application_id = $1",
            )
            .bind(application_id)
            .fetch_one(&mut *tx)
            .await?;
            if count >= MAX_DOCUMENTS_PER_APPLICATION {
                return Err(DocumentError::TooMany.into());
            }
            sqlx::query(
                "INSERT INTO verification_documents (id, application_id, doc_type, content_type, \
                 size_bytes, sha256, wrapped_key, ciphertext, uploaded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(application_id)
            .bind(meta.doc_type.as_str())
            .bind(content_type.as_str())
            .bind(meta.size_bytes as i64)
            .bind(Sha256::digest(&upload.bytes).to_vec())
            .bind(&wrapped)
            .bind(&ciphertext)
            .bind(DbTime::new(now))
            .execute(&mut *tx)
            .await?;
            audit::append(&mut tx, &entry).await?;
        });
        Ok(meta)
    }

    /// Metadata of the documents on one of the customer's own applications.
    pub async fn list_documents(
        &self,
        caller: &CustomerCaller,
        application_id: Uuid,
    ) -> Result<Vec<DocumentMeta>, VerificationError> {
        let owned: Option<Uuid> = on_pool!(self.store, |pool| sqlx::query_scalar(
            "SELECT id FROM verification_applications WHERE id = $1 AND customer_id = $2"
        )
        .bind(application_id)
        .bind(caller.customer_id)
        .fetch_optional(pool)
        .await?);
        if owned.is_none() {
            return Err(VerificationError::NotFound);
        }
        Ok(self.documents_of(application_id).await?)
    }

    /// Metadata of an application's documents, oldest first (no ownership check).
    pub(crate) async fn documents_of(
        &self,
        application_id: Uuid,
    ) -> Result<Vec<DocumentMeta>, StoreError> {
        let rows: Vec<DocumentRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(
            "SELECT id, application_id, doc_type, content_type, size_bytes, sha256, uploaded_at \
             FROM verification_documents WHERE application_id = $1 ORDER BY uploaded_at, id"
        )
        .bind(application_id)
        .fetch_all(pool)
        .await?
        });
        rows.into_iter().map(DocumentRow::into_meta).collect()
    }

    /// Decrypts a document for a staff member (reviewer, senior reviewer or auditor, not tied
    /// to the applicant) and records `kyc.document.downloaded` — the record is committed
    /// before the bytes are returned. A document whose bytes retention purged is `NotFound`.
    pub async fn document_for_staff(
        &self,
        key: &MasterKey,
        staff: &StaffCaller,
        document_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<StaffDocument, VerificationError> {
        let party = self.staff_party(staff).await?;
        if !DOWNLOADERS.contains(&party.role) {
            return Err(VerificationError::RoleNotPermitted);
        }
        let row: Option<SealedRow> = on_pool!(self.store, |pool| {
            sqlx::query_as(
            "SELECT d.id, d.application_id, d.doc_type, d.content_type, d.size_bytes, d.sha256, \
             d.uploaded_at, d.wrapped_key, d.ciphertext, a.customer_id, c.email, c.organization_id \
             FROM verification_documents d \
             JOIN verification_applications a ON a.id = d.application_id \
             JOIN customers c ON c.id = a.customer_id WHERE d.id = $1 AND d.purged_at IS NULL"
        )
        .bind(document_id)
        .fetch_optional(pool)
        .await?
        });
        let row = row.ok_or(VerificationError::NotFound)?;
        let applicant = super::state::Applicant {
            customer_id: row.customer_id,
            email: row.email.clone(),
            organization_id: row.organization_id,
            kind: super::ApplicantKind::Individual,
        };
        check_conflict(&party, &applicant)?;
        let bytes = open_document(key, row.meta.id, &row.wrapped_key, &row.ciphertext)?;
        let meta = row.meta.into_meta()?;
        let entry = AuditEntry::new(
            now,
            &staff.actor(),
            AuditAction::DocumentDownloaded,
            format!("application:{}", meta.application_id),
        )
        .with_detail(serde_json::json!({
            "document_id": meta.id,
            "doc_type": meta.doc_type,
            "role": party.role,
        }));
        self.store.audit().record_audit(&entry).await?;
        Ok(StaffDocument { meta, bytes })
    }
}

// === impl DocumentRow ===

impl DocumentRow {
    fn into_meta(self) -> Result<DocumentMeta, StoreError> {
        Ok(DocumentMeta {
            id: self.id,
            application_id: self.application_id,
            doc_type: parse_column(&self.doc_type, "verification_documents.doc_type")?,
            content_type: parse_column(&self.content_type, "verification_documents.content_type")?,
            size_bytes: u64::try_from(self.size_bytes).map_err(|_| StoreError::CorruptRow {
                column: "verification_documents.size_bytes",
            })?,
            sha256: hex::encode(self.sha256),
            uploaded_at: self.uploaded_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(declared: &str, filename: Option<&str>, bytes: &[u8]) -> DocumentUpload {
        DocumentUpload {
            doc_type: DocumentType::Passport,
            declared_content_type: declared.into(),
            filename: filename.map(Into::into),
            bytes: bytes.to_vec(),
        }
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";

    #[test]
    fn sniffing() {
        assert_eq!(ContentType::sniff(PDF), Some(ContentType::Pdf));
        assert_eq!(ContentType::sniff(PNG), Some(ContentType::Png));
        assert_eq!(
            ContentType::sniff(b"\xFF\xD8\xFF\xE0\0\x10JFIF"),
            Some(ContentType::Jpeg)
        );
        assert_eq!(
            ContentType::sniff(b"RIFF\x24\0\0\0WEBPVP8 "),
            Some(ContentType::Webp)
        );
        assert_eq!(
            ContentType::sniff(b"II*\0\x08\0\0\0"),
            Some(ContentType::Tiff)
        );
        assert_eq!(
            ContentType::sniff(b"MM\0*\0\0\0\x08"),
            Some(ContentType::Tiff)
        );
        assert_eq!(ContentType::sniff(b"RIFF\x24\0\0\0WAVE"), None);
        assert_eq!(ContentType::sniff(b"<html>"), None);
        assert_eq!(ContentType::sniff(b"MZ\x90\0"), None);
    }

    #[test]
    fn uploads_are_checked() {
        let limits = DocumentLimits::default();
        assert_eq!(
            check_upload(&upload("application/pdf", Some("a.PDF"), PDF), &limits),
            Ok(ContentType::Pdf)
        );
        assert_eq!(
            check_upload(
                &upload("image/jpg; q=1", None, b"\xFF\xD8\xFF\xE0"),
                &limits
            ),
            Ok(ContentType::Jpeg)
        );
        // A ".pdf" claiming to be a PDF but holding PNG bytes.
        assert_eq!(
            check_upload(
                &upload("application/pdf", Some("passport.pdf"), PNG),
                &limits
            ),
            Err(DocumentError::LyingContentType {
                declared: "application/pdf".into(),
                actual: "image/png"
            })
        );
        // Right content type, lying extension.
        assert!(matches!(
            check_upload(&upload("image/png", Some("passport.pdf"), PNG), &limits),
            Err(DocumentError::LyingContentType { .. })
        ));
        assert_eq!(
            check_upload(&upload("text/html", None, b"<html>"), &limits),
            Err(DocumentError::UnsupportedType)
        );
        assert_eq!(
            check_upload(&upload("image/png", None, b""), &limits),
            Err(DocumentError::Empty)
        );
        let small = DocumentLimits { max_bytes: 8 };
        assert_eq!(
            check_upload(&upload("image/png", None, PNG), &small),
            Err(DocumentError::TooLarge { max: 8 })
        );
    }

    #[test]
    fn envelope_round_trip_and_binding() {
        let key = MasterKey::generate().unwrap();
        let id = Uuid::now_v7();
        let (wrapped, ct) = seal_document(&key, id, PDF).unwrap();
        assert!(!ct.windows(5).any(|w| w == b"%PDF-"));
        assert_eq!(open_document(&key, id, &wrapped, &ct).unwrap(), PDF);
        // Moved to another row, or under another master key: refused.
        assert!(open_document(&key, Uuid::now_v7(), &wrapped, &ct).is_err());
        let other = MasterKey::generate().unwrap();
        assert!(open_document(&other, id, &wrapped, &ct).is_err());
        // Two documents never share a data key.
        let (wrapped2, _) = seal_document(&key, id, PDF).unwrap();
        assert_ne!(
            key.open(&wrapped, &key_aad(id)).unwrap(),
            key.open(&wrapped2, &key_aad(id)).unwrap()
        );
    }
}
