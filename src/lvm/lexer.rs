//! The metadata text's tokens, read as LVM2's config tokenizer reads them
//! (libdm's `_get_token`), shared by the full parser ([`super::text`]) and
//! the scan's fast summary ([`super::scan::summarize`]).
//!
//! - Whitespace is C's `isspace` (space, `\t`, `\n`, `\v`, `\f`, `\r`); a
//!   NUL ends the text.
//! - `#` starts a comment to the end of the line.
//! - `"..."` is a string in which `\"` and `\\` stand for `"` and `\`;
//!   any other backslash is kept, and the char after it never ends the
//!   string. `'...'` is a string without escapes.
//! - Where a value may stand (after `=`, `[` or `,`), a token starting with
//!   a digit, `+`, `-` or `.` is a number: digits with at most one `.`.
//! - Anything else is a word, up to whitespace, `#`, `=`, `{`, `}` or NUL.

use std::borrow::Cow;

/// A token, borrowing from the text (a string with escapes is the only one
/// that needs its own copy).
#[derive(Debug, PartialEq)]
pub(crate) enum Tok<'a> {
    /// A bare word: a key, a section name, or a bare value.
    Word(&'a str),
    /// A number without a `.` (as written; the reader converts it).
    Int(&'a str),
    /// A number with a `.`.
    Float(&'a str),
    /// A quoted string's contents, escapes undone.
    Str(Cow<'a, str>),
    /// `=`
    Eq,
    /// `{`
    Open,
    /// `}`
    Close,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// A comment, `#` included, without its newline (layout mode only).
    Comment(&'a str),
    /// A newline (layout mode only).
    Newline,
}

/// A lexical error: an unterminated string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LexError {
    /// Byte offset of the string's opening quote.
    pub at: usize,
}

impl LexError {
    /// What is wrong, in words.
    pub(crate) const WHAT: &'static str = "unterminated string";
}

/// Reads tokens one at a time.
pub(crate) struct Lexer<'a> {
    text: &'a str,
    pos: usize,
    /// Report comments and newlines (for a lossless reader) or skip them.
    layout: bool,
    /// The next token stands where a value may (LVM's `values_allowed`).
    value_next: bool,
}

impl<'a> Lexer<'a> {
    /// A lexer that skips comments and newlines.
    pub(crate) fn new(text: &'a str) -> Self {
        Lexer {
            text,
            pos: 0,
            layout: false,
            value_next: false,
        }
    }

    /// A lexer that reports comments and newlines as tokens.
    pub(crate) fn with_layout(text: &'a str) -> Self {
        Lexer {
            layout: true,
            ..Lexer::new(text)
        }
    }

    /// The text being read.
    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// The byte offset just past the last token.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Reads the next token as a value (numbers are numbers) whatever came
    /// before it, for readers that accept items without commas.
    pub(crate) fn expect_value(&mut self) {
        self.value_next = true;
    }

    /// The next token and the offset it starts at; `None` at the end.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Result<Option<(usize, Tok<'a>)>, LexError> {
        let (text, b) = (self.text, self.text.as_bytes());
        let mut i = self.pos;
        loop {
            i += b
                .get(i..)
                .map_or(0, |r| span(r, |c| class(c) == Class::Space));
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Ok(None);
            };
            if c == b'\n' && self.layout {
                self.pos = i + 1;
                return Ok(Some((i, Tok::Newline)));
            }
            if c == b'\n' {
                i += 1;
                continue;
            }
            if c != b'#' {
                break;
            }
            let end = b
                .get(i..)
                .and_then(|r| find2(r, b'\n', 0))
                .map_or(b.len(), |p| i + p);
            if self.layout {
                self.pos = end;
                return Ok(Some((i, Tok::Comment(text.get(i..end).unwrap_or("")))));
            }
            i = end;
        }
        let start = i;
        let value = std::mem::take(&mut self.value_next);
        let Some(&c) = b.get(i) else {
            self.pos = i;
            return Ok(None);
        };
        let single = |t| (t, start + 1);
        let (tok, end) = match c {
            0 => {
                self.pos = i;
                return Ok(None);
            }
            b'=' => single(Tok::Eq),
            b'{' => single(Tok::Open),
            b'}' => single(Tok::Close),
            b'[' => single(Tok::LBracket),
            b']' => single(Tok::RBracket),
            b',' => single(Tok::Comma),
            b'"' => {
                let from = i + 1;
                let mut j = from;
                let mut escaped = false;
                loop {
                    // A NUL ends the text, so it ends an open string too.
                    let p = b
                        .get(j..)
                        .and_then(|r| find3(r, b'"', b'\\', 0))
                        .ok_or(LexError { at: start })?;
                    j += p;
                    match b.get(j) {
                        Some(b'"') => break,
                        // A backslash: the char after it is taken as is (its
                        // other bytes, if multi-byte, are never special).
                        Some(b'\\') if b.get(j + 1).is_some_and(|&n| n != 0) => {
                            escaped |= matches!(b.get(j + 1), Some(b'"' | b'\\'));
                            j += 2;
                        }
                        _ => return Err(LexError { at: start }),
                    }
                }
                let raw = text.get(from..j).ok_or(LexError { at: start })?;
                let s = if escaped {
                    Cow::Owned(unescape(raw))
                } else {
                    Cow::Borrowed(raw)
                };
                (Tok::Str(s), j + 1)
            }
            b'\'' => {
                let from = i + 1;
                let p = b
                    .get(from..)
                    .and_then(|r| find2(r, b'\'', 0))
                    .ok_or(LexError { at: start })?;
                if b.get(from + p) != Some(&b'\'') {
                    return Err(LexError { at: start });
                }
                let s = text.get(from..from + p).ok_or(LexError { at: start })?;
                (Tok::Str(Cow::Borrowed(s)), from + p + 1)
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' if value => {
                let mut float = c == b'.';
                let mut j = i + 1;
                while let Some(&n) = b.get(j) {
                    if n == b'.' && !float {
                        float = true;
                    } else if !n.is_ascii_digit() {
                        break;
                    }
                    j += 1;
                }
                // Stops only at ASCII bytes: on char boundaries.
                let s = text.get(i..j).unwrap_or("");
                (if float { Tok::Float(s) } else { Tok::Int(s) }, j)
            }
            _ => {
                let j = i + b
                    .get(i..)
                    .map_or(0, |r| span(r, |c| class(c) == Class::Word));
                (Tok::Word(text.get(i..j).unwrap_or("")), j)
            }
        };
        self.value_next = matches!(tok, Tok::Eq | Tok::LBracket | Tok::Comma);
        self.pos = end;
        Ok(Some((start, tok)))
    }
}

