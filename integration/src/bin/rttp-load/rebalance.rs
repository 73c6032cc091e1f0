//! rebalance: clients connect through farm-dns and chat; then one server is
//! drained and restarted (or, with `--add`, a server joins the farm under
//! load). Users ÷ capacity per server is sampled every 500 ms, from the
//! restart on, until the farm has stayed even for the steady period; moves
//! are counted against the fewest that reach the balance, and every
//! member's messages against what was said.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::Farm;
use rttp_client::{Client, Event};

use crate::report::Report;

/// What the workload is asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub clients: usize,
    pub rooms: usize,
    /// Seconds the farm must stay within 1.10 once it got there.
    pub steady: f64,
    /// Add the last server under load instead of draining and restarting it.
    pub add: bool,
}

/// Each server's sessions and capacity (0 users for one not running).
async fn loads(farm: &Farm, caps: &[u32]) -> Vec<(u32, u32)> {
    farm.metric_each("rttp_sessions ").await.into_iter().zip(caps).map(|(u, &c)| (u as u32, c)).collect()
}

/// Max over mean of users ÷ capacity among `up` servers.
fn max_over_mean(l: &[(u32, u32)], up: &[bool]) -> f64 {
    let live: Vec<&(u32, u32)> = l.iter().zip(up).filter(|(_, u)| **u).map(|(x, _)| x).collect();
    let users: u32 = live.iter().map(|x| x.0).sum();
    let cap: u32 = live.iter().map(|x| x.1).sum();
    if users == 0 || cap == 0 {
        return 1.0;
    }
    let mean = f64::from(users) / f64::from(cap);
    live.iter().map(|x| f64::from(x.0) / f64::from(x.1)).fold(0.0, f64::max) / mean
}

/// The fewest moves that even the farm out: the users above their share.
fn needed(l: &[(u32, u32)]) -> u32 {
    let users: u32 = l.iter().map(|x| x.0).sum();
    let cap: u32 = l.iter().map(|x| x.1).sum();
    l.iter().map(|&(u, c)| u.saturating_sub((f64::from(users) * f64::from(c) / f64::from(cap)).ceil() as u32)).sum()
}

/// Sessions moved by rebalancing, over the running servers.
async fn moves(farm: &Farm) -> u32 {
    farm.metric_each("rttp_rebalanced_total ").await.iter().sum::<f64>() as u32
}

