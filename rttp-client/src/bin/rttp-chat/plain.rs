//! `--plain`: commands on stdin, one event per line on stdout. The format is
//! stable (scripts and tests read it); see the README.

use rttp_client::{Client, Event};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::commands::{parse, Input, HELP};
use crate::escape::escape_controls;

/// One event as one line.
pub(crate) fn line(e: &Event) -> String {
    match e {
        Event::Resolved { addrs } => {
            format!("resolved {}", addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "))
        }
        Event::Known { addrs } => {
            format!("known {}", addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "))
        }
        Event::ConnectedFirst { server, addr } => format!("first {server} {addr}"),
        Event::Selected { server, addr, stay } => {
            format!("selected {server} {addr} {}", if *stay { "stay" } else { "move" })
        }
        Event::Connected { server, addr } => format!("connected {server} {addr}"),
        Event::Retry { server, reason } => format!("retry {server} {reason}"),
        Event::Rediscover { excluded } => {
            format!("rediscover {}", excluded.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "))
        }
        Event::Redirected { server, addr, reason } => format!("redirected {server} {addr} {reason}"),
        Event::Disconnected { server, reason } => format!("disconnected {server} {reason}"),
        Event::Rejoined { room, after } => {
            format!("rejoined {room} {}", after.map_or("-".to_string(), |a| a.to_string()))
        }
        Event::Table(t) => format!(
            "table {} {}",
            t.epoch,
            t.servers
                .iter()
                .map(|s| format!("{}={}:{}/{}:{}:{}", s.id, s.status, s.users, s.capacity, s.group, s.addr))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Event::Message { room, nick, text, .. } => format!("msg {room} {nick} {}", escape_controls(text.as_str())),
        Event::Acked { room, tag, id } => format!("acked {room} {tag} {id}"),
        Event::Unacked { room, tag, reason, .. } => format!("unacked {room} {tag} {reason}"),
        Event::Joined { room, nick } => format!("joined {room} {nick}"),
        Event::Parted { room, nick } => format!("parted {room} {nick}"),
        Event::Members { room, nicks } => {
            format!("members {room} {}", nicks.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "))
        }
        Event::NickChanged { nick } => format!("nick {nick}"),
        Event::ServerError { code: 409, reason } => format!("gap {reason}"),
        Event::ServerError { code, reason } => format!("error {code} {reason}"),
        Event::Closed { reason } => format!("closed {reason}"),
    }
}

/// Runs until stdin ends or `/quit`; returns the exit code.
pub(crate) async fn run(client: Client, mut events: mpsc::Receiver<Event>, mut backlog: Vec<Event>) -> i32 {
    let mut last_table = None;
    for e in backlog.drain(..) {
        if let Event::Table(_) = e {
            last_table = Some(line(&e));
        }
        println!("{}", line(&e));
    }
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut current: Option<String> = None;
    let mut table: Option<String> = last_table;
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => {
                    if let Event::Table(_) = e { table = Some(line(&e)) }
                    println!("{}", line(&e));
                    if let Event::Closed { .. } = e { return 1 }
                }
                None => return 1,
            },
            l = stdin.next_line() => {
                let Ok(Some(l)) = l else { client.quit().await; return 0 };
                match parse(&l, current.as_deref()) {
                    Input::Quit => { client.quit().await; return 0 }
                    Input::Join(r) => { current = Some(r.clone()); report(client.join(&r).await) }
                    Input::Part(r) => { if current.as_deref() == Some(&r) { current = None } report(client.part(&r).await) }
                    Input::Switch(r) => current = Some(r),
                    Input::Who(r) => report(client.who(&r).await),
                    Input::Say(r, t) => match client.say(&r, &t).await {
                        // The line's tag: its `acked` (or `unacked`) event names it.
                        Ok(tag) => println!("pending {r} {tag}"),
                        Err(e) => report(Err(e)),
                    },
                    Input::Servers => println!("{}", table.as_deref().unwrap_or("table -")),
                    Input::Help => println!("help {HELP}"),
                    Input::Nick(n) if n.is_empty() => println!("error - /nick needs a nick"),
                    Input::Nick(n) => report(client.nick(&n).await),
                    Input::Nothing => {}
                    Input::Bad(why) => println!("error - {why}"),
                }
            }
        }
    }
}

fn report(r: rttp_client::Result<()>) {
    if let Err(e) = r {
        println!("error - {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_gap_is_its_own_line_and_other_errors_keep_their_code() {
        let gap = Event::ServerError { code: 409, reason: "s1:a:7 is older than the history of #r".into() };
        assert_eq!(line(&gap), "gap s1:a:7 is older than the history of #r");
        let busy = Event::ServerError { code: 503, reason: "busy".into() };
        assert_eq!(line(&busy), "error 503 busy");
    }
}
