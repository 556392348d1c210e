//! LVM2 metadata text as a lossless tree.
//!
//! The text LVM keeps in a metadata area (and writes with `vgcfgbackup`) is
//! its config format: sections `name { ... }`, assignments `key = value`
//! whose value is a string, an integer, a float or an array `[ ... ]` of
//! those, and `#` comments. [`Document::parse`] reads it into a tree that
//! keeps every section, key, comment and blank line in order, so what lvsnap
//! does not model (raid, cache, tags, profiles, unknown flags) is written
//! back as it was. [`Document::to_text`] writes it in either of LVM's two
//! layouts ([`Style`]).
//!
//! The tokens are libdm's (the crate's one tokenizer, shared with the scan's
//! summary); arrays may leave out their commas.

use super::lexer::{LexError, Lexer, Tok, find2, parse_int};
use crate::error::ErrorKind;

/// Largest text accepted: far beyond any real metadata area.
pub const MAX_TEXT_LEN: usize = 256 << 20;
/// Deepest section nesting accepted (LVM itself needs 5).
pub const MAX_DEPTH: usize = 64;

/// Why a metadata text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The text is not well-formed.
    #[error("metadata text: line {line}: {what}")]
    Syntax {
        /// 1-based line of the offending token.
        line: usize,
        /// What was wrong there.
        what: String,
    },
    /// Sections nest deeper than [`MAX_DEPTH`].
    #[error("metadata text: line {line}: sections nested deeper than {MAX_DEPTH}")]
    TooDeep {
        /// 1-based line where the limit was crossed.
        line: usize,
    },
    /// The text is longer than [`MAX_TEXT_LEN`].
    #[error("metadata text of {0} bytes is larger than the {MAX_TEXT_LEN}-byte limit")]
    TooLarge(usize),
}

impl ParseError {
    /// The kind of this error: always [`ErrorKind::Corrupt`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Corrupt
    }
}

/// One value of an assignment or one element of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// An integer (LVM's are 64-bit signed).
    Int(i64),
    /// A floating-point number, kept as written so it survives unchanged.
    Float(String),
    /// A string (unescaped).
    Str(String),
}

impl Scalar {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Scalar::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Scalar::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar::Str(s.to_owned())
    }
}

impl From<i64> for Scalar {
    fn from(i: i64) -> Self {
        Scalar::Int(i)
    }
}

/// An array value, with the line layout it was written in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// The elements.
    pub items: Vec<Scalar>,
    /// `None`: written on one line (`["READ", "WRITE"]`); `Some(n)`: one
    /// element group per line, as LVM writes `stripes`, with the number of
    /// elements on each line.
    pub lines: Option<Vec<usize>>,
}

impl Array {
    /// A one-line array.
    pub fn inline(items: Vec<Scalar>) -> Self {
        Array { items, lines: None }
    }

    /// A multi-line array with `per_line` elements per line (`stripes`).
    pub fn multiline(items: Vec<Scalar>, per_line: usize) -> Self {
        let per_line = per_line.max(1);
        let mut lines = vec![per_line; items.len() / per_line];
        if !items.len().is_multiple_of(per_line) {
            lines.push(items.len() % per_line);
        }
        Array {
            items,
            lines: Some(lines),
        }
    }

    /// The elements as strings, if all are strings.
    pub fn strings(&self) -> Option<Vec<&str>> {
        self.items.iter().map(Scalar::as_str).collect()
    }
}

/// The right-hand side of an assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A single value.
    Scalar(Scalar),
    /// An array.
    Array(Array),
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Self {
        Value::Scalar(Scalar::Str(s.into()))
    }

    /// An integer value.
    pub fn int(i: i64) -> Self {
        Value::Scalar(Scalar::Int(i))
    }

    /// A one-line array of strings (`status = ["READ", "WRITE"]`).
    pub fn strings<S: AsRef<str>>(items: &[S]) -> Self {
        Value::Array(Array::inline(
            items
                .iter()
                .map(|s| Scalar::Str(s.as_ref().into()))
                .collect(),
        ))
    }

    /// The scalar, if this is not an array.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match self {
            Value::Scalar(s) => Some(s),
            Value::Array(_) => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            Value::Scalar(_) => None,
        }
    }
}

/// A comment at the end of a line, kept with the whitespace before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailing {
    /// The whitespace between the value and `#`.
    pub gap: String,
    /// The comment, starting with `#`.
    pub text: String,
}

/// `key = value`, with its end-of-line comment if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Assign {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// A comment after the value on the same line.
    pub comment: Option<Trailing>,
}

/// `name { ... }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section {
    /// The section's name.
    pub name: String,
    /// What is inside the braces.
    pub body: Body,
}

