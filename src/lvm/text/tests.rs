use super::*;

const FIXTURES: &[(&str, &str)] = &[
    ("linear", include_str!("../../../tests/fixtures/linear.vg")),
    (
        "multiseg",
        include_str!("../../../tests/fixtures/multiseg.vg"),
    ),
    ("twopv", include_str!("../../../tests/fixtures/twopv.vg")),
    ("tags", include_str!("../../../tests/fixtures/tags.vg")),
    ("cow", include_str!("../../../tests/fixtures/cow.vg")),
    (
        "merging",
        include_str!("../../../tests/fixtures/merging.vg"),
    ),
    (
        "thinpool",
        include_str!("../../../tests/fixtures/thinpool.vg"),
    ),
    ("thin", include_str!("../../../tests/fixtures/thin.vg")),
    (
        "thinsnap",
        include_str!("../../../tests/fixtures/thinsnap.vg"),
    ),
    (
        "thinsnap2",
        include_str!("../../../tests/fixtures/thinsnap2.vg"),
    ),
];

/// The metadata text as pvck printed it from the metadata area.
fn ondisk() -> String {
    let dump = include_str!("../../../tests/fixtures/ondisk-metadata.txt");
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

/// `b` as [`Document::parse_values`] reads it: no blank lines, no comments.
fn drop_layout(b: &Body) -> Body {
    Body {
        entries: strip_comments(b)
            .entries
            .into_iter()
            .filter(|e| !matches!(e, Entry::Blank | Entry::Comment(_)))
            .map(|e| match e {
                Entry::Section(s) => Entry::Section(Section {
                    body: drop_layout(&s.body),
                    ..s
                }),
                e => e,
            })
            .collect(),
    }
}

/// Both readers agree on `text`: the same values, or both refuse it.
fn readers_agree(text: &str) -> Result<(), String> {
    match (Document::parse(text), Document::parse_values(text)) {
        (Ok(full), Ok(values)) if drop_layout(&full.root) == values.root => Ok(()),
        (Err(a), Err(b)) if a == b => Ok(()),
        (a, b) => Err(format!("parse {a:?}, parse_values {b:?}")),
    }
}

#[test]
fn values_reader_drops_only_layout() {
    let conf = "# lvm.conf\n\nglobal {\n\t# why\n\tlocking_dir = \"/run/lock/lvm\" # where\n\n\
                \tthin_check_options = [ \"-q\", # quiet\n\t\t\"--clear-needs-check-flag\" ]\n}\n\
                activation { # a section comment\n\tvolume_list = [ \"vg0\" \"vg1/lv\" ]\n}\n# end";
    readers_agree(conf).unwrap();
    for (name, text) in FIXTURES {
        readers_agree(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    readers_agree(&ondisk()).unwrap();
    readers_agree("global {\n # unclosed\n").unwrap();
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
            prop_assert_eq!(readers_agree(&text), Ok(()));
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
