//! Checking a line's arguments and finding where they lie, eight bytes at
//! a time. Every frame of every connection passes through here, so it is
//! written for speed: a byte loop (or a nom parser per argument) cost more
//! than all the rest of decoding a `MSG`. Each 8-byte word is tested with
//! a handful of integer operations (the "SWAR" bit tricks of Hacker's
//! Delight, ch. 6): any byte outside printable ASCII, which bytes are
//! spaces, and two spaces in a row.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Which of the first 64 bytes of a line's arguments are spaces (bit `k`:
/// byte `k`): where each argument starts, found with a few bit operations,
/// in one word instead of a table of offsets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Spaces {
    pub(crate) mask: u64,
}

/// Bytes of the arguments the mask covers.
pub(crate) const MASKED: usize = 64;

impl Spaces {
    /// Where argument `i` lies in `args` (` a b c`), if its space is among
    /// the masked bytes; `None` otherwise (the caller walks the line).
    #[inline]
    pub(crate) fn arg(&self, args: &[u8], i: usize) -> Option<std::ops::Range<usize>> {
        let mut m = self.mask;
        for _ in 0..i {
            m &= m.wrapping_sub(1);
        }
        if m == 0 {
            return None;
        }
        let start = m.trailing_zeros() as usize + 1;
        m &= m - 1;
        let end = match m {
            0 if args.len() <= MASKED => args.len(),
            0 => memchr::memchr(b' ', &args[start..]).map_or(args.len(), |e| start + e),
            _ => m.trailing_zeros() as usize,
        };
        Some(start..end)
    }

    /// Where the last argument starts in `args`, when the mask covers them all.
    pub(crate) fn last(&self, args: &[u8]) -> Option<usize> {
        (args.len() <= MASKED && self.mask != 0).then(|| 64 - self.mask.leading_zeros() as usize)
    }
}

/// The high bits of the bytes of `x` (no other bit set) as an 8-bit mask.
fn pack(x: u64) -> u64 {
    ((x >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// The high bit of each byte of `x` that is zero, exactly (no borrow runs
/// from one byte into the next).
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH).wrapping_add(!HIGH)) | x) & HIGH
}

/// How many bytes of `x` have their high bit set (and no other bit): a
/// multiply rather than `count_ones`, which without the `popcnt` target
/// feature (not in the x86-64 baseline) is a dozen instructions.
fn bytes_set(x: u64) -> usize {
    ((x >> 7).wrapping_mul(ONES) >> 56) as usize
}

/// The high bit of each byte of `x` outside 0x20..=0x7e (a control byte,
/// DEL or not ASCII), exactly: the sums stay within each byte.
fn unprintable(x: u64) -> u64 {
    let low = x & !HIGH;
    let at_least_space = low + ONES * (0x80 - 0x20);
    let at_least_del = low + ONES;
    (!at_least_space | at_least_del | x) & HIGH
}

/// The last `len % 8` bytes of `b` as a word, padded with a harmless
/// argument byte. Loaded as one word (overlapping the previous one) when
/// the slice allows: a copy into a padded buffer went through `memcpy`, and
/// the word load right after its byte stores stalled.
fn tail(b: &[u8]) -> u64 {
    let rem = b.len() % 8;
    let pad = (ONES * u64::from(b'a')) << (8 * rem);
    if b.len() >= 8 {
        let last = u64::from_le_bytes(b[b.len() - 8..].try_into().unwrap_or_default());
        (last >> (8 * (8 - rem))) | pad
    } else {
        b.iter().rev().fold(0u64, |w, &c| (w << 8) | u64::from(c)) | pad
    }
}

/// Checks the arguments part of a line (` a b c`, or empty: none): each
/// argument is one space, then one or more printable ASCII bytes that are
/// not spaces. Records where the spaces of the first 64 bytes are and
/// returns how many arguments there are; `None` if the arguments break
/// the grammar.
pub(crate) fn split(args: &[u8], spaces: &mut Spaces) -> Option<usize> {
    if args.is_empty() {
        return Some(0);
    }
    if args[0] != b' ' || args[args.len() - 1] == b' ' {
        return None;
    }
    // Accumulated in locals and stored once: an update of `spaces` in the
    // loop made each word wait for the store of the last.
    let (mut count, mut bad, mut carry, mut mask) = (0usize, 0u64, 0u64, 0u64);
    let full = args.len() / 8;
    for i in 0..=full {
        let x = if i < full {
            u64::from_le_bytes(args[i * 8..i * 8 + 8].try_into().unwrap_or_default())
        } else if !args.len().is_multiple_of(8) {
            tail(args)
        } else {
            break;
        };
        let sp = zero_bytes(x ^ (ONES * 0x20));
        // Unprintable bytes, and a space after a space (within this word or
        // across from the last).
        bad |= unprintable(x) | (sp & ((sp << 8) | carry));
        carry = sp >> 56;
        if i < MASKED / 8 {
            mask |= pack(sp) << (8 * i);
        }
        count += bytes_set(sp);
    }
    spaces.mask = mask;
    (bad == 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many arguments, and each one as the mask finds it.
    fn check(s: &str) -> Option<(usize, Vec<&str>)> {
        let mut sp = Spaces::default();
        let n = split(s.as_bytes(), &mut sp)?;
        let args = (0..n).map_while(|i| sp.arg(s.as_bytes(), i).map(|r| &s[r])).collect();
        Some((n, args))
    }

    #[test]
    fn arguments_are_found_across_word_boundaries() {
        assert_eq!(check(""), Some((0, vec![])));
        assert_eq!(check(" a"), Some((1, vec!["a"])));
        assert_eq!(check(" #general s1:1:999 alice_42 64"), Some((4, vec!["#general", "s1:1:999", "alice_42", "64"])));
        // A space as the last byte of one word and the first of the next.
        assert_eq!(check(" abcdef x"), Some((2, vec!["abcdef", "x"])));
        assert_eq!(check(" abcdefg x"), Some((2, vec!["abcdefg", "x"])));
        // Past the masked bytes: the arguments there are counted, the
        // ones the mask sees are found, the one crossing its end too.
        let many = " ab".repeat(30);
        let (n, args) = check(&many).unwrap();
        assert_eq!(n, 30);
        assert_eq!(args, vec!["ab"; 22]);
        let long = format!(" {} {}", "x".repeat(70), "y");
        assert_eq!(check(&long), Some((2, vec![&long[1..71]])));
        let mut sp = Spaces::default();
        split(long.as_bytes(), &mut sp).unwrap();
        assert_eq!(sp.last(long.as_bytes()), None, "not all spaces are masked");
        split(b" a bc", &mut sp).unwrap();
        assert_eq!(sp.last(b" a bc"), Some(3));
    }

    #[test]
    fn every_break_of_the_grammar_is_refused() {
        for bad in
            ["a", " a ", "  a", " a  b", " abcdefg  x", " abcdef  x", " a\tb", " a\x7fb", " a\u{e9}b", " a\x00", "  "]
        {
            assert_eq!(check(bad), None, "{bad:?}");
        }
        // Every byte value in every position of a word.
        for pos in 1..17 {
            for b in 0u8..=255 {
                let mut s = vec![b' '];
                s.extend(std::iter::repeat_n(b'x', 16));
                s[pos] = b;
                let ok = (0x21..=0x7e).contains(&b) || (b == b' ' && pos != 1 && pos != 16);
                let mut sp = Spaces::default();
                assert_eq!(split(&s, &mut sp).is_some(), ok, "byte {b:#x} at {pos}");
            }
        }
    }
}