impl Section {
    /// An empty section.
    pub fn new(name: impl Into<String>) -> Self {
        Section {
            name: name.into(),
            body: Body::default(),
        }
    }
}

/// One line-level item of a section's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// An empty line.
    Blank,
    /// A line holding only a comment (starting with `#`).
    Comment(String),
    /// An assignment.
    Assign(Assign),
    /// A nested section.
    Section(Section),
}

/// The ordered contents of a section (or of the whole text).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    /// The entries, in text order.
    pub entries: Vec<Entry>,
}

impl Body {
    /// The value of `key` (the first, as LVM uses the first of duplicates).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find_map(|e| match e {
            Entry::Assign(a) if a.key == key => Some(&a.value),
            _ => None,
        })
    }

    /// The integer value of `key`.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.get(key)?.as_scalar()?.as_int()
    }

    /// The string value of `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_scalar()?.as_str()
    }

    /// The array value of `key`.
    pub fn array(&self, key: &str) -> Option<&Array> {
        self.get(key)?.as_array()
    }

    /// The string array value of `key` (`status`, `flags`, `tags`).
    pub fn strings(&self, key: &str) -> Option<Vec<&str>> {
        self.array(key)?.strings()
    }

    /// The subsection `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections().find(|s| s.name == name)
    }

    /// The subsection `name`, mutably.
    pub fn section_mut(&mut self, name: &str) -> Option<&mut Section> {
        self.sections_mut().find(|s| s.name == name)
    }

    /// All subsections in order.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Section(s) => Some(s),
            _ => None,
        })
    }

    /// All subsections in order, mutably.
    pub fn sections_mut(&mut self) -> impl Iterator<Item = &mut Section> {
        self.entries.iter_mut().filter_map(|e| match e {
            Entry::Section(s) => Some(s),
            _ => None,
        })
    }

    /// Sets `key` to `value`: in place (keeping its comment unless the value
    /// changes) if present, else appended after the last assignment.
    pub fn set(&mut self, key: &str, value: Value) {
        for e in &mut self.entries {
            if let Entry::Assign(a) = e {
                if a.key == key {
                    if a.value != value {
                        a.value = value;
                        a.comment = None;
                    }
                    return;
                }
            }
        }
        let at = self
            .entries
            .iter()
            .rposition(|e| matches!(e, Entry::Assign(_)))
            .map_or(0, |i| i + 1);
        self.entries.insert(
            at,
            Entry::Assign(Assign {
                key: key.to_owned(),
                value,
                comment: None,
            }),
        );
    }

    /// Appends `key = value` at the end.
    pub fn push(&mut self, key: &str, value: Value) {
        self.entries.push(Entry::Assign(Assign {
            key: key.to_owned(),
            value,
            comment: None,
        }));
    }

    /// Removes every assignment of `key`; true if one was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|e| !matches!(e, Entry::Assign(a) if a.key == key));
        before != self.entries.len()
    }

    /// Removes the subsection `name` with the blank line before it, if any;
    /// returns it.
    pub fn remove_section(&mut self, name: &str) -> Option<Section> {
        let i = self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Section(s) if s.name == name))?;
        let Entry::Section(s) = self.entries.remove(i) else {
            return None;
        };
        if i > 0 && matches!(self.entries.get(i - 1), Some(Entry::Blank)) {
            self.entries.remove(i - 1);
        }
        Some(s)
    }
}

/// A whole metadata text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    /// The top level: header comment, the VG section, `contents`,
    /// `version`, `description`, `creation_host`, `creation_time`.
    pub root: Body,
}

/// Which of LVM's two layouts to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As `vgcfgbackup` writes a file: tab indentation and end-of-line
    /// comments (`# 8 Megabytes`, `# Hint only`).
    File,
    /// As LVM writes a metadata area: no indentation, no end-of-line
    /// comments inside the VG section (the top-level ones are kept).
    Raw,
}

