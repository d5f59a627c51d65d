// SPDX-License-Identifier: MIT
// layout.rs: the Rust structs against the C compiler's view of fuguelog.h (sizes, field offsets, constants).
//
// $FUGUELOG_LAYOUT names a file of `name value` lines that tests/test_rust.sh writes by compiling
// a probe against the header (sizeof, offsetof, the enum and version constants); every line must
// match what Rust computes. Without the variable there is no C compiler's word to check against.
use fuguelog_sys::*;
use std::collections::BTreeMap;
use std::mem::{size_of, MaybeUninit};
use std::ptr::addr_of;

macro_rules! offset {
    ($t:ty, $f:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        let base = u.as_ptr();
        // SAFETY: only the field's address is taken, nothing is read
        unsafe { (addr_of!((*base).$f) as usize) - (base as usize) }
    }};
}

fn rust_view() -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: u64| {
        m.insert(k.to_string(), v);
    };
    put(
        "sizeof.fl_session_opts",
        size_of::<fl_session_opts>() as u64,
    );
    put("opts.id", offset!(fl_session_opts, id) as u64);
    put("opts.level", offset!(fl_session_opts, level) as u64);
    put("opts.lanes", offset!(fl_session_opts, lanes) as u64);
    put("opts.lane_size", offset!(fl_session_opts, lane_size) as u64);
    put(
        "opts.full_policy",
        offset!(fl_session_opts, full_policy) as u64,
    );
    put(
        "opts.block_timeout_ns",
        offset!(fl_session_opts, block_timeout_ns) as u64,
    );
    put(
        "opts.shm_prefix",
        offset!(fl_session_opts, shm_prefix) as u64,
    );
    put(
        "opts.config_path",
        offset!(fl_session_opts, config_path) as u64,
    );
    put("opts.clock", offset!(fl_session_opts, clock) as u64);
    put(
        "opts.attach_timeout_ns",
        offset!(fl_session_opts, attach_timeout_ns) as u64,
    );
    put("opts.reserved", offset!(fl_session_opts, reserved) as u64);
    put("sizeof.opts.reserved", size_of::<[u64; 7]>() as u64);
    put("sizeof.fl_stats", size_of::<fl_stats>() as u64);
    put("stats.emitted", offset!(fl_stats, emitted) as u64);
    put("stats.admitted", offset!(fl_stats, admitted) as u64);
    put("stats.dropped", offset!(fl_stats, dropped) as u64);
    put("stats.lanes", offset!(fl_stats, lanes) as u64);
    put("stats.lane_size", offset!(fl_stats, lane_size) as u64);
    put("stats.clock", offset!(fl_stats, clock) as u64);
    put("stats.attached", offset!(fl_stats, attached) as u64);
    put("stats.reserved", offset!(fl_stats, reserved) as u64);
    put(
        "sizeof.fl__session_head",
        size_of::<fl__session_head>() as u64,
    );
    put(
        "head.level_word",
        offset!(fl__session_head, level_word) as u64,
    );
    put("FUGUELOG_VERSION_NUMBER", FUGUELOG_VERSION_NUMBER as u64);
    for (k, v) in [
        ("FL_LEVEL_SPAWNS", FL_LEVEL_SPAWNS),
        ("FL_LEVEL_SIGNALS", FL_LEVEL_SIGNALS),
        ("FL_LEVEL_PROMPTS", FL_LEVEL_PROMPTS),
        ("FL_LEVEL_FULL", FL_LEVEL_FULL),
        ("FL_KIND_SPAWN", FL_KIND_SPAWN),
        ("FL_KIND_INPUT", FL_KIND_INPUT),
        ("FL_KIND_DROPPED", FL_KIND_DROPPED),
        ("FL_KIND_MAX", FL_KIND_MAX),
        ("FL_CLASS_USER", FL_CLASS_USER),
        ("FL_FULL_BLOCK", FL_FULL_BLOCK),
        ("FL_CLOCK_REALTIME", FL_CLOCK_REALTIME),
        ("FL_CLOCK_TSC", FL_CLOCK_TSC),
    ] {
        put(k, v as u64);
    }
    m
}

#[test]
fn layout_matches_the_c_header() {
    let path = match std::env::var("FUGUELOG_LAYOUT") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("FUGUELOG_LAYOUT not set: no C compiler's view to compare with (tests/test_rust.sh sets it)");
            return;
        }
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}", path, e));
    let c: BTreeMap<String, u64> = text
        .lines()
        .map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next().expect("name").to_string();
            let v = it.next().expect("value").parse().expect("number");
            (k, v)
        })
        .collect();
    let rust = rust_view();
    assert_eq!(
        c.keys().collect::<Vec<_>>(),
        rust.keys().collect::<Vec<_>>(),
        "the probe and the test name different things"
    );
    for (k, v) in &rust {
        assert_eq!(c[k], *v, "{}: C says {}, Rust says {}", k, c[k], v);
    }
}

#[test]
fn tables_agree_with_the_library() {
    // the library's own tables, reached through the declarations: kinds, levels, names
    unsafe {
        for k in FL_KIND_SPAWN..=FL_KIND_MAX {
            let name = std::ffi::CStr::from_ptr(fl_kind_name(k));
            assert_eq!(fl_kind_parse(name.as_ptr()), k);
            assert!((FL_LEVEL_SPAWNS..=FL_LEVEL_FULL).contains(&fl_kind_min_level(k)));
        }
        assert!(fl_kind_name(FL_KIND_MAX + 1).is_null());
        assert_eq!(
            fl_level_parse(b"prompts\0".as_ptr().cast()),
            FL_LEVEL_PROMPTS
        );
        assert_eq!(fl_level_parse(b"loud\0".as_ptr().cast()), -22);
    }
}
