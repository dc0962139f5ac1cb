//! The three list formats parsed from the files in `tests/data/screening/`, screening against
//! what they contain, and the parsers' behaviour on arbitrary and truncated input.

/// Named so that `cargo test -p computegate-kyc screening` selects these tests.
mod screening {
    use std::ops::ControlFlow;
    use std::path::PathBuf;

    use computegate_kyc::screening::parse::{
        ListReaders, ParseError, RecordError, parse_csl, parse_csl_csv, parse_csl_json,
        parse_list_to_vec, parse_opensanctions, parse_sdn,
    };
    use computegate_kyc::screening::{
        Decision, EntryKind, ListEntry, ListFormat, PartialDate, ScoringConfig, ScreeningIndex,
        ScreeningSubject,
    };
    use proptest::prelude::*;
    use uuid::Uuid;

    fn data(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/screening")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn csl_csv() -> Vec<ListEntry> {
        parse_list_to_vec(ListFormat::Csl, ListReaders::single(&data("csl.csv")[..])).unwrap()
    }

    fn csl_json() -> Vec<ListEntry> {
        parse_list_to_vec(ListFormat::Csl, ListReaders::single(&data("csl.json")[..])).unwrap()
    }

    fn sdn() -> Vec<ListEntry> {
        let (sdn, alt, add) = (data("sdn.csv"), data("alt.csv"), data("add.csv"));
        let readers = ListReaders {
            main: &sdn[..],
            aliases: Some(&alt[..]),
            addresses: Some(&add[..]),
        };
        parse_list_to_vec(ListFormat::Sdn, readers).unwrap()
    }

    fn opensanctions() -> Vec<ListEntry> {
        parse_list_to_vec(
            ListFormat::OpenSanctions,
            ListReaders::single(&data("opensanctions.jsonl")[..]),
        )
        .unwrap()
    }

