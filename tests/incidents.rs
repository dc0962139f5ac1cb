//! Incidents through the real binary: staff record an abuse incident over the staff API (bad
//! indicators refused naming the field), move it open → reported (closed → open refused),
//! fetch its STIX 2.1 bundle (`application/stix+json;version=2.1`, partner sharing by default:
//! no raw address, domain or customer id in it), export every incident with
//! `computegate incidents export --format stix`, and import that export into a second
//! deployment's store with `computegate incidents import`: the customer there whose email domain
//! and uploaded passport match gets a review flag for each, with our context (seen on the staff
//! API and in the console's case file of their application), the other customer none; importing
//! again raises nothing new, and a deployment refuses its own bundle. An authority export
//! stripped of its indicators (only the evidence: observed-data and its observables) still
//! flags that customer, by the observables' values.
//!
//! SQLite; the `_on_postgres` variant runs the same body with both stores on PostgreSQL. The
//! bundles are checked with the reference validator (`stix2-validator` from PyPI, which
//! `scripts/test.sh` installs in `target/tools-venv`) in `exported_bundles_pass_the_stix_validator`,
//! which also walks each bundle from the report to its evidence.

mod kyc_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use kyc_support::{Customer, Kyc, STAFF_PASSWORD, Staff, data_bytes, individual};
use sha2::{Digest as _, Sha256};
use support::cluster::PgDatabase;
use support::identity::Setup;
use support::{TempDir, expect_problem, install_crypto, within};

/// Budget of one whole flow (two gateways, several CLI runs, on a loaded 2-core machine).
const FLOW_TIMEOUT: Duration = Duration::from_secs(240);

/// The STIX media type of a bundle.
const STIX: &str = "application/stix+json;version=2.1";

/// The test passport (`tests/data/kyc/passport.pdf`).
const PASSPORT: &str = "passport.pdf";

/// A recorded incident and the email domain it names.
struct Recorded {
    id: String,
    domain: String,
}

