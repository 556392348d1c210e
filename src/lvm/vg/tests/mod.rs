//! Unit tests of the typed view and its edits, by topic: `read` (the view
//! and damage), `as_lvm` (texts as LVM writes them), `edits` (changes and
//! their undo), `ranges` (on-disk integers past LVM's types).

use super::*;

mod as_lvm;
mod edits;
mod ranges;
mod read;

fn fixture(name: &str) -> Metadata {
    let path = format!("{}/tests/fixtures/{name}.vg", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Metadata::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn creation() -> Creation {
    Creation {
        time: 1_700_000_000,
        host: "testhost".into(),
    }
}

/// Strips what every write changes (seqno, header times/description) so
/// texts can be compared.
fn normalize(text: &str) -> String {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("seqno")
                || t.starts_with("# Generated")
                || t.starts_with("description")
                || (l.starts_with("creation_")))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replays LVM's own changes between two fixtures: what lvsnap writes must
/// be what LVM wrote, apart from ids and times.
fn same_apart_from_ids_and_times(ours: &str, lvm: &str) {
    let strip = |t: &str| -> String {
        normalize(t)
            .lines()
            .filter(|l| {
                let t = l.trim_start();
                !(t.starts_with("id =")
                    || t.starts_with("creation_time")
                    || t.starts_with("creation_host"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (a, b) = (strip(ours), strip(lvm));
    if a != b {
        for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
            assert_eq!(x, y, "first difference at line {i}");
        }
        assert_eq!(a.lines().count(), b.lines().count());
    }
}

fn raw_lvm(name: &str) -> String {
    fixture(name).to_text(Style::Raw)
}

/// Text of LV `name`'s section, as written.
fn lv_text(md: &Metadata, name: &str) -> String {
    let s = md
        .document()
        .vg_section()
        .and_then(|v| v.body.section("logical_volumes"))
        .and_then(|l| l.body.section(name))
        .unwrap_or_else(|| panic!("no LV {name}"));
    let doc = Document {
        root: Body {
            entries: vec![Entry::Section(s.clone())],
        },
    };
    doc.to_text(Style::File)
}

/// A metadata text of about `lvs` LVs of two segments each, as LVM writes it.
/// The linear fixture with `lvs` more copies of LV `lin`, each with its own
/// id and its own extents on a PV made large enough for them all.
fn big_text(lvs: usize) -> String {
    let md = fixture("linear");
    let pe_count = 63 + 2 * lvs;
    let base = md.to_text(Style::File).replacen(
        "dev_size = 524288\t# 256 Megabytes\n\t\t\tpe_start = 2048\n\t\t\tpe_count = 63\t# 252 Megabytes\n\t\t}\n\t}",
        &format!(
            "dev_size = {}\n\t\t\tpe_start = 2048\n\t\t\tpe_count = {pe_count}\n\t\t}}\n\t}}",
            2048 + 8192 * pe_count
        ),
        1,
    );
    assert!(base.contains(&format!("pe_count = {pe_count}\n")), "{base}");
    let lv = lv_text(&md, "lin");
    let mut extra = String::new();
    for i in 0..lvs {
        extra.push('\n');
        extra.push_str(
            &lv.replacen("lin {", &format!("lv{i} {{"), 1)
                .replacen("SOd4-yoTu1r", &format!("SOd4-{i:06}"), 1)
                .replacen("\"pv0\", 0", &format!("\"pv1\", {}", 2 * i), 1),
        );
    }
    // Before the closing brace of logical_volumes, the last "\t}\n".
    let at = base.rfind("\t}\n").unwrap();
    format!("{}{extra}{}", &base[..at], &base[at..])
}
