use super::*;

fn parse(data: &str) -> Result<Vec<ListEntry>, ParseError> {
    let mut out = Vec::new();
    parse_csl(data.as_bytes(), |e| {
        out.push(e);
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

#[test]
fn csv_minimal_and_errors() {
    let ok = parse("_id,source,name,type\n1,SDN,\"DOE, John\",Individual\n").unwrap();
    assert_eq!(ok[0].key, "csl:SDN:1");
    assert_eq!(ok[0].kind, EntryKind::Person);
    let err = parse("id,name\n1,x\n").unwrap_err();
    assert!(err.to_string().contains("no \"source\" column"), "{err}");
    let err = parse("id,source,name\n1,SDN,x\n2,SDN,\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "csl: line 3, record 2: field \"name\" is empty"
    );
    let err = parse("id,source,name\n1,SDN,x\n1,SDN,y\n").unwrap_err();
    assert!(matches!(
        err,
        ParseError::Record {
            error: RecordError::DuplicateKey(_),
            ..
        }
    ));
}

#[test]
fn json_errors_are_located() {
    let err = parse(r#"{"results":[{"id":"1","source":"S","name":"A"},{"id":"2"}]}"#).unwrap_err();
    assert_eq!(err.to_string(), "csl: record 2: field \"source\" is empty");
    let err = parse("{\n\"results\": [ {\"id\": 1,,} ]}").unwrap_err();
    assert!(matches!(err, ParseError::Syntax { line: 2, .. }), "{err:?}");
    let err = parse(r#"{"total":0}"#).unwrap_err();
    assert!(err.to_string().contains("results"), "{err}");
    let err = parse(r#"{"results":[{"id":"1","source":"S","name":{"x":1}}]}"#).unwrap_err();
    assert!(err.to_string().contains("expected a string"), "{err}");
}

#[test]
fn sink_can_stop() {
    let mut seen = 0;
    let stats = parse_csl(
        &br#"[{"id":"1","source":"S","name":"A"},{"id":"2","source":"S","name":"B"}]"#[..],
        |_| {
            seen += 1;
            ControlFlow::Break(())
        },
    )
    .unwrap();
    assert_eq!(seen, 1);
    assert!(stats.stopped);
}
