//! The defaults PROTOCOL.md §5.1 promises, pinned: each row of its table
//! against `Config` built with no flags, and the row itself in the spec, so
//! that neither can change without the other.

use std::time::Duration;

use rttp_server::Config;

#[test]
fn every_default_of_the_limits_table_is_the_configs() {
    let c = Config::new("s1").unwrap();
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md")).unwrap();
    let mib = 1 << 20;
    // (the row's flags and default cell as the spec writes them, the value it promises, the config's value)
    let rows: [(&str, f64, f64); 25] = [
        ("`--max-line` | 4,096 bytes", 4096.0, c.limits.max_line as f64),
        ("`--max-body` | 65,536 bytes", 65536.0, c.limits.max_body as f64),
        ("`--max-bad-frames` | 10", 10.0, f64::from(c.max_bad_frames)),
        ("`--say-rate`, `--say-burst` | 20/s", 20.0, c.say_rate),
        ("`--say-rate`, `--say-burst` | 20/s, bursts of 40", 40.0, f64::from(c.say_burst)),
        ("`--frame-rate`, `--frame-burst` | 100/s", 100.0, c.frame_rate),
        ("`--frame-rate`, `--frame-burst` | 100/s, bursts of 200", 200.0, f64::from(c.frame_burst)),
        ("`--byte-rate`, `--byte-burst` | 262,144/s", 262_144.0, c.byte_rate),
        ("`--byte-rate`, `--byte-burst` | 262,144/s, bursts of 1,048,576", f64::from(mib), f64::from(c.byte_burst)),
        ("`--join-rate`, `--join-burst` | 10/s", 10.0, c.join_rate),
        ("`--join-rate`, `--join-burst` | 10/s, bursts of `--max-rooms`", c.max_rooms as f64, f64::from(c.join_burst)),
        (
            "`--outbound-limit`, `--slow-consumer-after`, `--outbound-max` | 1 MiB",
            f64::from(mib),
            c.outbound_limit as f64,
        ),
        (
            "`--outbound-limit`, `--slow-consumer-after`, `--outbound-max` | 1 MiB, 10 s",
            10.0,
            c.slow_consumer_after.as_secs_f64(),
        ),
        (
            "`--outbound-limit`, `--slow-consumer-after`, `--outbound-max` | 1 MiB, 10 s, 16 MiB",
            f64::from(16 * mib),
            c.outbound_max as f64,
        ),
        ("`--capacity` | 10,000", 10_000.0, f64::from(c.capacity)),
        ("`--max-connections` | capacity + 10% + 64", 10_000.0 + 1_000.0 + 64.0, f64::from(c.max_connections)),
        ("`--max-per-ip` | 256", 256.0, f64::from(c.max_per_ip)),
        ("`--max-watchers` | 64", 64.0, f64::from(c.max_watchers)),
        ("`--hello-timeout` | 10 s", 10.0, c.hello_timeout.as_secs_f64()),
        ("`--ping-after`, `--idle-timeout` | 15 s", 15.0, c.ping_after.as_secs_f64()),
        ("`--ping-after`, `--idle-timeout` | 15 s, 45 s", 45.0, c.idle_timeout.as_secs_f64()),
        ("`--history-budget` | 256 MiB", f64::from(256 * mib), c.history_budget as f64),
        ("`--max-rooms` | 100", 100.0, c.max_rooms as f64),
        ("`--history`, `--history-bytes` | 1,000 messages", 1000.0, c.history as f64),
        ("`--history`, `--history-bytes` | 1,000 messages, 4 MiB", f64::from(4 * mib), c.history_bytes as f64),
    ];
    for (row, promised, actual) in rows {
        assert!(spec.contains(&format!("| {row}")), "PROTOCOL.md §5.1 no longer says {row:?}");
        assert_eq!(actual, promised, "the default behind {row:?}");
    }
    assert_eq!(c.drain_window, Duration::from_secs(10), "README: --drain-window defaults to 10 s");
}

#[test]
fn a_max_line_too_short_for_a_hello_is_refused_not_clamped() {
    let mut args = rttp_server::Args { id: Some("s1".into()), max_line: Some(32), ..Default::default() };
    let e = Config::resolve(args.clone()).unwrap_err().to_string();
    assert!(e.contains("max-line") && e.contains("64"), "{e}");
    args.max_line = Some(64);
    assert_eq!(Config::resolve(args).unwrap().limits.max_line, 64, "64 is the smallest accepted");
}