#[tokio::test]
async fn incidents_round_trip_on_sqlite() {
    within(FLOW_TIMEOUT, async {
        let ours = Kyc::start(&Setup::default()).await;
        let partner = Kyc::start(&Setup::default()).await;
        round_trip(&ours, &partner).await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL (scripts/test.sh)"]
async fn incidents_round_trip_on_postgres() {
    within(FLOW_TIMEOUT, async {
        let (db_a, db_b) = (PgDatabase::create(), PgDatabase::create());
        let on = |db: &PgDatabase| Setup {
            database_url: Some(db.url.clone()),
            ..Setup::default()
        };
        let ours = Kyc::start(&on(&db_a)).await;
        let partner = Kyc::start(&on(&db_b)).await;
        round_trip(&ours, &partner).await;
        drop((ours, partner));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs stix2-validator in target/tools-venv (scripts/test.sh installs it)"]
async fn exported_bundles_pass_the_stix_validator() {
    within(FLOW_TIMEOUT, async {
        let kyc = Kyc::start(&Setup::default()).await;
        let reviewer = kyc.staff("reviewer").await;
        let customer = kyc.customer().await;
        let recorded = record(&kyc, &reviewer, &customer).await;
        let dir = TempDir::new("stix");
        for sharing in ["partner", "authority"] {
            let path = format!("/staff/v1/incidents/{}/stix?sharing={sharing}", recorded.id);
            let resp = kyc.staff_get(&reviewer, &path).await;
            assert_eq!(resp.status(), 200, "{sharing}: {resp:?}");
            let bundle = resp.bytes().await.expect("bundle");
            let file = dir.write(&format!("{sharing}.json"), bundle);
            validate(&file);
            assert_evidence(&file, sharing);
        }
        for sharing in ["partner", "authority"] {
            let file = dir.path().join(format!("cli-{sharing}.json"));
            export(&kyc, sharing, &file);
            validate(&file);
            assert_evidence(&file, sharing);
        }
    })
    .await;
}

/// Records an incident on `ours`, exports it, imports it on `partner`.
async fn round_trip(ours: &Kyc, partner: &Kyc) {
    let reviewer = ours.staff("reviewer").await;
    let suspect = ours.customer().await;

    // Bad input: each failing field named, nothing recorded.
    let bad = json!({
        "kind": "account_sharing",
        "description": "x",
        "customers": [suspect.id],
        "indicators": [{"type": "ipv4", "value": "999.1.1.1"}, {"type": "url", "value": "x"}],
    });
    let resp = ours
        .staff_post(&reviewer, "/staff/v1/incidents", &bad)
        .await;
    let problem = expect_problem(resp, 422, "invalid-request").await;
    assert_eq!(
        problem["errors"][0]["field"], "indicators[0].value",
        "{problem}"
    );
    assert_eq!(
        problem["errors"][1]["field"], "indicators[1].type",
        "{problem}"
    );

    let recorded = record(ours, &reviewer, &suspect).await;
    let status = format!("/staff/v1/incidents/{}/status", recorded.id);
    let resp = ours
        .staff_post(&reviewer, &status, &json!({"status": "closed"}))
        .await;
    expect_problem(resp, 409, "invalid-state").await;
    let resp = ours
        .staff_post(&reviewer, &status, &json!({"status": "reported"}))
        .await;
    assert_eq!(resp.status(), 200, "reported: {resp:?}");

    // The bundle over the API: partner sharing by default.
    let path = format!("/staff/v1/incidents/{}/stix", recorded.id);
    let resp = ours.staff_get(&reviewer, &path).await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    assert_eq!(resp.headers()["content-type"], STIX);
    let bundle: Value = resp.json().await.expect("bundle JSON");
    assert_eq!(bundle["type"], "bundle");
    let text = bundle.to_string();
    for private in [
        recorded.domain.as_str(),
        "203.0.113.77",
        suspect.id.as_str(),
    ] {
        assert!(
            !text.contains(private),
            "{private} in a partner bundle: {text}"
        );
    }
    let incident = (bundle["objects"].as_array().expect("objects").iter())
        .find(|o| o["type"] == "incident")
        .expect("an incident object");
    assert_eq!(incident["x_computegate_status"], "reported");

    // The CLI export, imported by the partner deployment.
    let dir = TempDir::new("incidents");
    let file = dir.path().join("bundle.json");
    export(ours, "partner", &file);
    // An export to a file that cannot be written fails before anything is exported: no audit
    // record (nor annual-pack count) of a bundle nobody received.
    let exports = || {
        let out = ours.cli(&["audit", "export", "--since", "2000-01-01"]);
        assert!(out.status.success(), "audit export: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .matches("\"incident.bundle.exported\"")
            .count()
    };
    let before = exports();
    let unwritable = dir.path().join("missing-dir").join("bundle.json");
    let out = ours.cli(&[
        "incidents",
        "export",
        "--format",
        "stix",
        "--output",
        unwritable.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot write"),
        "{out:?}"
    );
    assert_eq!(exports(), before, "a failed export is not audited");
    let matching = partner
        .customer_with(&format!("ops@{}", recorded.domain), "individual")
        .await;
    let application = apply_with_passport(partner, &matching).await;
    let bystander = partner.customer().await;
    let out = import(partner, &file);
    assert!(out.status.success(), "import: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 matched; 2 review flags raised"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("flagged customer {}", matching.id)),
        "{stdout}"
    );

    let partner_reviewer = partner.staff("reviewer").await;
    let flags = flags_of(partner, &partner_reviewer, &matching).await;
    let mut kinds: Vec<&str> = flags
        .iter()
        .filter_map(|f| f["indicator_type"].as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["document_sha256", "email_domain"], "{flags:?}");
    for flag in &flags {
        assert_eq!(flag["partner"], "Computegate provider");
        assert_eq!(flag["context"], "API keys resold on a forum");
        assert_eq!(flag["bundle_id"], bundle_id(&file));
    }
    assert!(
        flags_of(partner, &partner_reviewer, &bystander)
            .await
            .is_empty()
    );

    // The console's case file of the flagged customer's application shows the flags.
    let case = console_page(
        partner,
        &partner_reviewer,
        &format!("/console/applications/{application}"),
    )
    .await;
    let section = case
        .split("id=\"incident-flags\"")
        .nth(1)
        .and_then(|s| s.split("<h2").next())
        .expect("the case file's incident flags");
    for shown in [
        "Computegate provider",
        "API keys resold on a forum",
        "email_domain",
        "document_sha256",
    ] {
        assert!(section.contains(shown), "{shown} missing: {section}");
    }

    // Importing again changes nothing; our own bundle is refused at home.
    let again = import(partner, &file);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 review flags raised"),
        "{again:?}"
    );
    let own = import(ours, &file);
    assert_eq!(own.status.code(), Some(1), "{own:?}");
    assert!(
        String::from_utf8_lossy(&own.stderr).contains("own export"),
        "{own:?}"
    );

    // An authority-style bundle whose values are only evidence (observables of an
    // observed-data, no indicator) matches by those values.
    let authority = dir.path().join("authority.json");
    export(ours, "authority", &authority);
    let mut evidence: Value =
        serde_json::from_slice(&std::fs::read(&authority).expect("read")).expect("bundle JSON");
    let objects = evidence["objects"].as_array_mut().expect("objects");
    objects.retain(|o| o["type"] != "indicator");
    objects
        .iter_mut()
        .filter(|o| o["type"] == "report")
        .for_each(|r| {
            let refs = r["object_refs"].as_array_mut().expect("refs");
            refs.retain(|id| !id.as_str().is_some_and(|id| id.starts_with("indicator--")));
        });
    evidence["id"] = json!(format!("bundle--{}", uuid::Uuid::new_v4()));
    let evidence_file = dir.write("evidence.json", evidence.to_string());
    let out = import(partner, &evidence_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("2 matched; 2 review flags raised"),
        "{out:?}"
    );
    let mut by_evidence: Vec<String> = flags_of(partner, &partner_reviewer, &matching)
        .await
        .iter()
        .filter(|f| f["bundle_id"] == evidence["id"])
        .map(|f| format!("{} {}", f["indicator_type"], f["partner_indicator"]))
        .map(|f| f.split("--").next().unwrap_or_default().replace('"', ""))
        .collect();
    by_evidence.sort();
    assert_eq!(
        by_evidence,
        ["document_sha256 file", "email_domain domain-name"],
        "flagged under the observables' ids"
    );
}

/// Records an incident about `customer` with an email domain of its own and a few indicators
/// nobody holds; asserts 201.
async fn record(kyc: &Kyc, staff: &Staff, customer: &Customer) -> Recorded {
    let domain = format!("resold-{}.example", uuid::Uuid::new_v4().simple());
    let body = json!({
        "kind": "account_sharing",
        "description": "API keys resold on a forum",
        "customers": [customer.id],
        "indicators": [
            {"type": "email_domain", "value": domain.to_uppercase()},
            {"type": "ipv4", "value": "203.0.113.77"},
            {"type": "ipv6", "value": "2001:db8::77"},
            {"type": "document_sha256", "value": hex::encode(Sha256::digest(data_bytes(PASSPORT)))},
            {"type": "payment_fingerprint", "value": "pm_fp_Xt5EWLL9"},
            {"type": "api_key_id", "value": "Ab3dEf7hIj9kLm1n"},
        ],
    });
    let resp = kyc.staff_post(staff, "/staff/v1/incidents", &body).await;
    assert_eq!(resp.status(), 201, "create incident: {resp:?}");
    let doc: Value = resp.json().await.expect("incident JSON");
    assert_eq!(
        doc["indicators"][0]["value"],
        domain.as_str(),
        "lower-cased"
    );
    Recorded {
        id: doc["id"].as_str().expect("id").to_owned(),
        domain,
    }
}

/// A draft application of `customer` with the test passport uploaded, submitted; its id.
async fn apply_with_passport(kyc: &Kyc, customer: &Customer) -> String {
    let body = individual("Ines Aalto", "1990-02-03", "FI", "FI1234567");
    let id = kyc.draft(customer, &body).await;
    let pdf = data_bytes(PASSPORT);
    kyc.upload_ok(customer, &id, "passport", PASSPORT, "application/pdf", &pdf)
        .await;
    kyc.submit(customer, &id).await;
    id
}

/// The console page at `path` as `staff`, signed in through the console's form (the session
/// cookie and the form's CSRF token carried by hand; redirects are not followed).
async fn console_page(kyc: &Kyc, staff: &Staff, path: &str) -> String {
    install_crypto();
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    let session = |resp: &reqwest::Response| -> String {
        (resp.headers().get_all("set-cookie").iter())
            .filter_map(|v| v.to_str().ok()?.strip_prefix("cg_console="))
            .map(|v| v.split(';').next().unwrap_or_default().to_owned())
            .next()
            .expect("a console session cookie")
    };
    let login = http
        .get(kyc.gw.admin_url("/console/login"))
        .send()
        .await
        .expect("GET login");
    let anonymous = session(&login);
    let html = login.text().await.expect("login page");
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    let csrf = html[at..].split('"').next().unwrap_or_default().to_owned();
    let signed_in = http
        .post(kyc.gw.admin_url("/console/login"))
        .header("cookie", format!("cg_console={anonymous}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", staff.email.to_lowercase().as_str()),
            ("password", STAFF_PASSWORD),
        ])
        .send()
        .await
        .expect("POST login");
    assert_eq!(signed_in.status(), 303, "sign-in: {signed_in:?}");
    let cookie = session(&signed_in);
    let page = http
        .get(kyc.gw.admin_url(path))
        .header("cookie", format!("cg_console={cookie}"))
        .send()
        .await
        .expect("GET page");
    assert_eq!(page.status(), 200, "{path}: {page:?}");
    page.text().await.expect("page")
}

/// `computegate incidents export --format stix --sharing SHARING --output FILE`, asserting
/// success.
fn export(kyc: &Kyc, sharing: &str, file: &Path) {
    let file = file.to_str().expect("UTF-8 path");
    let out = kyc.cli(&[
        "incidents",
        "export",
        "--format",
        "stix",
        "--sharing",
        sharing,
        "--output",
        file,
    ]);
    assert!(out.status.success(), "incidents export: {out:?}");
}

/// `computegate incidents import FILE`.
fn import(kyc: &Kyc, file: &Path) -> std::process::Output {
    kyc.cli(&["incidents", "import", file.to_str().expect("UTF-8 path")])
}

/// The id of the bundle in `file`.
fn bundle_id(file: &Path) -> String {
    let text = std::fs::read(file).expect("read bundle");
    let bundle: Value = serde_json::from_slice(&text).expect("bundle JSON");
    bundle["id"].as_str().expect("id").to_owned()
}

/// The incident flags of `customer` on the staff API.
async fn flags_of(kyc: &Kyc, staff: &Staff, customer: &Customer) -> Vec<Value> {
    let path = format!("/staff/v1/customers/{}/incident-flags", customer.id);
    let resp = kyc.staff_get(staff, &path).await;
    assert_eq!(resp.status(), 200, "flags: {resp:?}");
    let doc: Value = resp.json().await.expect("flags JSON");
    doc["flags"].as_array().expect("flags").clone()
}

/// Asserts the evidence of the one incident in the bundle in `file`: an `observed-data` naming
/// the observables `sharing` may carry (partners: the document digest only; authorities: every
/// value), each in the bundle, each indicator in clear `based-on` it, it `related-to` the
/// incident, and the report naming it.
fn assert_evidence(file: &Path, sharing: &str) {
    let text = std::fs::read(file).expect("read bundle");
    let bundle: Value = serde_json::from_slice(&text).expect("bundle JSON");
    let objects = bundle["objects"].as_array().expect("objects");
    let of_type = |t: &str| -> Vec<&Value> { objects.iter().filter(|o| o["type"] == t).collect() };
    let observed = of_type("observed-data");
    assert_eq!(observed.len(), 1, "{sharing}: {bundle}");
    let observed = observed[0];
    let mut types: Vec<&str> = (observed["object_refs"].as_array().expect("refs").iter())
        .map(|r| {
            let sco = (objects.iter())
                .find(|o| o["id"] == *r)
                .unwrap_or_else(|| panic!("{sharing}: {r} is not in the bundle"));
            sco["type"].as_str().expect("type")
        })
        .collect();
    types.sort();
    let expected: &[&str] = match sharing {
        "partner" => &["file"],
        _ => &[
            "domain-name",
            "file",
            "ipv4-addr",
            "ipv6-addr",
            "x-computegate-api-key",
            "x-computegate-payment-instrument",
        ],
    };
    assert_eq!(types, expected, "{sharing}");
    let relationships = of_type("relationship");
    let links = |kind: &str, end: &str| {
        (relationships.iter())
            .filter(|r| r["relationship_type"] == kind && r[end] == observed["id"])
            .count()
    };
    assert_eq!(links("based-on", "target_ref"), expected.len(), "{sharing}");
    let incident = &of_type("incident")[0]["id"];
    assert!(
        (relationships.iter()).any(|r| r["relationship_type"] == "related-to"
            && r["source_ref"] == observed["id"]
            && r["target_ref"] == *incident),
        "{sharing}: the evidence is not related to the incident"
    );
    let report = &of_type("report")[0]["object_refs"];
    assert!(
        report.as_array().expect("refs").contains(&observed["id"]),
        "{sharing}"
    );
}

/// Runs the reference STIX 2.1 validator on `file`; fails the test with its report unless the
/// bundle is valid.
fn validate(file: &Path) {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools-venv/bin/python");
    let script = "import sys\n\
        from stix2validator import validate_file, print_results, ValidationOptions\n\
        results = validate_file(sys.argv[1], ValidationOptions(version='2.1'))\n\
        print_results(results)\n\
        sys.exit(0 if results.is_valid else 1)\n";
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} is not valid STIX 2.1:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
