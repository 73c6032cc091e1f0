//! Drawing the app: room list, messages, members, input, status bar, and
//! the `/servers` table over them.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};

use super::app::Mine;
use ratatui::widgets::{Block, Borders, Cell, Clear, List, ListItem, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use super::app::App;

/// Draws the whole screen.
pub(crate) fn draw(f: &mut Frame<'_>, app: &App) {
    let [main, input, status] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(3), Constraint::Length(1)]).areas(f.area());
    let [rooms, messages, members] =
        Layout::horizontal([Constraint::Length(18), Constraint::Min(20), Constraint::Length(16)]).areas(main);

    let items: Vec<ListItem<'_>> = app
        .rooms
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let label = if r.unread > 0 { format!("{} ({})", r.name, r.unread) } else { r.name.clone() };
            let style =
                if i == app.current { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
            ListItem::new(label).style(style)
        })
        .collect();
    f.render_widget(List::new(items).block(Block::default().borders(Borders::ALL).title("rooms")), rooms);

    let room = app.rooms.get(app.current);
    let lines: Vec<Line<'_>> = room
        .map(|r| {
            r.lines
                .iter()
                .map(|l| {
                    Line::from(vec![
                        Span::styled(format!("{} ", l.time), Style::default().add_modifier(Modifier::DIM)),
                        if l.nick == "*" {
                            // Joins, parts and moves: not somebody speaking.
                            Span::styled("* ", Style::default().add_modifier(Modifier::DIM))
                        } else {
                            Span::styled(format!("<{}> ", l.nick), Style::default().add_modifier(Modifier::BOLD))
                        },
                        match &l.mine {
                            Mine::Done => Span::raw(l.text.clone()),
                            // Not acknowledged yet: dimmed, with a mark.
                            Mine::Pending { .. } => {
                                Span::styled(format!("{} …", l.text), Style::default().add_modifier(Modifier::DIM))
                            }
                            Mine::Failed(why) => Span::styled(
                                format!("{} [not delivered: {why}]", l.text),
                                Style::default().add_modifier(Modifier::CROSSED_OUT),
                            ),
                        },
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let title = room.map_or_else(|| "no room: /join #room".to_string(), |r| r.name.clone());
    let inner_height = messages.height.saturating_sub(2) as usize;
    // Follow the newest line unless scrolled back (PageUp).
    let top = lines.len().saturating_sub(inner_height + app.scroll);
    let body = Paragraph::new(lines)
        .block(Block::default().borders(Borders::ALL).title(title))
        .wrap(Wrap { trim: false })
        .scroll((top as u16, 0));
    f.render_widget(body, messages);

    let who: Vec<ListItem<'_>> =
        room.map(|r| r.members.iter().map(|m| ListItem::new(m.clone())).collect()).unwrap_or_default();
    f.render_widget(List::new(who).block(Block::default().borders(Borders::ALL).title("members")), members);

    let prompt = Paragraph::new(format!("> {}", app.input)).block(
        Block::default()
            .borders(Borders::ALL)
            .title(app.notice.clone().unwrap_or_else(|| "say something, or /help".into())),
    );
    f.render_widget(prompt, input);

    let on = app.server.as_ref().map_or_else(|| "-".to_string(), |(id, addr)| format!("{id} {addr}"));
    let mv = app.last_move.as_deref().map_or(String::new(), |m| format!(" | last move: {m}"));
    f.render_widget(Paragraph::new(format!(" {} on {on} | {}{mv}", app.nick, app.state)), status);

    if app.show_servers {
        servers(f, app, main);
    }
}

/// The farm table: id, address, status, users/capacity, group, and where we are.
fn servers(f: &mut Frame<'_>, app: &App, over: Rect) {
    let area = Rect {
        x: over.x + 2,
        y: over.y + 1,
        width: over.width.saturating_sub(4).min(76),
        height: over.height.saturating_sub(2),
    };
    f.render_widget(Clear, area);
    let here = app.server.as_ref().map(|(id, _)| id.as_str());
    let rows: Vec<Row<'_>> = app
        .table
        .as_ref()
        .map(|t| {
            t.servers
                .iter()
                .map(|s| {
                    Row::new(vec![
                        Cell::from(if Some(s.id.as_str()) == here { "*" } else { " " }),
                        Cell::from(s.id.to_string()),
                        Cell::from(s.addr.to_string()),
                        Cell::from(s.status.to_string()),
                        Cell::from(format!("{}/{}", s.users, s.capacity)),
                        Cell::from(s.group.to_string()),
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    let widths = [
        Constraint::Length(1),
        Constraint::Length(10),
        Constraint::Length(22),
        Constraint::Length(9),
        Constraint::Length(13),
        Constraint::Min(6),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new(vec!["", "id", "address", "status", "users/cap", "group"])
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .block(Block::default().borders(Borders::ALL).title("servers (/servers to close)"));
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use rttp_client::Event;
    use rttp_proto::{FarmInfo, Group, HostPort, Nick, Room, ServerEntry, ServerId, Status, Text, Token};

    use super::super::app::App;
    use super::*;

    fn screen(app: &App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..h).map(|y| (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>() + "\n").collect()
    }

    fn app() -> App {
        let mut a = App::new("alice");
        let room = |s: &str| Room::new(s).unwrap();
        let nick = |s: &str| Nick::new(s).unwrap();
        a.on_event(
            &Event::Connected { server: ServerId::new("s2").unwrap(), addr: "127.0.0.2:7000".parse().unwrap() },
            "10:00:00".into(),
        );
        a.input = "/join #rust".into();
        a.submit();
        a.input = "/join #farm".into();
        a.submit();
        a.input = "/switch #rust".into();
        a.submit();
        for (r, n, t) in [
            ("#rust", "bob", "hello"),
            ("#rust", "alice", "hi bob"),
            ("#farm", "carol", "unseen"),
            ("#farm", "carol", "two"),
        ] {
            a.on_event(
                &Event::Message { room: room(r), id: Token::new("i").unwrap(), nick: nick(n), text: Text::from(t) },
                "10:00:01".into(),
            );
        }
        a.on_event(&Event::Members { room: room("#rust"), nicks: vec![nick("alice"), nick("bob")] }, "10:00:02".into());
        a
    }

    #[test]
    fn rooms_with_unread_messages_members_and_status() {
        let s = screen(&app(), 80, 16);
        assert!(s.contains("#rust"), "{s}");
        assert!(s.contains("#farm (2)"), "unread count on the other room:\n{s}");
        assert!(s.contains("10:00:01 <bob> hello"), "{s}");
        assert!(s.contains("<alice> hi bob"), "{s}");
        assert!(!s.contains("unseen"), "another room's messages stay there:\n{s}");
        assert!(s.contains("members") && s.contains("bob"), "{s}");
        assert!(s.contains("alice on s2 127.0.0.2:7000 | connected"), "status bar:\n{s}");
    }

    #[test]
    fn the_status_bar_shows_the_last_move() {
        let mut a = app();
        a.on_event(
            &Event::Redirected {
                server: ServerId::new("s3").unwrap(),
                addr: "127.0.0.3:7000".parse().unwrap(),
                reason: "drain".into(),
            },
            "10:01:00".into(),
        );
        let s = screen(&a, 100, 16);
        assert!(s.contains("last move: redirected to s3 (drain)"), "{s}");
    }

    #[test]
    fn the_servers_table() {
        let mut a = app();
        let e = |id: &str, status, users, group: &str| ServerEntry {
            id: ServerId::new(id).unwrap(),
            addr: HostPort::new(&format!("127.0.0.{}:7000", &id[1..])).unwrap(),
            status,
            users,
            capacity: 100,
            group: Group::new(group).unwrap(),
            transport: Default::default(),
            ws: None,
        };
        a.on_event(
            &Event::Table(FarmInfo {
                epoch: 3,
                servers: vec![e("s1", Status::Up, 5, "g1"), e("s2", Status::Draining, 7, "g2")],
            }),
            "10:00:03".into(),
        );
        a.input = "/servers".into();
        a.submit();
        let s = screen(&a, 90, 16);
        assert!(s.contains("users/cap"), "{s}");
        let s1 = s.lines().find(|l| l.contains("s1 ")).unwrap();
        assert!(
            s1.contains("127.0.0.1:7000") && s1.contains("UP") && s1.contains("5/100") && s1.contains("g1"),
            "{s1}"
        );
        let s2 = s.lines().find(|l| l.contains(" s2 ") && l.contains("DRAINING")).unwrap();
        assert!(s2.contains("*"), "the server we are on is marked: {s2}");
    }

    #[test]
    fn a_line_said_shows_pending_until_acknowledged_and_once() {
        let mut a = app();
        let (room, nick, tag) = (Room::new("#rust").unwrap(), Nick::new("alice").unwrap(), Token::new("t-1").unwrap());
        a.said("#rust", "on its way", "t-1", "10:02:00".into());
        assert!(screen(&a, 80, 16).contains("<alice> on its way …"), "pending, marked");
        // The room echoes it before the ACK: still one line, still pending.
        let id = Token::new("s2:x:1").unwrap();
        a.on_event(&Event::Message { room, id, nick, text: Text::from("on its way") }, "10:02:01".into());
        let s = screen(&a, 80, 16);
        assert_eq!(s.matches("on its way").count(), 1, "{s}");
        a.on_event(&Event::Acked { room, tag, id }, "10:02:01".into());
        let s = screen(&a, 80, 16);
        assert!(s.contains("<alice> on its way") && !s.contains("on its way …"), "{s}");
        // Given up: said so on the line.
        a.said("#rust", "lost one", "t-2", "10:02:02".into());
        let gone = Event::Unacked {
            room,
            tag: Token::new("t-2").unwrap(),
            text: Text::from("lost one"),
            reason: "not acknowledged within 30s".into(),
        };
        a.on_event(&gone, "10:02:40".into());
        let s = screen(&a, 140, 16);
        assert!(s.contains("lost one [not delivered: not acknowledged within 30s]"), "{s}");
    }

    #[test]
    fn switching_clears_unread_and_input_history_recalls() {
        let mut a = app();
        a.next_room();
        assert_eq!(a.current_room(), Some("#farm"));
        assert_eq!(a.rooms[1].unread, 0);
        a.history_up();
        assert_eq!(a.input, "/switch #rust");
        a.history_up();
        assert_eq!(a.input, "/join #farm");
        a.history_down();
        assert_eq!(a.input, "/switch #rust");
    }
}