#[test]
fn max_connections_follows_the_capacity_unless_given() {
    let args = rttp_server::Args { id: Some("s1".into()), capacity: Some(100), ..Default::default() };
    assert_eq!(Config::resolve(args.clone()).unwrap().max_connections, 100 + 10 + 64, "capacity + 10% + 64");
    let given = rttp_server::Args { max_connections: Some(7), ..args };
    assert_eq!(Config::resolve(given).unwrap().max_connections, 7, "an explicit cap wins");
}

#[test]
fn a_max_body_over_the_protocol_s_is_refused_and_a_lower_one_kept() {
    let args = rttp_server::Args { id: Some("s1".into()), max_body: Some(65_537), ..Default::default() };
    let e = Config::resolve(args.clone()).unwrap_err().to_string();
    assert!(e.contains("max-body") && e.contains("65536") && e.contains("only be lowered"), "{e}");
    let lower = rttp_server::Args { max_body: Some(1024), ..args };
    assert_eq!(Config::resolve(lower).unwrap().limits.max_body, 1024);
}

#[test]
fn rebalancing_is_on_by_default_and_its_flags_are_checked() {
    let p = Config::new("s1").unwrap().rebalance.expect("on by default");
    assert_eq!((p.margin, p.rate, p.min_stay), (0.10, 0.02, Duration::from_secs(30)), "OPERATIONS.md, Rebalancing");
    let args = rttp_server::Args { id: Some("s1".into()), ..Default::default() };
    let off = rttp_server::Args { rebalance: Some(false), ..args.clone() };
    assert!(Config::resolve(off).unwrap().rebalance.is_none());
    for bad in [0.0, -0.1, 1.5, f64::NAN] {
        let a = rttp_server::Args { rebalance_margin: Some(bad), ..args.clone() };
        let e = Config::resolve(a).unwrap_err().to_string();
        assert!(e.contains("rebalance-margin") && e.contains("fraction"), "{e}");
        let a = rttp_server::Args { rebalance_rate: Some(bad), ..args.clone() };
        assert!(Config::resolve(a).unwrap_err().to_string().contains("rebalance-rate"));
    }
    let a = rttp_server::Args { rebalance_min_stay: Some(0.0), ..args };
    assert!(Config::resolve(a).unwrap_err().to_string().contains("rebalance-min-stay"));
    // On the command line: on/off, as the help says.
    use clap::Parser;
    let parsed = rttp_server::Args::try_parse_from(["rttp-server", "--rebalance", "off"]).unwrap();
    assert_eq!(parsed.rebalance, Some(false));
    let parsed = rttp_server::Args::try_parse_from(["rttp-server", "--rebalance", "on"]).unwrap();
    assert_eq!(parsed.rebalance, Some(true));
}

#[test]
fn a_room_history_larger_than_a_session_s_queue_is_accepted() {
    // A rejoin's replay streams from the history, outside the queue's
    // bounds (tests/replays.rs): a room may keep more than --outbound-max.
    // Until it did, this was refused at start.
    let args = rttp_server::Args { id: Some("s1".into()), history_bytes: Some(40 << 20), ..Default::default() };
    let c = Config::resolve(args).unwrap();
    assert!(c.history_bytes > c.outbound_max, "{} over {}", c.history_bytes, c.outbound_max);
}

#[test]
fn threads_default_to_one_per_core_and_zero_is_refused() {
    let base = rttp_server::Args { id: Some("s1".into()), ..Default::default() };
    assert_eq!(Config::resolve(base.clone()).unwrap().threads, None, "tokio's default: one per core");
    let one = rttp_server::Args { threads: Some(1), ..base.clone() };
    assert_eq!(Config::resolve(one).unwrap().threads, Some(1));
    let zero = rttp_server::Args { threads: Some(0), ..base };
    assert!(Config::resolve(zero).unwrap_err().to_string().contains("threads"));
    use clap::Parser;
    let parsed = rttp_server::Args::try_parse_from(["rttp-server", "--threads", "2"]).unwrap();
    assert_eq!(parsed.threads, Some(2));
}

#[test]
fn the_presence_grace_defaults_to_10_s_takes_0_and_refuses_a_negative() {
    let base = rttp_server::Args { id: Some("s1".into()), ..Default::default() };
    assert_eq!(Config::resolve(base.clone()).unwrap().presence_grace, Duration::from_secs(10), "README: 10");
    let off = rttp_server::Args { presence_grace: Some(0.0), ..base.clone() };
    assert_eq!(Config::resolve(off).unwrap().presence_grace, Duration::ZERO, "0 announces at once");
    for bad in [-1.0, f64::NAN] {
        let a = rttp_server::Args { presence_grace: Some(bad), ..base.clone() };
        let e = Config::resolve(a).unwrap_err().to_string();
        assert!(e.contains("--presence-grace") && e.contains("0 or a positive"), "{e}");
    }
}
