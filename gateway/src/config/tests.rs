use super::*;

const MINIMAL: &str = r#"
[upstreams.sim]
addresses = ["127.0.0.1:8081"]

[[routes]]
name = "ping"
path_prefix = "/v1/ping"
upstream = "sim"
class = "public"
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn invalid_key(err: ConfigError) -> String {
    match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.server.public_addr.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_addr.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_header_bytes, ByteSize::kib(32));
    assert_eq!(c.upstreams["sim"].connect_timeout, Duration::from_secs(2));
    assert_eq!(c.routes[0].max_body, ByteSize::gib(1));
    assert_eq!(c.routes[0].class, RouteClass::Public);
    assert_eq!(c.auth.argon2_memory_kib, 19456);
    assert!(c.database_url().starts_with("sqlite://"));
}

#[test]
fn human_units_parse() {
    let text = format!(
        "{MINIMAL}\n[server]\nheader_read_timeout = \"250ms\"\nmax_header_bytes = \"64KiB\"\nshutdown_grace = \"2m\"\n"
    );
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.server.header_read_timeout, Duration::from_millis(250));
    assert_eq!(c.server.max_header_bytes, ByteSize::kib(64));
    assert_eq!(c.server.shutdown_grace, Duration::from_secs(120));
}

#[test]
fn bad_duration_names_the_key() {
    let text = format!("{MINIMAL}\n[server]\nheader_read_timeout = \"soon\"\n");
    let err = Config::from_toml(&text, no_env()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("server.header_read_timeout"), "{msg}");
    assert!(msg.contains("soon"), "{msg}");
}

#[test]
fn idempotency_key_ttl_has_a_default_and_is_validated() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.server.idempotency_key_ttl, Duration::from_secs(24 * 3600));
    let text = format!("{MINIMAL}\n[server]\nidempotency_key_ttl = \"2h\"\n");
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(c.server.idempotency_key_ttl, Duration::from_secs(7200));
    c.validate().unwrap();
    for value in ["30s", "31d"] {
        let text = format!("{MINIMAL}\n[server]\nidempotency_key_ttl = \"{value}\"\n");
        let err = Config::from_toml(&text, no_env())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("server.idempotency_key_ttl"),
            "{value}: {err}"
        );
    }
}

#[test]
fn body_pace_has_defaults_and_is_validated() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(c.server.body_min_rate, ByteSize::kib(4));
    for (line, key) in [
        ("body_read_timeout = \"0s\"", "server.body_read_timeout"),
        ("body_read_timeout = \"2h\"", "server.body_read_timeout"),
        ("body_min_rate = \"0B\"", "server.body_min_rate"),
    ] {
        let text = format!("{MINIMAL}\n[server]\n{line}\n");
        let err = Config::from_toml(&text, no_env())
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains(key), "{line}: {err}");
    }
}

#[test]
fn admission_batch_window_defaults_to_none_and_is_bounded() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.database.admission_batch_window, Duration::ZERO);
    let text = format!("{MINIMAL}\n[database]\nadmission_batch_window = \"500us\"\n");
    let c = Config::from_toml(&text, no_env()).unwrap();
    c.validate().unwrap();
    assert_eq!(
        c.database.admission_batch_window,
        Duration::from_micros(500)
    );
    let text = format!("{MINIMAL}\n[database]\nadmission_batch_window = \"11ms\"\n");
    let c = Config::from_toml(&text, no_env()).unwrap();
    assert_eq!(
        invalid_key(c.validate().unwrap_err()),
        "database.admission_batch_window"
    );
}

#[test]
fn unknown_key_is_named() {
    let text = format!("{MINIMAL}\n[server]\npublic_adress = \"127.0.0.1:1\"\n");
    let err = Config::from_toml(&text, no_env()).unwrap_err();
    assert!(err.to_string().contains("public_adress"), "{err}");
}

#[test]
fn bad_socket_addr_names_the_key() {
    let text = format!("{MINIMAL}\n[server]\npublic_addr = \"localhost\"\n");
    let err = Config::from_toml(&text, no_env()).unwrap_err();
    assert_eq!(invalid_key(err), "server.public_addr");
}

#[test]
fn route_to_missing_upstream_is_named() {
    let text = MINIMAL.replace("upstream = \"sim\"", "upstream = \"nope\"");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "routes[0].upstream");
}

#[test]
fn upstream_address_forms() {
    assert!(parse_upstream_address("127.0.0.1:8081").is_ok());
    assert!(parse_upstream_address("http://sim.internal:80/").is_ok());
    assert!(parse_upstream_address("https://x:443").is_err());
    assert!(parse_upstream_address("127.0.0.1").is_err());
    assert!(parse_upstream_address("not an address").is_err());
    let text = MINIMAL.replace("127.0.0.1:8081", "nohost");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "upstreams.sim.addresses[0]");
}