/// What a byte is to the lexer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Part of a word.
    Word,
    /// Whitespace other than a newline.
    Space,
    /// Ends a word: a newline, `#`, `=`, a brace, or NUL.
    Stop,
}

const CLASSES: [Class; 256] = {
    let mut t = [Class::Word; 256];
    let space = b"\t\x0b\x0c\r ";
    let mut i = 0;
    while i < space.len() {
        t[space[i] as usize] = Class::Space;
        i += 1;
    }
    let stop = b"\n#={}\0";
    let mut i = 0;
    while i < stop.len() {
        t[stop[i] as usize] = Class::Stop;
        i += 1;
    }
    t
};

fn class(c: u8) -> Class {
    CLASSES[usize::from(c)]
}

/// An integer as `strtoll(s, _, 0)` reads LVM's tokens: optional sign,
/// decimal, or octal with a leading 0.
pub(crate) fn parse_int(tok: &str) -> Option<i64> {
    let (neg, digits) = match tok.as_bytes().first()? {
        b'-' => (true, tok.get(1..)?),
        b'+' => (false, tok.get(1..)?),
        _ => (false, tok),
    };
    if digits.is_empty() {
        return None;
    }
    let radix = if digits.len() > 1 && digits.starts_with('0') {
        8
    } else {
        10
    };
    let mag = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -mag } else { mag }).ok()
}

