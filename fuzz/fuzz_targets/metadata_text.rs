//! The metadata text: the lossless tree, the typed view, LVM's checks, and
//! the changes lvsnap makes, on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lvsnap::lvm::text::{Document, Style};
use lvsnap::lvm::vg::{Creation, Metadata};
use lvsnap::units::{Extents, Sectors};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = Document::parse(text) else {
        return;
    };
    // The tree writes back what it read, in either layout.
    for style in [Style::File, Style::Raw] {
        let out = doc.to_text(style);
        let again = Document::parse(&out).expect("own output parses");
        assert_eq!(again.to_text(style), out);
    }
    let Ok(md) = Metadata::from_document(doc) else {
        return;
    };
    let vg = md.vg();
    let _ = (vg.visible_lvs(), vg.cow_snapshots(), md.free_space());
    let damaged = md.damage().is_some();
    assert_eq!(damaged, md.validate().is_err());
    let c = Creation {
        time: 1,
        host: "fuzz".into(),
    };
    let first = vg.lvs.first().map(|l| l.name.clone());
    let mut m = md.clone();
    let changes = [
        m.add_linear_lv("fuzz_new", Extents(1), &c).is_ok(),
        first.as_deref().is_some_and(|o| {
            m.add_cow_snapshot(o, "fuzz_snap", Extents(1), Sectors(8), false, &c)
                .is_ok()
        }),
        first.as_deref().is_some_and(|o| m.remove_lv(o).is_ok()),
        m.bump_seqno().is_ok(),
    ];
    if damaged {
        assert!(!changes.iter().any(|&ok| ok), "a damaged VG was changed");
    } else if changes.iter().any(|&ok| ok) {
        // Whatever lvsnap changed still passes LVM's checks.
        m.validate().expect("a change broke a valid VG");
        let again = Metadata::parse(&m.to_text(Style::Raw)).expect("own text parses");
        assert_eq!(again.vg(), m.vg());
    }
});