/// Runs the workload; `caps` is each server's capacity.
pub(crate) async fn rebalance(farm: &mut Farm, dns: std::net::SocketAddr, caps: &[u32], plan: Plan) -> Report {
    let last = farm.servers.len() - 1;
    if plan.add {
        // Not there yet: stopped, and DOWN for the others before anyone connects.
        farm.kill(last);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Members, each in one room; the first member of each room speaks.
    let seen: Arc<Mutex<HashMap<usize, Vec<String>>>> = Default::default();
    // Membership notices (JOINED, PARTED) about others the members read:
    // the moves' noise in their rooms (counted from the first line said).
    let notices = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    let pb = crate::progress(plan.clients, "members connecting through DNS");
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for i in 0..plan.clients {
        tick.tick().await;
        pb.inc(1);
        let (c, mut ev) = Client::builder()
            .service("chat.farm.test", 7000)
            .dns(dns)
            .nick(&format!("rb{i}"))
            .connect()
            .await
            .expect("a member connects");
        c.join(&format!("#rb{}", i % plan.rooms)).await.expect("join");
        let (seen, notices, me) = (seen.clone(), notices.clone(), format!("rb{i}"));
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let line = match e {
                    // About others: a mover's own JOINED is its rejoin.
                    Event::Joined { nick, .. } | Event::Parted { nick, .. } => {
                        if nick.as_str() != me {
                            notices.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Event::Message { text, .. } => text.to_string(),
                    // Moves and errors too, prefixed, to explain a loss.
                    Event::Redirected { server, reason, .. } => format!("! redirected to {server} ({reason})"),
                    Event::Rejoined { room, .. } => format!("! rejoined {room}"),
                    Event::ServerError { code, reason } => format!("! ERR {code} {reason}"),
                    Event::Disconnected { server, reason } => format!("! lost {server}: {reason}"),
                    _ => continue,
                };
                seen.lock().unwrap_or_else(|e| e.into_inner()).entry(i).or_default().push(line);
            }
        });
        clients.push(c);
    }
    pb.finish_and_clear();
    // JOIN returns once sent: let the last joins reach every server before
    // the first line, or that line is not a loss but said before the join.
    tokio::time::sleep(Duration::from_secs(2)).await;
    notices.store(0, Ordering::Relaxed);
    let speakers: Vec<Client> = clients.drain(..plan.rooms.min(plan.clients)).collect();
    let said = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let talk = {
        let (said, stop) = (said.clone(), stop.clone());
        tokio::spawn(async move {
            // One line a second in every room, numbered, until told to stop
            // (bounded: at most an hour).
            for k in 0..3600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                for (r, c) in speakers.iter().enumerate() {
                    let _ = c.say(&format!("#rb{r}"), &format!("rb{r}-{k}")).await;
                }
                said.store(k + 1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            speakers
        })
    };
    let started = Instant::now();
    let mut samples: Vec<(f64, Vec<(u32, u32)>)> = Vec::new();
    let mut up = vec![true; caps.len()];
    // The event: a drain and restart, or a new server.
    if !plan.add {
        tokio::time::sleep(Duration::from_secs(2)).await;
        farm.term(last);
        up[last] = false;
        farm.wait_exit(last, Duration::from_secs(60)).await.expect("the drained server exits");
    }
    samples.push((started.elapsed().as_secs_f64(), loads(farm, caps).await));
    farm.launch(last).await;
    let t_up = started.elapsed().as_secs_f64();
    up[last] = true;
    let at_up = loads(farm, caps).await;
    let need = needed(&at_up);
    let moves_before = moves(farm).await;
    // Sample until within 1.10 (given up after 120 s), then for the steady period.
    let mut reached: Option<f64> = None;
    let mut worst_after = 1.0f64;
    let give_up = Instant::now() + Duration::from_secs(120);
    let deadline = give_up + Duration::from_secs_f64(plan.steady.clamp(0.0, 3600.0));
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let l = loads(farm, caps).await;
        let t = started.elapsed().as_secs_f64();
        let r = max_over_mean(&l, &up);
        samples.push((t, l));
        match reached {
            None if r <= 1.10 => reached = Some(t),
            Some(_) => worst_after = worst_after.max(r),
            None => {}
        }
        let now = Instant::now();
        if reached.is_some_and(|t0| t - t0 >= plan.steady) || now > deadline || (reached.is_none() && now > give_up) {
            break;
        }
    }
    let total_moves = moves(farm).await - moves_before;
    stop.store(true, Ordering::Relaxed);
    let speakers = talk.await.expect("the talkers");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let said = said.load(Ordering::Relaxed);
    let (mut lost, mut dup) = (0usize, 0usize);
    {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        for i in 0..plan.clients {
            let r = i % plan.rooms;
            let mut n: HashMap<&str, usize> = HashMap::new();
            for t in seen.get(&i).map(Vec::as_slice).unwrap_or_default().iter().filter(|t| !t.starts_with('!')) {
                *n.entry(t.as_str()).or_default() += 1;
            }
            for k in 0..said {
                match n.get(format!("rb{r}-{k}").as_str()) {
                    None => {
                        lost += 1;
                        if lost <= 5 {
                            let log = seen.get(&i).map(Vec::as_slice).unwrap_or_default();
                            let at = log.iter().position(|t| *t == format!("rb{r}-{}", k + 1)).unwrap_or(log.len());
                            let around = &log[at.saturating_sub(6)..(at + 3).min(log.len())];
                            eprintln!("rebalance: member rb{i} missed rb{r}-{k}; around it: {around:?}");
                        }
                    }
                    Some(&c) => dup += c - 1,
                }
            }
        }
    }
    let per_server: Vec<(String, Vec<(f64, f64)>)> = (0..caps.len())
        .map(|k| {
            (format!("s{} (cap {})", k + 1, caps[k]), samples.iter().map(|(t, l)| (*t, f64::from(l[k].0))).collect())
        })
        .collect();
    let title = if plan.add { "rebalance: a server added under load" } else { "rebalance: drain and restart" };
    crate::chart("rebalance-users.svg", |p| crate::charts::users_over_time(p, title, &per_server));
    let settle = reached.map_or(f64::NAN, |t| t - t_up);
    let end = samples.last().map(|s| s.1.clone()).unwrap_or_default();
    println!(
        "rebalance: {} members in {} rooms; {}; at UP {:?} (max/mean {:.2}); within 1.10 {settle:.1} s after UP, \
         worst {worst_after:.3} over the next {:.0} s; moves {total_moves} for {need} needed ({:.2}); \
         end {:?} (max/mean {:.2}); messages {} expected, lost {lost}, duplicated {dup}; membership notices read {}",
        plan.clients,
        plan.rooms,
        if plan.add { "one server added" } else { "one server drained and restarted" },
        at_up.iter().map(|x| x.0).collect::<Vec<_>>(),
        max_over_mean(&at_up, &up),
        plan.steady,
        f64::from(total_moves) / f64::from(need.max(1)),
        end.iter().map(|x| x.0).collect::<Vec<_>>(),
        max_over_mean(&end, &up),
        said * plan.clients,
        notices.load(Ordering::Relaxed),
    );
    for c in speakers.into_iter().chain(clients) {
        c.quit().await;
    }
    Report::new("rebalance", "rttp")
        .param("clients", plan.clients as f64)
        .param("add", f64::from(u8::from(plan.add)))
        .param("needed", f64::from(need))
        .lower("settle_s", settle)
        .lower("max_over_mean_end", max_over_mean(&end, &up))
        .lower("max_over_mean_worst_after", worst_after)
        .lower("moves", f64::from(total_moves))
        .lower("moves_over_needed", f64::from(total_moves) / f64::from(need.max(1)))
        .lower("lost", lost as f64)
        .lower("duplicated", dup as f64)
        .lower("membership_notices", notices.load(Ordering::Relaxed) as f64)
}
