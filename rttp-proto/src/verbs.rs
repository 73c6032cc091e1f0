//! Verb shapes and lookups. Each frame kind's table (`CLIENT`, `SERVER`,
//! `PEER`) is written by its `frames!` declaration (`client.rs`,
//! `server.rs`, `peer.rs`; the macro is in `table.rs`), so a verb, its shape
//! and its arguments are declared once. Decoding finds a verb's shape here,
//! and tells a verb of another link (ERR 404) from one that does not exist
//! (ERR 401).

/// How a verb's frame extends past its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One line of space-separated arguments.
    Line,
    /// The last argument is a body length; the body and a line end follow.
    Body,
    /// `n` arguments, then the rest of the line as one free-text argument.
    Trailing(usize),
    /// Argument `count_arg` counts the lines of a block that follows; each
    /// block line starts with `item_verb`.
    Block { count_arg: usize, item_verb: &'static [u8] },
}

/// A verb and its shape. Lookups scan a table in order, so each table
/// lists its hot verbs (the ones every message uses) first.
pub(crate) type Verb = (&'static [u8], Shape);

pub(crate) use crate::client::CLIENT;
pub(crate) use crate::peer::PEER;
pub(crate) use crate::server::SERVER;

/// The shape of `verb` in `table`, if the table has it.
pub(crate) fn shape(table: &[Verb], verb: &[u8]) -> Option<Shape> {
    table.iter().find(|(v, _)| *v == verb).map(|(_, s)| *s)
}

/// Whether any link has this verb.
pub(crate) fn is_known(verb: &[u8]) -> bool {
    [CLIENT, SERVER, PEER].iter().any(|t| shape(t, verb).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_table_names_a_verb_once_and_every_verb_is_known() {
        for table in [CLIENT, SERVER, PEER] {
            for (i, (v, _)) in table.iter().enumerate() {
                assert!(table[i + 1..].iter().all(|(w, _)| w != v), "{} twice", String::from_utf8_lossy(v));
                assert!(is_known(v));
            }
        }
        assert!(!is_known(b"NOPE"));
        assert_eq!(shape(CLIENT, b"MSG"), None, "a server verb is not a client verb");
    }
}
