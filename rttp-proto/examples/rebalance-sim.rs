//! Prints the rebalancing simulation's table (see `rttp_proto::sim`).

use rttp_proto::rebalance::Policy;
use rttp_proto::sim::{run, Setup};

fn main() {
    let d = Policy::default();
    let rows: Vec<(String, Option<Policy>)> = vec![
        ("none".into(), None),
        (format!("margin {:.2}, rate {:.2} (default)", d.margin, d.rate), Some(d)),
        ("margin 0.05, rate 0.02".into(), Some(Policy { margin: 0.05, ..d })),
        ("margin 0.20, rate 0.02".into(), Some(Policy { margin: 0.20, ..d })),
        ("margin 0.10, rate 0.01".into(), Some(Policy { rate: 0.01, ..d })),
        ("margin 0.10, rate 0.05".into(), Some(Policy { rate: 0.05, ..d })),
    ];
    println!(
        "| policy | max/mean, mean | worst max/mean from 60 s after a restart | restarted server's load / mean at +60 s | \
         seconds until it holds 90 % of its share | moves |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, policy) in rows {
        let o = run(&Setup::farm_of_ten(policy));
        let settle: Vec<String> =
            o.settle_secs.iter().map(|s| s.map_or("never".to_string(), |s| s.to_string())).collect();
        let fill: Vec<String> = o.fill_at_60s.iter().map(|f| format!("{f:.2}")).collect();
        println!(
            "| {name} | {:.2} | {:.2} | {} | {} | {} |",
            o.mean_imbalance,
            o.worst_after_restart,
            fill.join(", "),
            settle.join(", "),
            o.moves
        );
    }
}
