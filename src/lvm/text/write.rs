//! Writing the tree back as text, in LVM's layouts.

use super::*;

pub(super) fn indent(out: &mut String, depth: usize, style: Style) {
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

pub(super) fn write_body(out: &mut String, body: &Body, depth: usize, style: Style) {
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
pub(super) fn write_key(out: &mut String, key: &str) {
    let b = key.as_bytes();
    let bare =
        b.first().is_some_and(|&c| c != b'\'') && !b.iter().any(|&c| NOT_BARE[usize::from(c)]);
    if bare {
        out.push_str(key);
    } else {
        write_str(out, key);
    }
}

pub(super) fn write_value(out: &mut String, v: &Value, depth: usize, style: Style) {
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

pub(super) fn write_scalar(out: &mut String, s: &Scalar) {
    match s {
        Scalar::Int(i) => write_int(out, *i),
        Scalar::Float(f) => out.push_str(f),
        Scalar::Str(s) => write_str(out, s),
    }
}

/// `"s"` with `"` and `\` escaped.
pub(super) fn write_str(out: &mut String, s: &str) {
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
pub(super) fn write_int(out: &mut String, i: i64) {
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
