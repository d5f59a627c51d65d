// SPDX-License-Identifier: MIT
//! Raw declarations of libfuguelog's C API, field for field as `producer/fuguelog.h` has them.
//!
//! Everything here is `unsafe` to call; the `fuguelog` crate is the safe interface. The
//! header's `static inline` emit wrappers (`fl_emit_*`) are not symbols: a binding does their
//! level check itself — one relaxed load of the word `fl__session_head::level_word` points at —
//! and calls the exported `fl__emit_*` only when the event is admitted.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_uint, c_void};

pub const FUGUELOG_VERSION_MAJOR: c_uint = 0;
pub const FUGUELOG_VERSION_MINOR: c_uint = 2;
pub const FUGUELOG_VERSION_PATCH: c_uint = 0;
pub const FUGUELOG_VERSION_NUMBER: c_uint =
    FUGUELOG_VERSION_MAJOR * 10000 + FUGUELOG_VERSION_MINOR * 100 + FUGUELOG_VERSION_PATCH;

/// `enum fl_level` (int-sized, as every enum of the header).
pub type fl_level = c_int;
pub const FL_LEVEL_DEFAULT: fl_level = 0;
pub const FL_LEVEL_SPAWNS: fl_level = 1;
pub const FL_LEVEL_SIGNALS: fl_level = 2;
pub const FL_LEVEL_PROMPTS: fl_level = 3;
pub const FL_LEVEL_FULL: fl_level = 4;
/// fl_session_open: the session is open, but no drainer attached its ring within attach_timeout_ns.
pub const FL_OPEN_UNATTACHED: i32 = 1;

pub type fl_kind = c_int;
pub const FL_KIND_SPAWN: fl_kind = 1;
pub const FL_KIND_EXIT: fl_kind = 2;
pub const FL_KIND_ACTION: fl_kind = 3;
pub const FL_KIND_COMMAND: fl_kind = 4;
pub const FL_KIND_COMPLETION: fl_kind = 5;
pub const FL_KIND_ERROR: fl_kind = 6;
pub const FL_KIND_STATE: fl_kind = 7;
pub const FL_KIND_PROMPT: fl_kind = 8;
pub const FL_KIND_TRANSCRIPT: fl_kind = 9;
pub const FL_KIND_INPUT: fl_kind = 10;
pub const FL_KIND_LEVEL: fl_kind = 11;
pub const FL_KIND_DROPPED: fl_kind = 12;
pub const FL_KIND_MAX: fl_kind = FL_KIND_DROPPED;

pub type fl_class = c_int;
pub const FL_CLASS_SYSTEM: fl_class = 0;
pub const FL_CLASS_USER: fl_class = 1;

pub type fl_full_policy = c_int;
pub const FL_FULL_DROP: fl_full_policy = 0;
pub const FL_FULL_BLOCK: fl_full_policy = 1;

pub type fl_clock = c_int;
pub const FL_CLOCK_AUTO: fl_clock = 0;
pub const FL_CLOCK_REALTIME: fl_clock = 1;
pub const FL_CLOCK_TSC: fl_clock = 2;

/// `struct fl_session_opts`; all zeroes (`Default`) is a sane default for every field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct fl_session_opts {
    pub id: *const c_char,
    pub level: fl_level,
    pub lanes: u32,
    pub lane_size: u64,
    pub full_policy: fl_full_policy,
    pub block_timeout_ns: u64,
    pub shm_prefix: *const c_char,
    pub config_path: *const c_char,
    pub clock: fl_clock,
    /// 0: do not wait; else open waits up to this long for a drainer (FL_OPEN_UNATTACHED if none)
    pub attach_timeout_ns: u64,
    /// must be zero
    pub reserved: [u64; 7],
}

impl Default for fl_session_opts {
    fn default() -> Self {
        fl_session_opts {
            id: std::ptr::null(),
            level: FL_LEVEL_DEFAULT,
            lanes: 0,
            lane_size: 0,
            full_policy: FL_FULL_DROP,
            block_timeout_ns: 0,
            shm_prefix: std::ptr::null(),
            config_path: std::ptr::null(),
            clock: FL_CLOCK_AUTO,
            attach_timeout_ns: 0,
            reserved: [0; 7],
        }
    }
}

