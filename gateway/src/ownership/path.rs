//! Owner-path templates (`/v1/jobs/{id}`): which request paths name an upstream job, and which
//! job. Pure: parsing and matching over strings, no I/O.
//!
//! Matching is deliberately broader than any upstream's router, because a path the template
//! misses is forwarded unchecked: literal segments compare ASCII case-insensitively, every
//! segment is percent-decoded first, and a path continuing past the template (`/v1/jobs/7/logs`)
//! matches it. Paths an upstream might normalize into another job's path — dot segments, empty
//! segments, encoded `/` or `\` — are refused outright ([`PathRefused`]) rather than guessed at.

/// A compiled owner-path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerPath {
    segments: Vec<Segment>,
}

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Must equal this text (ASCII case-insensitively).
    Literal(String),
    /// `{id}`: the upstream's job id.
    Id,
    /// Any other `{name}`: any one non-empty segment (e.g. a namespace).
    Any,
}

/// A request path that cannot be matched safely: an upstream could read it as another path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the request path is not in canonical form (dot or empty segments, encoded separators)")]
pub struct PathRefused;

// === impl OwnerPath ===

impl OwnerPath {
    /// Parses a template: starts with `/`, segments are literals or `{name}`, exactly one of
    /// them `{id}`.
    pub fn parse(template: &str) -> Result<Self, String> {
        let rest = template
            .strip_prefix('/')
            .ok_or_else(|| "must start with '/'".to_string())?;
        let mut segments = Vec::new();
        for part in rest.split('/') {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some("id") => Segment::Id,
                Some(name) if !name.is_empty() && name.chars().all(is_name_char) => Segment::Any,
                Some(_) => return Err(format!("`{{{part}}}` is not a placeholder name")),
                None if part.is_empty() => return Err("has an empty segment".into()),
                None if part.contains(['{', '}', '%', '?', '#']) => {
                    return Err(format!(
                        "segment `{part}` is neither literal nor `{{name}}`"
                    ));
                }
                None if part == "." || part == ".." => {
                    return Err("has a dot segment".into());
                }
                None => Segment::Literal(part.to_string()),
            };
            segments.push(segment);
        }
        match segments.iter().filter(|s| **s == Segment::Id).count() {
            1 => Ok(Self { segments }),
            0 => Err("needs an `{id}` segment".into()),
            _ => Err("has more than one `{id}` segment".into()),
        }
    }

    /// The job id `path` names, if it matches the template (or continues it); `Err` when the
    /// path is not canonical and must be refused.
    pub fn job_id(&self, path: &str) -> Result<Option<String>, PathRefused> {
        let segments = canonical_segments(path)?;
        if segments.len() < self.segments.len() {
            return Ok(None);
        }
        let mut id = None;
        for (want, got) in self.segments.iter().zip(&segments) {
            match want {
                Segment::Literal(text) if text.eq_ignore_ascii_case(got) => {}
                Segment::Literal(_) => return Ok(None),
                // The trailing empty segment of `/v1/jobs/` is the collection, not a job.
                Segment::Id | Segment::Any if got.is_empty() => return Ok(None),
                Segment::Id => id = Some(got.clone()),
                Segment::Any => {}
            }
        }
        Ok(id)
    }
}

/// Whether `path` is canonical (no dot or empty segments but a trailing slash, no encoded
/// separators, well-formed escapes). Every route is matched on the raw path, so a path an
/// upstream might normalize into another route's (`/v1/ping/../jobs`) is refused before routing.
pub fn check_canonical(path: &str) -> Result<(), PathRefused> {
    // Runs on every request: decodes (and allocates) only segments that carry an escape.
    let rest = path.strip_prefix('/').ok_or(PathRefused)?;
    let mut parts = rest.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if part.contains('%') {
            segment_allowed(&percent_decode(part).ok_or(PathRefused)?, last)?;
        } else {
            segment_allowed(part, last)?;
        }
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The path's segments, percent-decoded; refused when an upstream could read it as another path.
fn canonical_segments(path: &str) -> Result<Vec<String>, PathRefused> {
    let rest = path.strip_prefix('/').ok_or(PathRefused)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let decoded = percent_decode(part).ok_or(PathRefused)?;
        segment_allowed(&decoded, i == last)?;
        out.push(decoded);
    }
    Ok(out)
}

