//! The chat commands, shared by the TUI and `--plain`.

/// What a line of input asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Join(String),
    Part(String),
    Switch(String),
    Who(String),
    Say(String, String),
    Servers,
    Nick(String),
    Help,
    Quit,
    Nothing,
    Bad(String),
}

/// The help text.
pub(crate) const HELP: &str =
    "/join #room  /part [#room]  /switch #room  /who [#room]  /servers  /nick  /quit  /help; \
other lines are said in the current room";

/// Parses one line, given the current room.
pub(crate) fn parse(line: &str, current: Option<&str>) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    let Some(rest) = line.strip_prefix('/') else {
        if line.is_empty() {
            return Input::Nothing;
        }
        return match current {
            Some(r) => Input::Say(r.to_string(), line.to_string()),
            None => Input::Bad("not in a room: /join #room first".into()),
        };
    };
    let mut words = rest.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next().map(str::to_string);
    let room_or_current = |what: &str| match arg.clone().or(current.map(str::to_string)) {
        Some(r) => Ok(r),
        None => Err(Input::Bad(format!("/{what} needs a room"))),
    };
    match cmd {
        "join" | "j" => arg.map_or(Input::Bad("/join needs a room, e.g. /join #rust".into()), Input::Join),
        "part" | "leave" => room_or_current("part").map_or_else(|e| e, Input::Part),
        "switch" | "s" => arg.map_or(Input::Bad("/switch needs a room".into()), Input::Switch),
        "who" | "w" => room_or_current("who").map_or_else(|e| e, Input::Who),
        "servers" => Input::Servers,
        "nick" => Input::Nick(arg.unwrap_or_default()),
        "help" | "h" | "?" => Input::Help,
        "quit" | "q" | "exit" => Input::Quit,
        other => Input::Bad(format!("unknown command /{other}: try /help")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_text() {
        assert_eq!(parse("/join #a", None), Input::Join("#a".into()));
        assert_eq!(parse("hello there", Some("#a")), Input::Say("#a".into(), "hello there".into()));
        assert!(matches!(parse("hello", None), Input::Bad(_)));
        assert_eq!(parse("/part", Some("#a")), Input::Part("#a".into()));
        assert_eq!(parse("/who #b", Some("#a")), Input::Who("#b".into()));
        assert!(matches!(parse("/frob", None), Input::Bad(m) if m.contains("/frob")));
        assert_eq!(parse("", Some("#a")), Input::Nothing);
        assert_eq!(parse("/quit", None), Input::Quit);
    }
}
