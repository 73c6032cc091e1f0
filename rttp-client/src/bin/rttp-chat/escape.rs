//! What others typed is shown, never obeyed: control characters in a
//! message (escape sequences that move the cursor, retitle the terminal,
//! clear the screen) are printed as visible escapes, in `--plain` and in the
//! TUI alike.

/// `text` with every control character escaped: newline as `\n`, tab as
/// `\t`, a backslash as `\\` (so the escapes stay unambiguous), any other C0,
/// DEL or C1 character as `\xNN` or `\u{NN}`.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (0x80..0xa0).contains(&(c as u32)) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("plain text, é ✓"), "plain text, é ✓");
        assert_eq!(escape_controls("\x1b[2J\x1b]0;owned\x07"), "\\x1b[2J\\x1b]0;owned\\x07");
        assert_eq!(escape_controls("a\nb\tc\\n"), "a\\nb\\tc\\\\n");
        assert_eq!(escape_controls("\u{9b}31m\x7f\r"), "\\u{9b}31m\\x7f\\x0d");
        assert!(escape_controls("\x1b\x00\u{85}").chars().all(|c| !c.is_control()));
    }
}
