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
        let root = Parser::new(text).body(0)?;
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
    fn new(text: &'a str) -> Self {
        Parser {
            lx: Lexer::with_layout(text),
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

fn indent(out: &mut String, depth: usize, style: Style) {
    const TABS: &str = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    if style == Style::File {
        let mut left = depth;
        while left > 0 {
            let n = left.min(TABS.len());
            out.push_str(TABS.get(..n).unwrap_or(""));
            left -= n;
        }
    }
}

fn write_body(out: &mut String, body: &Body, depth: usize, style: Style) {
    for e in &body.entries {
        match e {
            Entry::Blank => out.push('\n'),
            Entry::Comment(c) => {
                indent(out, depth, style);
                out.push_str(c);
                out.push('\n');
            }
            Entry::Assign(a) => {
                indent(out, depth, style);
                write_key(out, &a.key);
                out.push_str(" = ");
                write_value(out, &a.value, depth, style);
                // LVM's top-level comments are literal text, kept in both styles.
                if let Some(c) = a
                    .comment
                    .as_ref()
                    .filter(|_| style == Style::File || depth == 0)
                {
                    out.push_str(&c.gap);
                    out.push_str(&c.text);
                }
                out.push('\n');
            }
            Entry::Section(s) => {
                indent(out, depth, style);
                write_key(out, &s.name);
                out.push_str(" {\n");
                write_body(out, &s.body, depth + 1, style);
                indent(out, depth, style);
                out.push_str("}\n");
            }
        }
    }
}

/// Bytes a bare word cannot hold (libdm ends a word at whitespace or a
/// delimiter).
const NOT_BARE: [bool; 256] = {
    let mut t = [false; 256];
    let stops = b" \t\n\x0b\x0c\r#={}[],\"\0";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

/// Keys as LVM writes them (bare), quoted only if a bare word could not
/// hold them, so whatever was read can be written back.
fn write_key(out: &mut String, key: &str) {
    let b = key.as_bytes();
    let bare =
        b.first().is_some_and(|&c| c != b'\'') && !b.iter().any(|&c| NOT_BARE[usize::from(c)]);
    if bare {
        out.push_str(key);
    } else {
        write_str(out, key);
    }
}

fn write_value(out: &mut String, v: &Value, depth: usize, style: Style) {
    match v {
        Value::Scalar(s) => write_scalar(out, s),
        Value::Array(a) => match &a.lines {
            None => {
                out.push('[');
                for (i, s) in a.items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_scalar(out, s);
                }
                out.push(']');
            }
            Some(lines) => {
                out.push_str("[\n");
                let mut items = a.items.iter().peekable();
                // Lines the layout does not cover (it was edited) go one per line.
                let extra = a.items.len().saturating_sub(lines.iter().sum());
                let counts = lines.iter().copied().chain(std::iter::repeat_n(1, extra));
                for n in counts {
                    if items.peek().is_none() {
                        break;
                    }
                    indent(out, depth + 1, style);
                    for i in 0..n {
                        let Some(s) = items.next() else { break };
                        if i > 0 {
                            out.push_str(", ");
                        }
                        write_scalar(out, s);
                    }
                    if items.peek().is_some() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                indent(out, depth, style);
                out.push(']');
            }
        },
    }
}

fn write_scalar(out: &mut String, s: &Scalar) {
    match s {
        Scalar::Int(i) => write_int(out, *i),
        Scalar::Float(f) => out.push_str(f),
        Scalar::Str(s) => write_str(out, s),
    }
}

/// `"s"` with `"` and `\` escaped.
fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut rest = s;
    // Escapes are rare: copy the runs between them whole.
    while let Some(i) = find2(rest.as_bytes(), b'"', b'\\') {
        // Both are ASCII, so the split is on a char boundary.
        let (Some(run), Some(esc), Some(tail)) =
            (rest.get(..i), rest.get(i..=i), rest.get(i + 1..))
        else {
            break;
        };
        out.push_str(run);
        out.push('\\');
        out.push_str(esc);
        rest = tail;
    }
    out.push_str(rest);
    out.push('"');
}

/// An integer in decimal, as `{i}` formats it, without `fmt`'s machinery.
fn write_int(out: &mut String, i: i64) {
    if i < 0 {
        out.push('-');
    }
    let mut n = i.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    while at > 0 {
        at -= 1;
        if let Some(d) = buf.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in buf.get(at..).unwrap_or(&[]) {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &[(&str, &str)] = &[
        ("linear", include_str!("../../tests/fixtures/linear.vg")),
        ("multiseg", include_str!("../../tests/fixtures/multiseg.vg")),
        ("twopv", include_str!("../../tests/fixtures/twopv.vg")),
        ("tags", include_str!("../../tests/fixtures/tags.vg")),
        ("cow", include_str!("../../tests/fixtures/cow.vg")),
        ("merging", include_str!("../../tests/fixtures/merging.vg")),
        ("thinpool", include_str!("../../tests/fixtures/thinpool.vg")),
        ("thin", include_str!("../../tests/fixtures/thin.vg")),
        ("thinsnap", include_str!("../../tests/fixtures/thinsnap.vg")),
        (
            "thinsnap2",
            include_str!("../../tests/fixtures/thinsnap2.vg"),
        ),
    ];

    /// The metadata text as pvck printed it from the metadata area.
    fn ondisk() -> String {
        let dump = include_str!("../../tests/fixtures/ondisk-metadata.txt");
        let mut parts = dump.split("  ---\n");
        let _head = parts.next();
        parts.next().unwrap_or_default().to_owned()
    }

    #[test]
    fn file_texts_round_trip_byte_for_byte() {
        for (name, text) in FIXTURES {
            let doc = Document::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&doc.to_text(Style::File), text, "{name}");
        }
    }

    #[test]
    fn raw_text_round_trips_byte_for_byte() {
        let text = ondisk();
        assert!(
            text.starts_with("vg {\n"),
            "fixture shape: {:?}",
            &text[..20]
        );
        let doc = Document::parse(&text).unwrap();
        assert_eq!(doc.to_text(Style::Raw), text);
    }

    #[test]
    fn file_and_raw_texts_hold_the_same_tree_apart_from_comments() {
        // A file text written raw parses back to the same values.
        for (name, text) in FIXTURES {
            let doc = Document::parse(text).unwrap();
            let raw = doc.to_text(Style::Raw);
            let again = Document::parse(&raw).unwrap();
            assert_eq!(again.to_text(Style::Raw), raw, "{name}");
            let vg = again.vg_section().unwrap();
            assert_eq!(vg.body, strip_comments(&doc.vg_section().unwrap().body));
        }
    }

    fn strip_comments(b: &Body) -> Body {
        Body {
            entries: b
                .entries
                .iter()
                .map(|e| match e {
                    Entry::Assign(a) => Entry::Assign(Assign {
                        comment: None,
                        ..a.clone()
                    }),
                    Entry::Section(s) => Entry::Section(Section {
                        name: s.name.clone(),
                        body: strip_comments(&s.body),
                    }),
                    other => other.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn values_are_typed() {
        let doc = Document::parse(FIXTURES[4].1).unwrap();
        let vg = &doc.vg_section().unwrap().body;
        assert_eq!(vg.int("extent_size"), Some(8192));
        assert_eq!(vg.str("format"), Some("lvm2"));
        assert_eq!(
            vg.strings("status"),
            Some(vec!["RESIZEABLE", "READ", "WRITE"])
        );
        assert_eq!(doc.root.str("contents"), Some("Text Format Volume Group"));
    }

    #[test]
    fn lexical_corners() {
        let text = "a = -5\nb = 'x\"y'\nc = \"q\\\"\\\\\"\nd = [1 2, \"s\"]\ne = 0.5\nf = bare\ng = 010\nh = []\n";
        let doc = Document::parse(text).unwrap();
        let r = &doc.root;
        assert_eq!(r.int("a"), Some(-5));
        assert_eq!(r.str("b"), Some("x\"y"));
        assert_eq!(r.str("c"), Some("q\"\\"));
        assert_eq!(
            r.array("d").unwrap().items,
            vec![Scalar::Int(1), Scalar::Int(2), Scalar::Str("s".into())]
        );
        assert_eq!(
            r.get("e"),
            Some(&Value::Scalar(Scalar::Float("0.5".into())))
        );
        assert_eq!(r.str("f"), Some("bare"));
        assert_eq!(r.int("g"), Some(8));
        assert_eq!(r.array("h").unwrap().items, vec![]);
        // Strings are re-escaped on output and read back the same.
        let again = Document::parse(&doc.to_text(Style::File)).unwrap();
        assert_eq!(again.root.str("c"), Some("q\"\\"));
        assert_eq!(again.root.str("b"), Some("x\"y"));
    }

    #[test]
    fn garbage_gives_errors_not_panics() {
        for bad in [
            "vg {",
            "vg { a = }",
            "}",
            "a = \"unterminated",
            "a = [1, 2",
            "= 3",
            "a b",
            "a = 99999999999999999999",
            "a = -",
            "a = {",
            "vg { x = [ { ] }",
            "a = 'x",
        ] {
            let e = Document::parse(bad).expect_err(bad);
            assert_eq!(e.kind(), ErrorKind::Corrupt);
            assert!(e.to_string().starts_with("metadata text"), "{e}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        let deep = "a {".repeat(MAX_DEPTH + 2) + &"}".repeat(MAX_DEPTH + 2);
        assert!(matches!(
            Document::parse(&deep),
            Err(ParseError::TooDeep { .. })
        ));
        let ok = "a {".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        assert!(Document::parse(&ok).is_ok());
    }

    #[test]
    fn errors_name_the_line() {
        let e = Document::parse("vg {\n\ta = 1\n\tb = ]\n}\n").unwrap_err();
        assert_eq!(e.to_string(), "metadata text: line 3: expected a value");
    }

    #[test]
    fn set_keeps_position_and_drops_stale_comment() {
        let mut doc = Document::parse(FIXTURES[0].1).unwrap();
        let vg = &mut doc.vg_section_mut().unwrap().body;
        let seq = vg.int("seqno").unwrap();
        vg.set("seqno", Value::int(seq + 1));
        let text = doc.to_text(Style::File);
        let orig = FIXTURES[0].1;
        assert_eq!(
            text,
            orig.replace(
                &format!("seqno = {seq}\n"),
                &format!("seqno = {}\n", seq + 1)
            )
        );
    }

    #[test]
    fn scalars_are_written_as_fmt_would() {
        for i in [0, 1, -1, 9, 10, -10, 4096, i64::MAX, i64::MIN, i64::MIN + 1] {
            let mut out = String::new();
            write_int(&mut out, i);
            assert_eq!(out, i.to_string());
        }
        for s in [
            "",
            "a",
            "\"",
            "\\",
            "é\"x\\y€\"",
            "0123456789abcdef\\",
            "0123456789abcdefg",
        ] {
            let mut out = String::new();
            write_str(&mut out, s);
            let want: String = s
                .chars()
                .flat_map(|c| {
                    (c == '"' || c == '\\')
                        .then_some('\\')
                        .into_iter()
                        .chain([c])
                })
                .collect();
            assert_eq!(out, format!("\"{want}\""));
        }
    }

    proptest::proptest! {
        #[test]
        fn find2_finds_the_first(s in proptest::collection::vec(proptest::sample::select(vec![b'a', b'"', b'\\', 0xc3, 0x22 ^ 0x80]), 0..40)) {
            let want = s.iter().position(|&c| c == b'"' || c == b'\\');
            proptest::prop_assert_eq!(find2(&s, b'"', b'\\'), want);
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Edit {
            Truncate(usize),
            Flip(usize, u8),
            Insert(usize, &'static str),
            Remove(usize, usize),
        }

        fn edit() -> impl Strategy<Value = Edit> {
            prop_oneof![
                any::<usize>().prop_map(Edit::Truncate),
                (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
                (
                    any::<usize>(),
                    proptest::sample::select(vec![
                        "{",
                        "}",
                        "[",
                        "]",
                        "\"",
                        "=",
                        "#",
                        "\n",
                        ",",
                        "\\",
                        "-",
                        "'",
                        "\0",
                        "9999999999999999999999"
                    ])
                )
                    .prop_map(|(i, s)| Edit::Insert(i, s)),
                (any::<usize>(), 0usize..64).prop_map(|(i, n)| Edit::Remove(i, n)),
            ]
        }

        fn apply(text: &str, edits: &[Edit]) -> String {
            let mut b = text.as_bytes().to_vec();
            for e in edits {
                let len = b.len().max(1);
                match e {
                    Edit::Truncate(i) => b.truncate(i % len),
                    Edit::Flip(i, x) => {
                        if let Some(c) = b.get_mut(i % len) {
                            *c ^= x | 1;
                        }
                    }
                    Edit::Insert(i, s) => {
                        let at = (i % len).min(b.len());
                        b.splice(at..at, s.bytes());
                    }
                    Edit::Remove(i, n) => {
                        let at = (i % len).min(b.len());
                        let end = (at + n).min(b.len());
                        b.drain(at..end);
                    }
                }
            }
            String::from_utf8_lossy(&b).into_owned()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Mutated real metadata never panics the parser or the typed
            /// view, and whatever parses is written back to a fixed point.
            #[test]
            fn mutated_fixtures_never_panic(
                which in 0..FIXTURES.len(),
                edits in proptest::collection::vec(edit(), 1..6),
            ) {
                let text = apply(FIXTURES[which].1, &edits);
                if let Ok(doc) = Document::parse(&text) {
                    for style in [Style::File, Style::Raw] {
                        let out = doc.to_text(style);
                        let again = Document::parse(&out);
                        prop_assert!(again.is_ok(), "rewrite does not parse: {:?}", again);
                        if let Ok(again) = again {
                            prop_assert_eq!(again.to_text(style), out);
                        }
                    }
                }
                let _ = crate::lvm::vg::Metadata::parse(&text);
            }

            /// Arbitrary bytes: an error or a tree, never a panic.
            #[test]
            fn arbitrary_text_never_panics(s in "[ -~\n\t{}\\[\\]\"#=,]{0,200}") {
                if let Ok(doc) = Document::parse(&s) {
                    let out = doc.to_text(Style::File);
                    prop_assert!(Document::parse(&out).is_ok(), "{:?} -> {:?}", s, out);
                }
                let _ = crate::lvm::vg::Metadata::parse(&s);
            }
        }
    }
}
