//! The verb tables: every verb of every frame kind and the shape of its
//! frame, in one place. Decoding finds a verb's shape here, tells a verb of
//! another link (ERR 404) from one that does not exist (ERR 401), and the
//! frame types (`client.rs`, `server.rs`, `peer.rs`) add only how their
//! arguments map to fields.

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

/// Client to server.
pub(crate) const CLIENT: &[Verb] = &[
    (b"SAY", Shape::Body),
    (b"HELLO", Shape::Line),
    (b"FARM", Shape::Line),
    (b"JOIN", Shape::Line),
    (b"PART", Shape::Line),
    (b"WHO", Shape::Line),
    (b"PING", Shape::Line),
    (b"PONG", Shape::Line),
    (b"QUIT", Shape::Line),
];

/// Server to client.
pub(crate) const SERVER: &[Verb] = &[
    (b"MSG", Shape::Body),
    (b"WELCOME", Shape::Line),
    (b"FARM_INFO", Shape::Block { count_arg: 1, item_verb: b"SERVER" }),
    // SERVER lines only occur inside a FARM_INFO block.
    (b"SERVER", Shape::Line),
    (b"REDIRECT", Shape::Line),
    (b"JOINED", Shape::Line),
    (b"PARTED", Shape::Line),
    (b"MEMBERS", Shape::Line),
    (b"END_MEMBERS", Shape::Line),
    (b"PING", Shape::Line),
    (b"PONG", Shape::Line),
    (b"ERR", Shape::Trailing(1)),
];

/// Server to server, both ways.
pub(crate) const PEER: &[Verb] = &[
    (b"RELAY", Shape::Body),
    (b"BEAT", Shape::Line),
    (b"PEER_HELLO", Shape::Line),
    (b"PEER_CHALLENGE", Shape::Line),
    (b"PEER_AUTH", Shape::Line),
    (b"PEER_OK", Shape::Line),
    (b"STATE", Shape::Line),
    (b"MEMBER", Shape::Line),
    (b"INTEREST", Shape::Line),
    (b"UNINTEREST", Shape::Line),
    (b"RJOINED", Shape::Line),
    (b"RPARTED", Shape::Line),
    (b"RMEMBER", Shape::Line),
    (b"HISTORY", Shape::Line),
    (b"REPLAY", Shape::Body),
    (b"ERR", Shape::Trailing(1)),
];

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