impl Document {
    /// Parses a metadata text.
    ///
    /// ```
    /// use lvsnap::lvm::text::{Document, Style};
    /// let text = "vg {\n\tseqno = 3\n\tstatus = [\"READ\", \"WRITE\"]\n}\n";
    /// let doc = Document::parse(text)?;
    /// assert_eq!(doc.root.section("vg").unwrap().body.int("seqno"), Some(3));
    /// assert_eq!(doc.to_text(Style::File), text);
    /// # Ok::<(), lvsnap::lvm::text::ParseError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Document, ParseError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ParseError::TooLarge(text.len()));
        }
        let root = Parser::new(text, true).body(0)?;
        Ok(Document { root })
    }

    /// Parses a text only to read its values, as [`Document::parse`] does
    /// but without its comments and blank lines, so it cannot be written
    /// back as it was. For lvm.conf, which is mostly comments: keeping them
    /// costs an allocation a line, read on every open.
    ///
    /// ```
    /// use lvsnap::lvm::text::Document;
    /// let doc = Document::parse_values("# a comment\nglobal {\n\n  x = 1 # one\n}\n")?;
    /// let global = doc.root.section("global").unwrap();
    /// assert_eq!(global.body.int("x"), Some(1));
    /// assert_eq!(global.body.entries.len(), 1);
    /// # Ok::<(), lvsnap::lvm::text::ParseError>(())
    /// ```
    pub fn parse_values(text: &str) -> Result<Document, ParseError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(ParseError::TooLarge(text.len()));
        }
        let root = Parser::new(text, false).body(0)?;
        Ok(Document { root })
    }

    /// Writes the tree back as text in `style`.
    pub fn to_text(&self, style: Style) -> String {
        let mut out = String::with_capacity(4096);
        write_body(&mut out, &self.root, 0, style);
        out
    }

    /// The first top-level section: the volume group's.
    pub fn vg_section(&self) -> Option<&Section> {
        self.root.sections().next()
    }

    /// The first top-level section, mutably.
    pub fn vg_section_mut(&mut self) -> Option<&mut Section> {
        self.root.sections_mut().next()
    }
}

/// The lossless reader: LVM's tokens ([`super::lexer`]) with their layout.
struct Parser<'a> {
    lx: Lexer<'a>,
    peeked: Option<Option<(usize, Tok<'a>)>>,
    /// Newlines are counted up to `line_pos`, which is on line `line`.
    line_pos: usize,
    line: usize,
}

impl<'a> Parser<'a> {
    /// With `layout`, comments and newlines are kept in the tree.
    fn new(text: &'a str, layout: bool) -> Self {
        Parser {
            lx: if layout {
                Lexer::with_layout(text)
            } else {
                Lexer::new(text)
            },
            peeked: None,
            line_pos: 0,
            line: 1,
        }
    }

    /// The 1-based line of byte `at`, counted on from the last asked.
    fn line_at(&mut self, at: usize) -> usize {
        let b = self.lx.text().as_bytes();
        if at < self.line_pos {
            (self.line_pos, self.line) = (0, 1);
        }
        let seen = b.get(self.line_pos..at).unwrap_or(&[]);
        self.line += seen.iter().filter(|&&c| c == b'\n').count();
        self.line_pos = at;
        self.line
    }

