//! A small, strict parser of the Prometheus / OpenMetrics text the admin listener serves.
//!
//! Strict on purpose: every sample line must be `name{label="value",…} value`, belong to a
//! family declared by a preceding `# TYPE` line (with a suffix that family type allows), and the
//! exposition must end with `# EOF`. Anything else is an error naming the line.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Sample name (with `_total`, `_bucket`, … suffix).
    pub(crate) name: String,
    /// Labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Value.
    pub(crate) value: f64,
}

/// Parses a whole exposition.
pub(crate) fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("exposition does not end with `# EOF`")?;
    let mut families: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let (kind, name) = (parts.next(), parts.next());
            let name = name
                .filter(|n| is_metric_name(n))
                .ok_or_else(|| err("bad comment"))?;
            match kind {
                Some("TYPE") => {
                    let ty = parts.next().ok_or_else(|| err("TYPE without a type"))?;
                    const TYPES: [&str; 8] = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "gaugehistogram",
                        "unknown",
                    ];
                    if !TYPES.contains(&ty) || families.insert(name.into(), ty.into()).is_some() {
                        return Err(err("unknown or repeated TYPE"));
                    }
                }
                Some("HELP" | "UNIT") => {}
                _ => return Err(err("unknown comment")),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|why| err(&why))?;
        if !belongs_to_declared_family(&sample.name, &families) {
            return Err(err("sample of no declared family"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

/// The value of the sample named `name` whose label set is exactly `labels`.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or("no value after the sample name")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or(""))?;
    if let Some(ts) = fields.next()
        && ts.parse::<f64>().is_err()
    {
        return Err("bad timestamp".into());
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.into(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and what follows the `}`.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = s.find('=').ok_or("label without `=`")?;
        let key = &s[..eq];
        if !is_label_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = s[eq + 1..].char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value not quoted".into());
        }
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break eq + 1 + i + 1,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    _ => return Err("bad escape in label value".into()),
                },
                Some((_, '\n')) | None => return Err("unterminated label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("repeated label {key:?}"));
        }
        s = &s[end..];
        if let Some(tail) = s.strip_prefix(',') {
            s = tail;
        } else if !s.starts_with('}') {
            return Err("labels not separated by `,`".into());
        }
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
            && !s.is_empty() =>
        {
            s.parse().map_err(|_| format!("bad value {s:?}"))
        }
        _ => Err(format!("bad value {s:?}")),
    }
}

fn belongs_to_declared_family(sample: &str, families: &HashMap<String, String>) -> bool {
    families.iter().any(|(family, ty)| {
        let Some(suffix) = sample.strip_prefix(family.as_str()) else {
            return false;
        };
        let allowed: &[&str] = match ty.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" | "gaugehistogram" => {
                &["_bucket", "_count", "_sum", "_created", "_gcount", "_gsum"]
            }
            "summary" => &["", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        allowed.contains(&suffix)
    })
}

fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
