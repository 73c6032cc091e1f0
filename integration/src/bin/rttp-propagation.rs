//! Measures how fast farm state travels: the time from a session opening on
//! s1 until s2's `FARM_INFO` shows it, and from a kill -9 of s2 until s1's
//! table shows it DOWN. Runs a farm of three on its own loopback range,
//! repeats each measurement, and prints min / median / max.
//!
//! `cargo run --release -p integration --bin rttp-propagation -- --rounds 10`

use std::time::{Duration, Instant};

use integration::{Farm, FarmSpec, Raw};
use rttp_proto::Status;

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<3} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    );
}

/// Polls every 5 ms until `cond` holds (at most 10 s).
async fn time_until<F, Fut>(mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < Duration::from_secs(10), "no change within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .map(|r| r.parse().expect("--rounds takes a number"))
        .unwrap_or(10);
    let mut farm = Farm::start(FarmSpec::default());
    time_until(|| farm.all_up()).await;
    let mut users = Vec::new();
    let mut sessions = Vec::new();
    for r in 0..rounds {
        let t0 = Instant::now();
        sessions.push(Raw::hello(farm.servers[0].client, &format!("p{r}")).await);
        let want = sessions.len() as u32;
        time_until(|| async { farm.farm_info(1).await.is_some_and(|t| t.servers[0].users == want) }).await;
        users.push(t0.elapsed());
    }
    summary("user count s1 -> s2 table", users);
    let mut downs = Vec::new();
    for _ in 0..rounds.min(5) {
        time_until(|| farm.all_up()).await;
        let t0 = Instant::now();
        farm.kill(1);
        time_until(|| async { farm.status_seen(0, "s2").await == Some(Status::Down) }).await;
        downs.push(t0.elapsed());
        farm.launch(1).await;
    }
    summary("kill -9 s2 -> DOWN on s1", downs);
}
