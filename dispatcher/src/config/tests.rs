//! Flags, defaults and the settings that cannot work.

use super::*;

fn parse(args: &[&str]) -> Config {
    Config::try_parse_from(std::iter::once("dispatcher").chain(args.iter().copied()))
        .expect("arguments parse")
}

#[test]
fn defaults_follow_the_contract() {
    let s = parse(&[]).validate().expect("defaults are valid");
    assert_eq!(s.drain_rate, 2.0);
    assert_eq!(s.max_in_flight, 4);
    assert_eq!(s.queue_capacity, 10_000);
    assert_eq!(s.queue_max_bytes, 268_435_456);
    assert_eq!(s.request_timeout, Duration::from_secs(30));
    assert_eq!(s.max_attempts, 3);
    assert_eq!(s.retry_backoff, Duration::from_millis(100));
    assert_eq!(s.eject_duration, Duration::from_secs(5));
    assert_eq!(s.report_batch_size, 200);
    assert_eq!(s.report_interval, Duration::from_millis(250));
    assert_eq!(s.outbox_capacity, 100_000);
    assert_eq!(s.max_body_bytes, 16_777_216);
    assert_eq!(
        s.report_url.map(String::from).as_deref(),
        Some("http://127.0.0.1:3003/storeLatency")
    );
    let ConfiguredEndpoints::Static(urls) = s.endpoints else {
        panic!("static endpoints expected");
    };
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0].as_str(), "http://127.0.0.1:8000/");
}

#[test]
fn repeatable_urls_dns_and_disabled_reporting() {
    let s = parse(&[
        "--inference-url",
        "http://a:1",
        "--inference-url",
        "http://b:2",
        "--report-url",
        "",
        "--drain-rate",
        "0.5",
    ])
    .validate()
    .expect("valid");
    assert_eq!(
        s.endpoints,
        ConfiguredEndpoints::Static(vec![
            Url::parse("http://a:1").expect("url"),
            Url::parse("http://b:2").expect("url"),
        ])
    );
    assert!(s.report_url.is_none());
    assert_eq!(s.drain_rate, 0.5);

    let s = parse(&[
        "--inference-dns",
        "inference-headless:8000",
        "--dns-refresh",
        "2s",
    ])
    .validate()
    .expect("valid");
    assert_eq!(
        s.endpoints,
        ConfiguredEndpoints::Dns {
            host_port: "inference-headless:8000".into(),
            refresh: Duration::from_secs(2)
        }
    );
}

#[test]
fn rejects_settings_that_cannot_work() {
    for args in [
        &["--drain-rate", "0"][..],
        &["--drain-rate", "NaN"],
        &["--max-in-flight", "0"],
        &["--max-attempts", "0"],
        &["--inference-url", "https://secure:443"],
        &["--inference-url", "not a url"],
        &["--report-url", "ftp://x/"],
        &["--inference-dns", "no-port"],
        &["--request-timeout", "0s"],
    ] {
        assert!(
            parse(args).validate().is_err(),
            "{args:?} should be rejected"
        );
    }
}

#[test]
fn upstream_protocol_settings() {
    let s = parse(&[]).validate().expect("valid");
    assert_eq!(s.upstream, UpstreamProtocol::Harness);
    let s = parse(&[
        "--upstream-protocol",
        "v2",
        "--model-name",
        "efficientnet",
        "--v2-bytes",
        "base64",
        "--v2-classification-output",
        "logits",
    ])
    .validate()
    .expect("valid");
    assert_eq!(
        s.upstream,
        UpstreamProtocol::V2(V2Upstream {
            model: "efficientnet".into(),
            bytes: V2Bytes::Base64,
            input: "image".into(),
            classification_output: Some("logits".into()),
        })
    );
    for args in [
        &["--upstream-protocol", "v2"][..],
        &["--upstream-protocol", "v2", "--model-name", "a/b"],
        &[
            "--upstream-protocol",
            "v2",
            "--model-name",
            "m",
            "--v2-input",
            "",
        ],
        &["--upstream-protocol", "grpc"],
    ] {
        let parsed =
            Config::try_parse_from(std::iter::once("dispatcher").chain(args.iter().copied()));
        assert!(
            parsed.map_or(true, |c| c.validate().is_err()),
            "{args:?} should be rejected"
        );
    }
}