    fn find<'a>(entries: &'a [ListEntry], name: &str) -> &'a ListEntry {
        entries
            .iter()
            .find(|e| e.names.iter().any(|n| n == name))
            .unwrap_or_else(|| panic!("no entry named {name}"))
    }

    fn dates(e: &ListEntry) -> Vec<String> {
        e.dates_of_birth.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn csl_csv_file() {
        let entries = csl_csv();
        assert_eq!(entries.len(), 12);
        let z = find(&entries, "Ivan Petrovich ZORVATH");
        assert_eq!(
            z.key,
            "csl:Specially Designated Nationals (SDN) - Treasury Department:a1f0c001"
        );
        assert_eq!(z.kind, EntryKind::Person);
        assert_eq!(
            z.names,
            ["Ivan Petrovich ZORVATH", "Ivan ZORVAT", "Iwan ZORWATH"]
        );
        assert_eq!(dates(z), ["1970-01-12"]);
        assert_eq!(z.countries, ["RU"]);
        assert_eq!(z.id_numbers, ["P7788123"]);
        assert_eq!(z.programs, ["RUSSIA-EO14024"]);
        // entity_number 90001 is used by two sources: two entries, two keys.
        let q = find(&entries, "José María QUINTANAR YBARRA");
        assert!(q.key.starts_with("csl:Denied Persons List"));
        assert_eq!(dates(q), ["1968", "1969", "1970"]);
        assert_eq!(q.countries, ["ES"]);
        let v = find(&entries, "NORTHERN ZEPHYR");
        assert_eq!(v.kind, EntryKind::Vessel);
        assert_eq!(v.countries, ["PA"]);
        assert_eq!(v.id_numbers, ["9187629"]);
        assert_eq!(find(&entries, "EP-ZQX").kind, EntryKind::Aircraft);
        let t = find(&entries, "Tarnex Industrial Holdings");
        assert_eq!(t.kind, EntryKind::Other);
        assert_eq!(t.countries, ["AE"]);
        let s = find(&entries, "Khalid Yusuf AL-SAMARI");
        assert_eq!(s.countries, ["IQ", "SY"]);
        assert_eq!(dates(s), ["1958-03-12", "1959"]);
        assert_eq!(s.id_numbers, ["1188-77-66"]);
        let k = find(&entries, "Vladimir KOSTELANOV");
        assert_eq!(dates(k), ["1963-07"]);
        assert!(k.names.iter().any(|n| n == "КОСТЕЛАНОВ Владимир"));
        assert_eq!(find(&entries, "BANK MELLI IRAN").programs, ["IRAN", "IFSR"]);
    }

    #[test]
    fn csl_json_file_matches_the_csv() {
        let (csv, json) = (csl_csv(), csl_json());
        assert_eq!(json.len(), csv.len());
        for c in &csv {
            let j = find(&json, &c.names[0]);
            assert_ne!(j.key, c.key, "different ids in the two files");
            assert_eq!(j.kind, c.kind, "{}", c.names[0]);
            assert_eq!(j.names, c.names, "{}", c.names[0]);
            assert_eq!(j.dates_of_birth, c.dates_of_birth, "{}", c.names[0]);
            assert_eq!(j.countries, c.countries, "{}", c.names[0]);
            assert_eq!(j.id_numbers, c.id_numbers, "{}", c.names[0]);
        }
        // The sniffing entry point and the explicit ones agree.
        let mut n = 0;
        parse_csl_json(&data("csl.json")[..], |_| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(n, 12);
        let stats = parse_csl_csv(&data("csl.csv")[..], |_| ControlFlow::Continue(())).unwrap();
        assert_eq!((stats.records, stats.entries), (12, 12));
    }

    #[test]
    fn sdn_files() {
        let entries = sdn();
        assert_eq!(entries.len(), 12);
        let z = find(&entries, "Ivan Petrovich ZORVATH");
        assert_eq!(z.key, "sdn:36001");
        assert_eq!(z.source, "OFAC SDN");
        assert_eq!(
            z.names,
            ["Ivan Petrovich ZORVATH", "Ivan ZORVAT", "Iwan ZORWATH"]
        );
        assert_eq!(z.weak_aliases, ["THE GLASSMAKER"]);
        assert_eq!(dates(z), ["1970-01-12"]);
        assert_eq!(z.countries, ["RU"]);
        assert_eq!(z.id_numbers, ["P7788123"]);
        let k = find(&entries, "KORVALIS SHIPPING LLC");
        assert_eq!(k.kind, EntryKind::Organization);
        assert_eq!(
            k.names,
            ["KORVALIS SHIPPING LLC", "KORVALIS MARITIME LIMITED"]
        );
        assert_eq!(k.countries, ["CY"]);
        assert_eq!(k.id_numbers, ["HE998877"]);
        assert_eq!(k.programs, ["IRAN", "IFSR"]);
        let v = find(&entries, "NORTHERN ZEPHYR");
        assert_eq!(v.kind, EntryKind::Vessel);
        assert_eq!(v.countries, ["PA"]);
        assert_eq!(v.id_numbers, ["9187629", "355000111"]);
        let irgc = find(&entries, "ISLAMIC REVOLUTIONARY GUARD CORPS");
        assert_eq!(irgc.programs, ["SDGT", "IRGC", "IFSR"]);
        assert_eq!(irgc.weak_aliases, ["SEPAH"]);
        let s = find(&entries, "Khalid Yusuf AL-SAMARI");
        assert_eq!(s.countries, ["IQ", "SY"]);
        assert_eq!(dates(s), ["1958-03-12", "1959"]);
        assert_eq!(s.weak_aliases, ["ABU YUSUF"]);
        assert_eq!(
            dates(find(&entries, "Jose Maria QUINTANAR YBARRA")),
            ["1968", "1969", "1970"]
        );
        assert_eq!(dates(find(&entries, "Vladimir KOSTELANOV")), ["1963-07"]);
        assert_eq!(find(&entries, "EP-ZQX").kind, EntryKind::Aircraft);
        assert_eq!(
            find(&entries, "ADRIAN DARYA 1").names,
            ["ADRIAN DARYA 1", "GRACE 1"]
        );
        assert_eq!(find(&entries, "Edwina MARVELL-TORRANCE").countries, ["GB"]);
        assert_eq!(
            find(&entries, "ROSOBORONEXPORT").id_numbers,
            ["7718852163", "1117746521452"]
        );

        // The alias of an unknown ent_num is counted as skipped.
        let (sdn, alt) = (data("sdn.csv"), data("alt.csv"));
        let stats = parse_sdn(&sdn[..], Some(&alt[..]), None::<&[u8]>, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!((stats.entries, stats.skipped), (12, 1));
    }

    #[test]
    fn opensanctions_file() {
        let entries = opensanctions();
        assert_eq!(entries.len(), 12);
        let stats = parse_opensanctions(&data("opensanctions.jsonl")[..], |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!((stats.records, stats.entries, stats.skipped), (14, 12, 2));
        let z = find(&entries, "Ivan Petrovich Zorvath");
        assert_eq!(z.key, "os:NK-zorvath01");
        assert_eq!(z.source, "us_ofac_sdn");
        assert_eq!(z.kind, EntryKind::Person);
        assert_eq!(z.weak_aliases, ["The Glassmaker"]);
        assert_eq!(z.countries, ["RU"]);
        assert_eq!(z.id_numbers, ["P7788123"]);
        assert_eq!(z.dates_of_birth, [PartialDate::full(1970, 1, 12).unwrap()]);
        assert_eq!(z.programs, ["RUSSIA-EO14024", "sanction"]);
        assert_eq!(
            find(&entries, "Korvalis Shipping LLC").kind,
            EntryKind::Organization
        );
        assert_eq!(find(&entries, "NORTHERN ZEPHYR").kind, EntryKind::Vessel);
        assert_eq!(find(&entries, "EP-ZQX").kind, EntryKind::Aircraft);
        assert_eq!(
            find(&entries, "Tarnex Industrial Holdings").kind,
            EntryKind::Organization
        );
        assert_eq!(
            find(&entries, "Khalid Yusuf al-Samari").countries,
            ["IQ", "SY"]
        );
        assert_eq!(find(&entries, "Vladimir Kostelanov").countries, ["UA"]);
    }

    #[test]
    fn every_format_screens_the_same_people() {
        let subjects = [
            (
                ScreeningSubject::person("Ivan Petrovich Zorvath"),
                Decision::Hit,
            ),
            (ScreeningSubject::person("ZORVATH Ivan"), Decision::Review),
            (ScreeningSubject::person("Ιvan Ζorvath"), Decision::Review), // Greek Ι and Ζ
            (
                ScreeningSubject::organization("Korvalis Shipping Limited"),
                Decision::Hit,
            ),
            (
                ScreeningSubject::organization("Bank Meli Iran"),
                Decision::Hit,
            ),
            (ScreeningSubject::person("Maria Zorvath"), Decision::Clear),
            (ScreeningSubject::person("Northern Zephyr"), Decision::Clear),
            (ScreeningSubject::person("Jane Doe"), Decision::Clear),
        ];
        for (label, entries) in [
            ("csl.csv", csl_csv()),
            ("csl.json", csl_json()),
            ("sdn", sdn()),
            ("opensanctions", opensanctions()),
        ] {
            let index = ScreeningIndex::build(Uuid::nil(), entries, ScoringConfig::default());
            for (subject, at_least) in &subjects {
                let r = index.screen(subject);
                if *at_least == Decision::Clear {
                    assert_eq!(r.decision, Decision::Clear, "{label}: {subject:?} {r:?}");
                } else {
                    assert!(r.decision >= *at_least, "{label}: {subject:?} {r:?}");
                }
            }
            // A date of birth two decades off turns an exact name into a clear.
            let mut off = ScreeningSubject::person("Ivan Petrovich Zorvath");
            off.date_of_birth = PartialDate::full(1991, 5, 5);
            assert!(index.screen(&off).decision < Decision::Hit, "{label}");
        }
    }

    #[test]
    fn malformed_files_name_line_and_record() {
        let csv = String::from_utf8(data("csl.csv")).unwrap();
        let broken = csv.replacen(",KORVALIS SHIPPING LLC,", ",,", 1);
        let err = parse_csl(broken.as_bytes(), |_| ControlFlow::Continue(())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "csl: line 3, record 2: field \"name\" is empty"
        );

        let sdn = String::from_utf8_lossy(&data("sdn.csv")).replacen("36003,", "36003x,", 1);
        let err = parse_sdn(sdn.as_bytes(), None::<&[u8]>, None::<&[u8]>, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(text_has(&err, "sdn.csv: line 3, record 3"), "{err}");

        let mut jsonl = data("opensanctions.jsonl");
        jsonl.extend_from_slice(
            b"{\"id\":\"x\",\"schema\":\"Person\",\"properties\":{\"name\":\"\"}}\n",
        );
        let err = parse_opensanctions(&jsonl[..], |_| ControlFlow::Continue(())).unwrap_err();
        assert!(
            matches!(
                err,
                ParseError::Record {
                    error: RecordError::EmptyField("name"),
                    ..
                }
            ),
            "{err}"
        );
        assert!(text_has(&err, "line 16, record 15"), "{err}");
    }

    fn text_has(err: &ParseError, needle: &str) -> bool {
        err.to_string().contains(needle)
    }

    #[test]
    fn truncated_files_never_panic() {
        for name in ["csl.csv", "csl.json", "sdn.csv", "opensanctions.jsonl"] {
            let bytes = data(name);
            for cut in (0..bytes.len()).step_by(5) {
                let part = &bytes[..cut];
                let _ = parse_csl(part, |_| ControlFlow::Continue(()));
                let _ = parse_opensanctions(part, |_| ControlFlow::Continue(()));
                let _ = parse_sdn(part, Some(part), Some(part), |_| ControlFlow::Continue(()));
            }
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_csl(&bytes[..], |_| ControlFlow::Continue(()));
            let _ = parse_csl_json(&bytes[..], |_| ControlFlow::Continue(()));
            let _ = parse_opensanctions(&bytes[..], |_| ControlFlow::Continue(()));
            let _ = parse_sdn(&bytes[..], Some(&bytes[..]), Some(&bytes[..]), |_| ControlFlow::Continue(()));
        }

        #[test]
        fn csv_shaped_input_never_panics(rows in proptest::collection::vec(
            proptest::collection::vec("[-0-9A-Za-z ,;.'\"\u{0400}-\u{04ff}]{0,24}", 12), 0..8)) {
            let quoted: Vec<String> = rows
                .iter()
                .map(|r| r.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect::<Vec<_>>().join(","))
                .collect();
            let body = quoted.join("\n");
            let _ = parse_sdn(body.as_bytes(), Some(body.as_bytes()), None::<&[u8]>, |_| ControlFlow::Continue(()));
            let csl = format!("id,source,name,type,alt_names,dates_of_birth,nationalities,ids,addresses,programs,citizenships,vessel_flag\n{body}");
            let _ = parse_csl(csl.as_bytes(), |_| ControlFlow::Continue(()));
        }

        #[test]
        fn json_shaped_input_never_panics(name in ".{0,40}", alias in proptest::collection::vec(".{0,20}", 0..4),
                                          dob in ".{0,12}", schema in "(Person|Company|Vessel|Airplane|Thing)") {
            let line = serde_json::json!({"id": "x", "schema": schema, "properties": {
                "name": [name.clone()], "alias": alias, "birthDate": [dob.clone()], "nationality": [dob.clone()]}});
            let _ = parse_opensanctions(format!("{line}\n").as_bytes(), |_| ControlFlow::Continue(()));
            let doc = serde_json::json!({"results": [{"id": "1", "source": "S", "name": name,
                "alt_names": alias, "dates_of_birth": dob, "ids": [{"number": dob}], "addresses": [{"country": dob}]}]});
            let _ = parse_csl(doc.to_string().as_bytes(), |_| ControlFlow::Continue(()));
        }
    }
}
