//! The rendered configuration, the alert caps and the targets file.

use super::*;

#[test]
fn alert_holds_are_capped_and_other_rules_kept() {
    let text = "groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: up\n      \
                - alert: Slow\n        expr: up == 0\n        for: 2m\n      \
                - alert: Quick\n        expr: up == 0\n        for: 1s\n      \
                - alert: Now\n        expr: up == 0\n";
    let capped: serde_yaml::Value =
        serde_yaml::from_str(&cap_alert_for(text, Duration::from_secs(5)).unwrap()).unwrap();
    let rules = &capped["groups"][0]["rules"];
    assert_eq!(rules[0]["record"], "a:b");
    assert!(rules[0].get("for").is_none());
    assert_eq!(rules[1]["for"], "5000ms");
    assert_eq!(rules[2]["for"], "1s");
    assert!(rules[3].get("for").is_none());
    assert!(cap_alert_for("nothing: here", Duration::from_secs(1)).is_err());
}

#[test]
fn config_names_every_job_and_the_targets_file() {
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let files = Files {
        rules: "/tmp/x/rules/*.yaml".into(),
        targets: "/tmp/x/targets.json".into(),
        query_log: "/tmp/x/queries.jsonl".into(),
    };
    let config = render_config(
        Duration::from_secs(1),
        &files,
        Jobs {
            prometheus: addr(4),
            services: Targets {
                dispatcher: addr(1),
                load_tester: addr(2),
                autoscaler: addr(3),
            },
        },
    );
    let doc: serde_yaml::Value = serde_yaml::from_str(&config).unwrap();
    assert_eq!(doc["global"]["scrape_interval"], "1000ms");
    assert_eq!(doc["global"]["scrape_timeout"], "900ms");
    assert_eq!(doc["global"]["query_log_file"], "/tmp/x/queries.jsonl");
    assert_eq!(doc["rule_files"][0], "/tmp/x/rules/*.yaml");
    let jobs: Vec<&str> = doc["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        [
            "inference",
            "dispatcher",
            "load-tester",
            "autoscaler",
            "prometheus"
        ]
    );
    let sd = &doc["scrape_configs"][0]["file_sd_configs"][0]["files"][0];
    assert_eq!(sd, "/tmp/x/targets.json");
    assert_eq!(
        doc["scrape_configs"][3]["static_configs"][0]["targets"][0],
        "127.0.0.1:3"
    );
}

#[test]
fn targets_file_lists_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.json");
    let urls = [
        "http://127.0.0.1:4000".to_owned(),
        "http://127.0.0.1:4001/".to_owned(),
    ];
    write_targets(&file, &urls).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        written,
        serde_json::json!([{"targets": ["127.0.0.1:4000", "127.0.0.1:4001"], "labels": {}}])
    );
    write_targets(&file, &[]).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written[0]["targets"], serde_json::json!([]));
}