/// `struct fl_stats`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct fl_stats {
    pub emitted: u64,
    pub admitted: u64,
    pub dropped: u64,
    pub lanes: u32,
    pub lane_size: u64,
    pub clock: fl_clock,
    /// 1 once a drainer has attached the ring, else 0 (0 from a library older than the field).
    pub attached: u64,
    pub reserved: [u64; 7],
}

/// The opaque `fl_session`.
#[repr(C)]
pub struct fl_session {
    _opaque: [u8; 0],
    _not_send_sync_unpin: std::marker::PhantomData<(*mut u8, std::marker::PhantomPinned)>,
}

/// `struct fl__session_head`, the first member of every `fl_session`: the ABI promises that a
/// binding may read the level word's address through it (the low byte of the word is the level).
#[repr(C)]
pub struct fl__session_head {
    pub level_word: *const u64,
}

extern "C" {
    pub fn fl_version() -> c_uint;

    pub fn fl_session_open(
        out: *mut *mut fl_session,
        opts: *const fl_session_opts,
        why: *mut c_char,
        whylen: usize,
    ) -> c_int;
    pub fn fl_session_close(s: *mut fl_session) -> c_int;
    pub fn fl_session_id(s: *const fl_session) -> *const c_char;
    pub fn fl_set_level(s: *mut fl_session, level: c_int) -> c_int;
    pub fn fl_get_level(s: *const fl_session) -> c_int;
    pub fn fl_session_stats(s: *const fl_session, st: *mut fl_stats) -> c_int;

    pub fn fl_level_parse(name: *const c_char) -> c_int;
    pub fn fl_level_name(level: c_int) -> *const c_char;
    pub fn fl_kind_name(kind: c_int) -> *const c_char;
    pub fn fl_kind_min_level(kind: c_int) -> c_int;
    pub fn fl_kind_class(kind: c_int) -> c_int;
    pub fn fl_kind_parse(name: *const c_char) -> c_int;
    pub fn fl_id_check(id: *const c_char) -> c_int;
    pub fn fl_id_new(out: *mut c_char);

    pub fn fl__emit_spawn(
        s: *mut fl_session,
        r#ref: u64,
        pid: u32,
        ppid: u32,
        argv: *const *const c_char,
        argc: u32,
        cwd: *const c_char,
    ) -> i64;
    pub fn fl__emit_exit(
        s: *mut fl_session,
        r#ref: u64,
        status: i32,
        sig: i32,
        duration_ns: u64,
    ) -> i64;
    pub fn fl__emit_action(
        s: *mut fl_session,
        r#ref: u64,
        action: *const c_char,
        target: *const c_char,
        detail: *const c_char,
    ) -> i64;
    pub fn fl__emit_command(
        s: *mut fl_session,
        r#ref: u64,
        name: *const c_char,
        args: *const *const c_char,
        nargs: u32,
    ) -> i64;
    pub fn fl__emit_completion(
        s: *mut fl_session,
        r#ref: u64,
        task: *const c_char,
        outcome: *const c_char,
        duration_ns: u64,
    ) -> i64;
    pub fn fl__emit_error(
        s: *mut fl_session,
        r#ref: u64,
        code: i32,
        message: *const c_char,
        origin: *const c_char,
    ) -> i64;
    pub fn fl__emit_state(
        s: *mut fl_session,
        r#ref: u64,
        from: *const c_char,
        to: *const c_char,
        reason: *const c_char,
    ) -> i64;
    pub fn fl__emit_prompt(s: *mut fl_session, r#ref: u64, text: *const c_void, len: usize) -> i64;
    pub fn fl__emit_transcript(
        s: *mut fl_session,
        r#ref: u64,
        stream: u32,
        data: *const c_void,
        len: usize,
    ) -> i64;
    pub fn fl__emit_input(s: *mut fl_session, r#ref: u64, data: *const c_void, len: usize) -> i64;
}