#[test]
fn job_submit_needs_known_profile() {
    let text = MINIMAL.replace("class = \"public\"", "class = \"job_submit\"");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "routes[0].profile");
    let text = MINIMAL.replace(
        "class = \"public\"",
        "class = \"job_submit\"\nprofile = \"pbs\"",
    );
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "routes[0].profile");
}

#[test]
fn duplicate_route_names_rejected() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nname = \"ping\"\npath_prefix = \"/x\"\nupstream = \"sim\"\n"
    );
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "routes[1].name");
}

#[test]
fn env_overrides_nested_keys_and_arrays() {
    let c = Config::from_toml(
        MINIMAL,
        env(&[
            ("COMPUTEGATE_SERVER__PUBLIC_ADDR", "0.0.0.0:18080"),
            ("COMPUTEGATE_SERVER__TRUST_FORWARDED_HEADERS", "true"),
            ("COMPUTEGATE_ROUTES__0__MAX_BODY", "2MiB"),
            ("COMPUTEGATE_REDIS__URL", "redis://127.0.0.1:6379"),
            ("COMPUTEGATE_MASTER_KEY", "not-a-config-key"),
            ("OTHER_VAR", "ignored"),
        ]),
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.server.public_addr.to_string(), "0.0.0.0:18080");
    assert!(c.server.trust_forwarded_headers);
    assert_eq!(c.routes[0].max_body, ByteSize::mib(2));
    assert_eq!(c.redis.url.as_deref(), Some("redis://127.0.0.1:6379"));
}

#[test]
fn env_override_errors_name_the_variable() {
    let err = Config::from_toml(MINIMAL, env(&[("COMPUTEGATE_ROUTES__7__NAME", "x")])).unwrap_err();
    assert!(
        err.to_string().contains("COMPUTEGATE_ROUTES__7__NAME"),
        "{err}"
    );
    let err = Config::from_toml(MINIMAL, env(&[("COMPUTEGATE_SERVER__PUBLIC_ADDR", "nope")]))
        .unwrap_err();
    assert_eq!(invalid_key(err), "server.public_addr");
}

#[test]
fn syntax_error_is_reported() {
    let err = Config::from_toml("[server\n", no_env()).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax(_)));
}

#[test]
fn rate_limit_replicas_defaults_to_two_and_must_be_positive() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.redis.rate_limit_replicas, 2);
    let text = format!("{MINIMAL}\n[redis]\nrate_limit_replicas = 0\n");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "redis.rate_limit_replicas");
}

#[test]
fn database_url_scheme_checked() {
    let text = format!("{MINIMAL}\n[database]\nurl = \"mysql://x\"\n");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert_eq!(invalid_key(err), "database.url");
}

#[test]
fn routes_take_a_rate_limit_fallback() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.routes[0].rate_limit_fallback, RateLimitFallback::Local);
    let closed = format!("{MINIMAL}rate_limit_fallback = \"closed\"\n");
    let c = Config::from_toml(&closed, no_env()).unwrap();
    assert_eq!(c.routes[0].rate_limit_fallback, RateLimitFallback::Closed);
    let bad = format!("{MINIMAL}rate_limit_fallback = \"maybe\"\n");
    let err = Config::from_toml(&bad, no_env()).unwrap_err();
    assert!(err.to_string().contains("rate_limit_fallback"), "{err}");
}

#[test]
fn owner_paths_are_checked() {
    let jobs = "\n[[routes]]\nname = \"jobs\"\npath_prefix = \"/v1/jobs\"\nmethods = [\"POST\"]\n\
                upstream = \"sim\"\nclass = \"job_submit\"\nprofile = \"generic\"\n";
    let object = |extra: &str| {
        format!(
            "{MINIMAL}\n[[routes]]\nname = \"objects\"\npath_prefix = \"/v1/\"\nupstream = \"sim\"\n{extra}"
        )
    };
    let check = |text: String| Config::from_toml(&text, no_env()).unwrap().validate();
    check(object("owner_path = \"/v1/jobs/{id}\"\n") + jobs).expect("valid owner rule");
    // No job_submit route on the upstream: no job could ever have an owner.
    let err = check(object("owner_path = \"/v1/jobs/{id}\"\n")).unwrap_err();
    assert_eq!(invalid_key(err), "routes[1].owner_path");
    for bad in ["/v1/jobs", "v1/jobs/{id}", "/v1/{id}/{id}"] {
        let err = check(object(&format!("owner_path = \"{bad}\"\n")) + jobs).unwrap_err();
        assert_eq!(invalid_key(err), "routes[1].owner_path", "{bad}");
    }
    let err =
        check(object("owner_path = \"/v1/jobs/{id}\"\nclass = \"public\"\n") + jobs).unwrap_err();
    assert_eq!(invalid_key(err), "routes[1].owner_path");
    let err = check(object("job_id_pointer = \"/id\"\n") + jobs).unwrap_err();
    assert_eq!(invalid_key(err), "routes[1].job_id_pointer");
    let err = check(object("") + jobs + "job_id_pointer = \"id\"\n").unwrap_err();
    assert_eq!(invalid_key(err), "routes[2].job_id_pointer");
}

