//! Documents: magic-byte allow-list, encryption, metadata-only for customers, audited staff
//! downloads.

use computegate_kyc::accounts::{CustomerKind, StaffRole};
use computegate_kyc::audit::AuditFilter;
use computegate_kyc::verification::{
    ContentType, DocumentError, DocumentLimits, DocumentType, DocumentUpload, VerificationError,
};

use crate::fixtures::*;
use crate::support::{Ctx, t0};

fn upload(declared: &str, filename: &str, bytes: &[u8]) -> DocumentUpload {
    DocumentUpload {
        doc_type: DocumentType::Passport,
        declared_content_type: declared.into(),
        filename: Some(filename.into()),
        bytes: bytes.to_vec(),
    }
}

async fn documents_are_checked_encrypted_and_audited(ctx: Ctx) {
    let s = &ctx.store;
    let key = key();
    let limits = DocumentLimits::default();
    let alice = customer(s, "alice@example.com", CustomerKind::Individual).await;
    let mallory = customer(s, "mallory@example.com", CustomerKind::Individual).await;
    let app = s
        .verification()
        .create_draft(&key, &alice, &individual(), t0())
        .await
        .unwrap();

    // A ".pdf" declared as PDF holding PNG bytes is refused, as is an unknown type and an
    // oversized file.
    let err = s
        .verification()
        .add_document(
            &key,
            &alice,
            app.id,
            &upload("application/pdf", "passport.pdf", PNG),
            &limits,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerificationError::Document(DocumentError::LyingContentType { .. })
        ),
        "{err:?}"
    );
    let err = s
        .verification()
        .add_document(
            &key,
            &alice,
            app.id,
            &upload("text/html", "x.html", b"<html>"),
            &limits,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Document(DocumentError::UnsupportedType)
    ));
    let tiny = DocumentLimits { max_bytes: 16 };
    let err = s
        .verification()
        .add_document(
            &key,
            &alice,
            app.id,
            &upload("application/pdf", "p.pdf", PDF),
            &tiny,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        VerificationError::Document(DocumentError::TooLarge { max: 16 })
    ));
    // Someone else's application does not exist for them.
    let err = s
        .verification()
        .add_document(
            &key,
            &mallory,
            app.id,
            &upload("image/png", "p.png", PNG),
            &limits,
            t0(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::NotFound));

    let meta = s
        .verification()
        .add_document(
            &key,
            &alice,
            app.id,
            &upload("image/png", "passport.png", PNG),
            &limits,
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(meta.content_type, ContentType::Png);
    assert_eq!(meta.size_bytes, PNG.len() as u64);
    let listed = s
        .verification()
        .list_documents(&alice, app.id)
        .await
        .unwrap();
    assert_eq!(listed, vec![meta.clone()]);
    assert_eq!(
        s.verification()
            .get_application(&key, &alice, app.id)
            .await
            .unwrap()
            .documents,
        vec![meta.clone()]
    );
    let dump = raw_dump(&ctx).await;
    assert!(
        !dump.windows(8).any(|w| w == &PNG[..8]),
        "document stored in clear"
    );

    // Staff download: role-checked, decrypted, audited.
    let reviewer = staff(s, "rev@cg.example", StaffRole::Reviewer).await;
    let auditor = staff(s, "aud@cg.example", StaffRole::Auditor).await;
    let admin = staff(s, "adm@cg.example", StaffRole::Admin).await;
    let doc = s
        .verification()
        .document_for_staff(&key, &reviewer, meta.id, t0())
        .await
        .unwrap();
    assert_eq!(doc.bytes, PNG);
    assert_eq!(doc.meta, meta);
    s.verification()
        .document_for_staff(&key, &auditor, meta.id, t0())
        .await
        .unwrap();
    let err = s
        .verification()
        .document_for_staff(&key, &admin, meta.id, t0())
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::RoleNotPermitted));
    let err = s
        .verification()
        .document_for_staff(&key, &reviewer, uuid::Uuid::now_v7(), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, VerificationError::NotFound));
    let downloads = s
        .audit()
        .audit_page(&AuditFilter {
            action: Some("kyc.document.downloaded".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(downloads.len(), 2);
    assert_eq!(downloads[0].actor, format!("staff:{}", reviewer.staff_id));
    assert_eq!(
        downloads[0].detail["document_id"],
        serde_json::json!(meta.id)
    );
    assert_eq!(
        actions(s, &format!("application:{}", app.id)).await,
        vec![
            "kyc.application.created",
            "kyc.document.uploaded",
            "kyc.document.downloaded",
            "kyc.document.downloaded"
        ]
    );
    chain_intact(s).await;
}

crate::store_suite!(documents_are_checked_encrypted_and_audited);