    fn err(&mut self, at: usize, what: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            line: self.line_at(at),
            what: what.into(),
        }
    }

    fn peek(&mut self) -> Result<Option<&(usize, Tok<'a>)>, ParseError> {
        if self.peeked.is_none() {
            let t = match self.lx.next() {
                Ok(t) => t,
                Err(e) => return Err(self.err(e.at, LexError::WHAT)),
            };
            self.peeked = Some(t);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn bump(&mut self) -> Result<Option<(usize, Tok<'a>)>, ParseError> {
        self.peek()?;
        Ok(self.peeked.take().flatten())
    }

    /// Skips newlines and comments (inside a statement or an array).
    fn skip_layout(&mut self) -> Result<(), ParseError> {
        while let Some((_, Tok::Newline | Tok::Comment(_))) = self.peek()? {
            self.bump()?;
        }
        Ok(())
    }

    /// Where the text ends (for errors there).
    fn end(&self) -> usize {
        self.lx.pos()
    }

    fn body(&mut self, depth: usize) -> Result<Body, ParseError> {
        if depth > MAX_DEPTH {
            let at = self.end();
            return Err(ParseError::TooDeep {
                line: self.line_at(at),
            });
        }
        let mut body = Body::default();
        // A nested body starts on the line of its `{`, the top level on a fresh line.
        let mut at_line_start = depth == 0;
        loop {
            let gap_start = self.lx.pos();
            match self.peek()? {
                None => {
                    if depth > 0 {
                        let at = self.end();
                        return Err(self.err(at, "unexpected end of text: missing '}'"));
                    }
                    return Ok(body);
                }
                Some((_, Tok::Newline)) => {
                    self.bump()?;
                    if at_line_start {
                        body.entries.push(Entry::Blank);
                    }
                    at_line_start = true;
                }
                Some(&(at, Tok::Comment(text))) => {
                    self.bump()?;
                    match body.entries.last_mut() {
                        Some(Entry::Assign(a)) if !at_line_start && a.comment.is_none() => {
                            let gap = self.lx.text().get(gap_start..at).unwrap_or("").to_owned();
                            a.comment = Some(Trailing {
                                gap,
                                text: text.to_owned(),
                            });
                        }
                        _ if at_line_start => body.entries.push(Entry::Comment(text.to_owned())),
                        // A comment after `{` or `}`: LVM never writes one; dropped.
                        _ => {}
                    }
                    at_line_start = false;
                }
                Some(&(at, Tok::Close)) => {
                    if depth == 0 {
                        return Err(self.err(at, "unexpected '}'"));
                    }
                    self.bump()?;
                    return Ok(body);
                }
                Some(_) => {
                    let entry = self.statement(depth)?;
                    body.entries.push(entry);
                    at_line_start = false;
                }
            }
        }
    }

    fn statement(&mut self, depth: usize) -> Result<Entry, ParseError> {
        let (at, tok) = self.bump()?.ok_or_else(|| {
            let at = self.end();
            self.err(at, "unexpected end of text")
        })?;
        let key = match tok {
            Tok::Word(w) => w.to_owned(),
            Tok::Str(s) if !s.is_empty() => s.into_owned(),
            Tok::Str(_) => return Err(self.err(at, "empty key")),
            t => {
                let what = format!("unexpected {} where a key was expected", describe(&t));
                return Err(self.err(at, what));
            }
        };
        self.skip_layout()?;
        match self.bump()? {
            Some((_, Tok::Open)) => {
                let body = self.body(depth + 1)?;
                Ok(Entry::Section(Section { name: key, body }))
            }
            Some((_, Tok::Eq)) => {
                self.skip_layout()?;
                let value = self.value()?;
                Ok(Entry::Assign(Assign {
                    key,
                    value,
                    comment: None,
                }))
            }
            other => {
                let at = other.map_or(self.end(), |(at, _)| at);
                Err(self.err(at, format!("expected '=' or '{{' after '{key}'")))
            }
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let Some(&(open_at, Tok::LBracket)) = self.peek()? else {
            return Ok(Value::Scalar(self.scalar()?));
        };
        self.bump()?;
        let first_line = self.line_at(open_at);
        let mut items = Vec::new();
        let mut lines = Vec::new();
        let mut line_of_last = first_line;
        loop {
            self.skip_layout()?;
            match self.peek()? {
                Some((_, Tok::RBracket)) => {
                    self.bump()?;
                    break;
                }
                None => {
                    let at = self.end();
                    return Err(self.err(at, "unexpected end of text in array"));
                }
                Some(&(at, _)) => {
                    let item_line = self.line_at(at);
                    items.push(self.scalar()?);
                    if item_line != line_of_last || lines.is_empty() {
                        lines.push(0usize);
                        line_of_last = item_line;
                    }
                    if let Some(n) = lines.last_mut() {
                        *n += 1;
                    }
                    // Items without a comma between them are read too.
                    self.lx.expect_value();
                    self.skip_layout()?;
                    if let Some((_, Tok::Comma)) = self.peek()? {
                        self.bump()?;
                    }
                }
            }
        }
        let close = self.lx.pos();
        let multiline = self.line_at(close) != first_line;
        Ok(Value::Array(Array {
            items,
            lines: multiline.then_some(lines),
        }))
    }

    fn scalar(&mut self) -> Result<Scalar, ParseError> {
        let Some((at, tok)) = self.bump()? else {
            let at = self.end();
            return Err(self.err(at, "expected a value"));
        };
        match tok {
            Tok::Str(s) => Ok(Scalar::Str(s.into_owned())),
            Tok::Word(w) => Ok(Scalar::Str(w.to_owned())),
            Tok::Int(t) => parse_int(t)
                .map(Scalar::Int)
                .ok_or_else(|| self.err(at, format!("bad integer '{t}'"))),
            Tok::Float(t) => t
                .parse::<f64>()
                .map(|_| Scalar::Float(t.to_owned()))
                .map_err(|_| self.err(at, format!("bad number '{t}'"))),
            _ => Err(self.err(at, "expected a value")),
        }
    }
}

/// A token as an error message names it.
fn describe(t: &Tok<'_>) -> &'static str {
    match t {
        Tok::Eq => "'='",
        Tok::Open => "'{'",
        Tok::Close => "'}'",
        Tok::LBracket => "'['",
        Tok::RBracket => "']'",
        Tok::Comma => "','",
        Tok::Int(_) | Tok::Float(_) => "a number",
        Tok::Str(_) | Tok::Word(_) => "a word",
        Tok::Comment(_) | Tok::Newline => "a comment",
    }
}

#[cfg(test)]
mod tests;
mod write;

use write::*;
