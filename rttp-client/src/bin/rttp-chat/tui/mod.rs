//! The full-screen terminal UI (ratatui + crossterm) over the client's
//! event stream. The terminal is restored on every exit path, a panic too.

mod app;
mod view;

use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent, KeyCode, KeyEventKind, KeyModifiers};
use rttp_client::{Client, Event};
use tokio::sync::mpsc;

use app::{Action, App};

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60)
}

/// Runs the TUI until /quit or Ctrl-C; returns the exit code.
pub(crate) async fn run(client: Client, mut events: mpsc::Receiver<Event>, backlog: Vec<Event>, nick: &str) -> i32 {
    let mut app = App::new(nick);
    for e in &backlog {
        app.on_event(e, now());
    }
    // ratatui::init installs a panic hook that restores the terminal.
    let mut terminal = ratatui::init();
    let (keys_tx, mut keys) = mpsc::channel(64);
    // crossterm's reader blocks: a thread of its own, ended when we stop.
    std::thread::spawn(move || loop {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => match event::read() {
                Ok(ev) => {
                    if keys_tx.blocking_send(ev).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(false) => {
                if keys_tx.is_closed() {
                    return;
                }
            }
            Err(_) => return,
        }
    });
    let mut code = 0;
    loop {
        if terminal.draw(|f| view::draw(f, &app)).is_err() {
            code = 1;
            break;
        }
        let action = tokio::select! {
            e = events.recv() => match e {
                Some(e) => { app.on_event(&e, now()); None }
                None => { code = 1; break }
            },
            k = keys.recv() => match k {
                Some(TermEvent::Key(k)) if k.kind == KeyEventKind::Press => match (k.code, k.modifiers) {
                    (KeyCode::Char('c'), KeyModifiers::CONTROL) => Some(Action::Quit),
                    (KeyCode::Enter, _) => app.submit(),
                    (KeyCode::Backspace, _) => { app.input.pop(); None }
                    (KeyCode::Tab, _) => { app.next_room(); None }
                    (KeyCode::Up, _) => { app.history_up(); None }
                    (KeyCode::Down, _) => { app.history_down(); None }
                    (KeyCode::PageUp, _) => { app.scroll += 10; None }
                    (KeyCode::PageDown, _) => { app.scroll = app.scroll.saturating_sub(10); None }
                    (KeyCode::Char(d), KeyModifiers::ALT) if d.is_ascii_digit() => {
                        app.select((d as usize - '1' as usize) % 10);
                        None
                    }
                    (KeyCode::Char(ch), _) => { app.input.push(ch); None }
                    _ => None,
                },
                Some(_) => None,
                None => { code = 1; break }
            },
        };
        let result = match action {
            None => Ok(()),
            Some(Action::Quit) => break,
            Some(Action::Join(r)) => client.join(&r).await,
            Some(Action::Part(r)) => client.part(&r).await,
            Some(Action::Say(r, t)) => client.say(&r, &t).await.map(|tag| app.said(&r, &t, tag.as_str(), now())),
            Some(Action::Who(r)) => client.who(&r).await,
            Some(Action::Nick(n)) => client.nick(&n).await,
        };
        if let Err(e) = result {
            app.notice = Some(e.to_string());
        }
    }
    ratatui::restore();
    client.quit().await;
    code
}