#[test]
fn failed_auth_delay_has_a_default_and_a_ceiling() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.auth.failed_auth_delay, Duration::from_secs(1));
    let text = format!("{MINIMAL}\n[auth]\nfailed_auth_delay = \"0s\"\n");
    assert_eq!(
        Config::from_toml(&text, no_env())
            .unwrap()
            .auth
            .failed_auth_delay,
        Duration::ZERO
    );
    let text = format!("{MINIMAL}\n[auth]\nfailed_auth_delay = \"11s\"\n");
    let err = Config::from_toml(&text, no_env())
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("auth.failed_auth_delay"), "{err}");
}

#[test]
fn the_authz_section_is_optional_validated_and_overridable() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert!(c.authz.is_none(), "off unless configured");

    let with = |section: &str| {
        let text = format!("{MINIMAL}\n[authz]\n{section}\n");
        Config::from_toml(&text, no_env()).and_then(|c| c.validate().map(|()| c))
    };
    let c = with(
        "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.5\", \"10.1.0.0/16\", \"::1\"]",
    )
    .expect("valid");
    let authz = c.authz.expect("configured");
    assert_eq!(authz.envoy_path_prefix, "/envoy", "documented default");
    let nets = authz.trusted_networks().expect("networks");
    assert!(nets[0].contains(&"10.0.0.5".parse::<std::net::IpAddr>().unwrap()));
    assert!(nets[1].contains(&"10.1.200.3".parse::<std::net::IpAddr>().unwrap()));
    assert!(!nets[0].contains(&"10.0.0.6".parse::<std::net::IpAddr>().unwrap()));

    for (section, key) in [
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = []",
            "authz.trusted_proxies",
        ),
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.300\"]",
            "authz.trusted_proxies[0]",
        ),
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.1\", \"proxy.local\"]",
            "authz.trusted_proxies[1]",
        ),
        (
            "addr = \"127.0.0.1:8080\"\ntrusted_proxies = [\"10.0.0.1\"]",
            "authz.addr",
        ),
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.1\"]\nenvoy_path_prefix = \"/nginx\"",
            "authz.envoy_path_prefix",
        ),
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.1\"]\nenvoy_path_prefix = \"/\"",
            "authz.envoy_path_prefix",
        ),
        (
            "addr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.1\"]\nenvoy_path_prefix = \"envoy/\"",
            "authz.envoy_path_prefix",
        ),
    ] {
        let err = with(section).expect_err(section);
        assert_eq!(invalid_key(err), key, "{section}");
    }
    let missing = with("addr = \"127.0.0.1:8081\"").expect_err("trusted_proxies is required");
    assert!(
        invalid_key(missing).starts_with("authz"),
        "names the section"
    );

    let overridden = Config::from_toml(
        &format!(
            "{MINIMAL}\n[authz]\naddr = \"127.0.0.1:8081\"\ntrusted_proxies = [\"10.0.0.1\"]\n"
        ),
        env(&[("COMPUTEGATE_AUTHZ__ADDR", "0.0.0.0:9999")]),
    )
    .unwrap();
    assert_eq!(overridden.authz.unwrap().addr.to_string(), "0.0.0.0:9999");
}

#[test]
fn runtime_defaults_to_thread_per_core_and_parses_work_stealing() {
    let c = Config::from_toml(MINIMAL, no_env()).unwrap();
    assert_eq!(c.server.runtime, ServerRuntime::ThreadPerCore);
    assert_eq!(ServerRuntime::default(), ServerRuntime::ThreadPerCore);
    let text = format!("{MINIMAL}\n[server]\nruntime = \"work_stealing\"\nworker_threads = 3\n");
    let c = Config::from_toml(&text, no_env()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.server.runtime, ServerRuntime::WorkStealing);
    assert_eq!(c.server.listener_threads(), 1);
    let text = format!("{MINIMAL}\n[server]\nruntime = \"thread_per_core\"\nworker_threads = 3\n");
    let c = Config::from_toml(&text, no_env()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.server.runtime, ServerRuntime::ThreadPerCore);
    assert_eq!(c.server.listener_threads(), 3);
    // 0 threads: one per CPU the process may run on.
    let c = Config::from_toml(
        MINIMAL,
        env(&[("COMPUTEGATE_SERVER__RUNTIME", "thread_per_core")]),
    )
    .unwrap();
    assert_eq!(
        c.server.listener_threads(),
        std::thread::available_parallelism().unwrap().get()
    );
}

#[test]
fn unknown_runtime_names_the_key_and_the_choices() {
    let text = format!("{MINIMAL}\n[server]\nruntime = \"per_core\"\n");
    let err = Config::from_toml(&text, no_env()).unwrap_err();
    let message = err.to_string();
    assert_eq!(invalid_key(err), "server.runtime");
    assert!(
        message.contains("work_stealing") && message.contains("thread_per_core"),
        "{message}"
    );
}