/// A decoded segment an upstream reads as itself: not `.` or `..`, no separator inside, and
/// empty only as a trailing slash.
fn segment_allowed(decoded: &str, last: bool) -> Result<(), PathRefused> {
    if (decoded.is_empty() && !last)
        || decoded == "."
        || decoded == ".."
        || decoded.contains(['/', '\\'])
    {
        return Err(PathRefused);
    }
    Ok(())
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_check_refuses_exactly_what_owner_matching_refuses() {
        for path in [
            "/",
            "/v1/jobs",
            "/v1/jobs/",
            "/v1/a%20b",
            "/v1//jobs",
            "/v1/./x",
            "/v1/../x",
            "/v1/%2e%2e/x",
            "/v1/a%2Fb",
            "/v1/a%5cb",
            "/v1/%zz",
            "/v1/%ff",
            "v1/jobs",
            "//",
        ] {
            assert_eq!(
                check_canonical(path).is_ok(),
                canonical_segments(path).is_ok(),
                "{path}"
            );
        }
        assert!(check_canonical("/v1/jobs/").is_ok());
        assert!(check_canonical("/v1/ping/../jobs").is_err());
    }

    fn jobs() -> OwnerPath {
        OwnerPath::parse("/v1/jobs/{id}").expect("template")
    }

    #[test]
    fn object_paths_name_their_job() {
        let t = jobs();
        assert_eq!(t.job_id("/v1/jobs/abc"), Ok(Some("abc".into())));
        assert_eq!(t.job_id("/v1/jobs/abc/logs"), Ok(Some("abc".into())));
        assert_eq!(t.job_id("/v1/jobs/abc/"), Ok(Some("abc".into())));
        assert_eq!(t.job_id("/V1/Jobs/abc"), Ok(Some("abc".into())));
        assert_eq!(t.job_id("/v1/jobs/%61bc"), Ok(Some("abc".into())));
    }

    #[test]
    fn other_paths_name_no_job() {
        let t = jobs();
        assert_eq!(t.job_id("/v1/jobs"), Ok(None));
        assert_eq!(t.job_id("/v1/jobs/"), Ok(None));
        assert_eq!(t.job_id("/v1/gpus/abc"), Ok(None));
        assert_eq!(t.job_id("/v1"), Ok(None));
    }

    #[test]
    fn paths_an_upstream_could_rewrite_are_refused() {
        let t = jobs();
        for path in [
            "/v1/jobs/x/../abc",
            "/v1/./jobs/abc",
            "/v1//jobs/abc",
            "/v1/jobs//abc",
            "/v1/jobs/%2e%2e/abc",
            "/v1/jobs%2Fabc",
            "/v1/jobs/a%5cb",
            "/v1/jobs/%zz",
            "/v1/jobs/%ff",
        ] {
            assert_eq!(t.job_id(path), Err(PathRefused), "{path}");
        }
    }

    #[test]
    fn placeholders_match_one_segment() {
        let t = OwnerPath::parse("/apis/batch/v1/namespaces/{namespace}/jobs/{id}").expect("k8s");
        assert_eq!(
            t.job_id("/apis/batch/v1/namespaces/compute/jobs/train-1/status"),
            Ok(Some("train-1".into()))
        );
        assert_eq!(t.job_id("/apis/batch/v1/namespaces/compute/jobs"), Ok(None));
    }

    #[test]
    fn templates_are_checked() {
        for bad in [
            "v1/jobs/{id}",
            "/v1/jobs",
            "/v1/{id}/{id}",
            "/v1//{id}",
            "/v1/{}/{id}",
            "/v1/jo{bs/{id}",
            "/v1/../{id}",
            "/v1/%41/{id}",
        ] {
            assert!(OwnerPath::parse(bad).is_err(), "{bad}");
        }
        assert!(OwnerPath::parse("/slurm/v0.0.41/job/{id}").is_ok());
    }
}
