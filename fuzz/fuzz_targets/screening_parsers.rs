//! Fuzzes the denied-party list parsers (CSL CSV/JSON, OFAC SDN with alt.csv/add.csv,
//! OpenSanctions JSON lines) and name normalization: arbitrary bytes must give entries or a
//! located error, never a panic, a hang or unbounded memory.
//!
//! The first byte picks the target; for SDN the rest is split at 0xFF bytes into `sdn.csv`,
//! `alt.csv` and `add.csv`.

#![no_main]

use std::ops::ControlFlow;

use computegate_kyc::screening::normalize::{normalize_id, normalize_name};
use computegate_kyc::screening::parse::{
    parse_csl, parse_csl_csv, parse_csl_json, parse_opensanctions, parse_sdn,
};
use computegate_kyc::screening::{EntryKind, PartialDate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let sink = |entry: computegate_kyc::screening::ListEntry| {
        // Every entry the parsers produce must normalize without panicking too.
        for name in entry.names.iter().chain(&entry.weak_aliases) {
            let _ = normalize_name(name, entry.kind);
        }
        ControlFlow::Continue(())
    };
    match selector % 6 {
        0 => {
            let _ = parse_csl(rest, sink);
        }
        1 => {
            let _ = parse_csl_csv(rest, sink);
        }
        2 => {
            let _ = parse_csl_json(rest, sink);
        }
        3 => {
            let mut parts = rest.splitn(3, |&b| b == 0xFF);
            let sdn = parts.next().unwrap_or_default();
            let alt = parts.next();
            let add = parts.next();
            let _ = parse_sdn(sdn, alt, add, sink);
        }
        4 => {
            let _ = parse_opensanctions(rest, sink);
        }
        _ => {
            let text = String::from_utf8_lossy(rest);
            for kind in [EntryKind::Person, EntryKind::Organization, EntryKind::Other] {
                let _ = normalize_name(&text, kind);
            }
            let _ = normalize_id(&text);
            let _ = PartialDate::parse_many(&text);
        }
    }
});