/// How many bytes at the start of `r` satisfy `f`.
#[inline(always)]
fn span(r: &[u8], f: impl Fn(u8) -> bool) -> usize {
    r.iter().position(|&c| !f(c)).unwrap_or(r.len())
}

/// A `"` string's contents with `\"` and `\\` read as `"` and `\`, as
/// libdm's `dm_unescape_double_quotes`.
fn unescape(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match (c, it.peek()) {
            ('\\', Some(&n @ ('"' | '\\'))) => {
                s.push(n);
                it.next();
            }
            (c, _) => s.push(c),
        }
    }
    s
}

/// The index of the first `a` or `b` in `s`, eight bytes at a time.
pub(crate) fn find2(s: &[u8], a: u8, b: u8) -> Option<usize> {
    find3(s, a, b, b)
}

/// The index of the first `a`, `b` or `c` in `s`, eight bytes at a time.
pub(crate) fn find3(s: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    const LO: u64 = u64::from_ne_bytes([0x01; 8]);
    const HI: u64 = u64::from_ne_bytes([0x80; 8]);
    let (ma, mb, mc) = (LO * u64::from(a), LO * u64::from(b), LO * u64::from(c));
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI != 0;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for ch in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(ch);
        let w = u64::from_ne_bytes(w);
        if has_zero(w ^ ma) || has_zero(w ^ mb) || has_zero(w ^ mc) {
            break;
        }
        at += 8;
    }
    s.get(at..)?
        .iter()
        .position(|&x| x == a || x == b || x == c)
        .map(|p| at + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Result<Vec<Tok<'_>>, LexError> {
        let mut lx = Lexer::new(text);
        let mut v = Vec::new();
        while let Some((_, t)) = lx.next()? {
            v.push(t);
        }
        Ok(v)
    }

    #[test]
    fn reads_as_lvm_does() {
        use Tok::*;
        assert_eq!(
            toks("a = 'x\\y' b = \"p\\\"q\\\\r\\n\" c = [1, -2.5, .5] d = 12ab").unwrap(),
            vec![
                Word("a"),
                Eq,
                Str("x\\y".into()),
                Word("b"),
                Eq,
                Str("p\"q\\r\\n".into()),
                Word("c"),
                Eq,
                LBracket,
                Int("1"),
                Comma,
                Float("-2.5"),
                Comma,
                Float(".5"),
                RBracket,
                Word("d"),
                Eq,
                Int("12"),
                Word("ab"),
            ]
        );
        // Numbers only where a value may stand; words run over [ ] , ".
        assert_eq!(
            toks("12 = x[1],\"y\" #c\n\u{b}-z").unwrap(),
            vec![Word("12"), Eq, Word("x[1],\"y\""), Word("-z")]
        );
        // Unicode spaces are word chars; NUL ends the text.
        assert_eq!(
            toks("a\u{a0}b c\0d").unwrap(),
            vec![Word("a\u{a0}b"), Word("c")]
        );
        for open in ["\"abc", "'abc", "\"a\\", "\"a\0\"", "x = 'a\0'"] {
            assert!(toks(open).is_err(), "{open:?}");
        }
    }

    #[test]
    fn layout_mode_reports_comments_and_newlines() {
        let mut lx = Lexer::with_layout("a = 1 # one\n\n# two");
        let mut v = Vec::new();
        while let Some(t) = lx.next().unwrap() {
            v.push(t);
        }
        use Tok::*;
        assert_eq!(
            v,
            vec![
                (0, Word("a")),
                (2, Eq),
                (4, Int("1")),
                (6, Comment("# one")),
                (11, Newline),
                (12, Newline),
                (13, Comment("# two")),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn find3_finds_the_first(s in proptest::collection::vec(proptest::sample::select(vec![b'a', b'"', b'\\', 0, 0xc3, 0x22 ^ 0x80]), 0..40)) {
            let want = s.iter().position(|&c| c == b'"' || c == b'\\' || c == 0);
            proptest::prop_assert_eq!(find3(&s, b'"', b'\\', 0), want);
        }
    }
}
