// SPDX-License-Identifier: MIT
//! Per-session logging for fugue sessions: the safe binding of libfuguelog.
//!
//! A [`Session`] owns one shared-memory ring that `fugue-logd` drains into
//! `<root>/<session id>/{system,user}.jsonl`. Its typed `emit_*` methods mirror the C calls
//! (`fl_emit_*` in `fuguelog.h`): each first checks the session's level with one relaxed load
//! of the level word in shared memory — no FFI call, no allocation when the event is filtered —
//! and only an admitted event crosses into C, which encodes it straight into the calling
//! thread's lane. Nothing blocks unless the session was opened with [`FullPolicy::Block`].
//!
//! With the default `tracing` feature, [`layer::SessionLayer`] logs `tracing` events into the
//! session of the span they happen in.
//!
//! ```no_run
//! use fuguelog::{Level, Options, Session};
//! let s = Session::open(&Options::new().id("pane-1").level(Level::Prompts)).expect("open");
//! let spawn = s.emit_spawn(0, std::process::id(), 1, &["claude", "--resume"], "/home/me").unwrap();
//! s.emit_prompt(spawn.unwrap_or(0), b"fix the build").unwrap();
//! assert_eq!(s.emit_transcript(0, 1, b"below full: filtered").unwrap(), None);
//! ```
use fuguelog_sys as sys;
use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "tracing")]
pub mod layer;

// Linux errno values the library returns (negated)
const EINVAL: i32 = 22;
const ENOBUFS: i32 = 105;
const EMSGSIZE: i32 = 90;
const ECHILD: i32 = 10;

/// The library's version actually linked, as `FUGUELOG_VERSION_NUMBER` (major*10000 + minor*100 + patch).
pub fn version() -> u32 {
    // SAFETY: no arguments, no state
    unsafe { sys::fl_version() }
}

/// The four cumulative levels: a session at level L records every kind whose minimum is <= L.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
pub enum Level {
    /// session lifecycle, user actions and commands
    Spawns = 1,
    /// + completions, errors, state changes
    Signals = 2,
    /// + initial prompts
    Prompts = 3,
    /// + complete transcripts and input
    Full = 4,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Spawns, Level::Signals, Level::Prompts, Level::Full];

    /// The level of a raw value 1..4.
    pub fn from_raw(v: i32) -> Option<Level> {
        Level::ALL.get((v as usize).wrapping_sub(1)).copied()
    }

    /// "spawns", "signals", "prompts", "full": the names the CLI, the files and the config use.
    pub fn name(self) -> &'static str {
        match self {
            Level::Spawns => "spawns",
            Level::Signals => "signals",
            Level::Prompts => "prompts",
            Level::Full => "full",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `"...".parse::<Level>()` says about a name that is not a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Level {
    type Err = ParseError;
    /// The names in any case, or "1".."4", as `fl_level_parse` accepts them.
    fn from_str(s: &str) -> Result<Level, ParseError> {
        Level::ALL
            .iter()
            .copied()
            .find(|l| l.name().eq_ignore_ascii_case(s) || s == (*l as i32).to_string())
            .ok_or_else(|| {
                ParseError(format!(
                    "'{}' is not a level; use spawns, signals, prompts or full",
                    s
                ))
            })
    }
}

/// The audit class of a kind, which is also the file its lines go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    System,
    User,
}

/// Event kinds. `Level` and `Dropped` are written by the drainer only; they are here so that
/// names read back from the files parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Kind {
    Spawn = 1,
    Exit,
    Action,
    Command,
    Completion,
    Error,
    State,
    Prompt,
    Transcript,
    Input,
    Level,
    Dropped,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Spawn,
        Kind::Exit,
        Kind::Action,
        Kind::Command,
        Kind::Completion,
        Kind::Error,
        Kind::State,
        Kind::Prompt,
        Kind::Transcript,
        Kind::Input,
        Kind::Level,
        Kind::Dropped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Spawn => "spawn",
            Kind::Exit => "exit",
            Kind::Action => "action",
            Kind::Command => "command",
            Kind::Completion => "completion",
            Kind::Error => "error",
            Kind::State => "state",
            Kind::Prompt => "prompt",
            Kind::Transcript => "transcript",
            Kind::Input => "input",
            Kind::Level => "level",
            Kind::Dropped => "dropped",
        }
    }

    /// The lowest session level at which this kind is recorded.
    pub fn min_level(self) -> Level {
        match self {
            Kind::Spawn
            | Kind::Exit
            | Kind::Action
            | Kind::Command
            | Kind::Level
            | Kind::Dropped => Level::Spawns,
            Kind::Completion | Kind::Error | Kind::State => Level::Signals,
            Kind::Prompt => Level::Prompts,
            Kind::Transcript | Kind::Input => Level::Full,
        }
    }

    pub fn class(self) -> Class {
        match self {
            Kind::Action | Kind::Command | Kind::Prompt | Kind::Input => Class::User,
            _ => Class::System,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Kind, ParseError> {
        Kind::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            ParseError(format!(
                "'{}' is not an event kind; use spawn, exit, action, command, completion, error, state, prompt, \
                 transcript or input",
                s
            ))
        })
    }
}

/// What a full lane does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// drop the record and count it; the drainer writes a `dropped` line where the loss happened
    #[default]
    Drop,
    /// wait for room (bounded by [`Options::block_timeout`], if set), then drop
    Block,
}

/// What stamps each event (see docs/producer.md#clocks); `$FUGUE_CLOCK` overrides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    #[default]
    Auto,
    Realtime,
    Tsc,
}

/// Session options; `Options::new()` leaves every choice to the library's defaults
/// (a new UUIDv7 id, the level from `$FUGUE_SESSION_LOG` or the config file, 4 lanes of 1 MiB).
#[derive(Debug, Clone, Default)]
pub struct Options {
    id: Option<String>,
    level: Option<Level>,
    lanes: u32,
    lane_size: u64,
    full_policy: FullPolicy,
    block_timeout_ns: u64,
    shm_prefix: Option<String>,
    config_path: Option<String>,
    clock: Clock,
}

impl Options {
    pub fn new() -> Options {
        Options::default()
    }
    /// `[A-Za-z0-9._-]{1,64}`, not "." or ".."; unset: a new UUIDv7.
    pub fn id(mut self, id: impl Into<String>) -> Options {
        self.id = Some(id.into());
        self
    }
    /// The session's own level; `$FUGUE_SESSION_LOG` still overrides it.
    pub fn level(mut self, level: Level) -> Options {
        self.level = Some(level);
        self
    }
    /// Power of two, at most 64: one per emitting thread.
    pub fn lanes(mut self, lanes: u32) -> Options {
        self.lanes = lanes;
        self
    }
    /// Power of two, 4 KiB .. 1 GiB.
    pub fn lane_size(mut self, bytes: u64) -> Options {
        self.lane_size = bytes;
        self
    }
    pub fn full_policy(mut self, policy: FullPolicy) -> Options {
        self.full_policy = policy;
        self
    }
    /// With [`FullPolicy::Block`]: give up (and drop) after this long; unset waits forever.
    pub fn block_timeout(mut self, timeout: std::time::Duration) -> Options {
        self.block_timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        self
    }
    /// The shm object name prefix; unset: `$FUGUE_SHM_PREFIX`, else "fugue-".
    pub fn shm_prefix(mut self, prefix: impl Into<String>) -> Options {
        self.shm_prefix = Some(prefix.into());
        self
    }
    /// The config file; unset: `$HOME/.fugue/logging.conf`.
    pub fn config_path(mut self, path: impl Into<String>) -> Options {
        self.config_path = Some(path.into());
        self
    }
    pub fn clock(mut self, clock: Clock) -> Options {
        self.clock = clock;
        self
    }
    /// The session id this asks for, if any.
    pub fn get_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// Why a session could not be opened: the library's explanation and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    errno: i32,
    why: String,
}

impl Error {
    /// The positive errno (EINVAL for a bad id, level or geometry, EEXIST for a live ring of that id, ...).
    pub fn errno(&self) -> i32 {
        self.errno
    }
    /// The library's text saying what was wrong and what to do.
    pub fn why(&self) -> &str {
        &self.why
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.why.is_empty() {
            write!(f, "{}", std::io::Error::from_raw_os_error(self.errno))
        } else {
            f.write_str(&self.why)
        }
    }
}

impl std::error::Error for Error {}

/// Why an admitted event was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// the lane was full: the record is dropped, counted, and shows up as a `dropped` line
    Full,
    /// larger than a quarter of a lane: dropped and counted like a full lane
    TooLarge,
    /// called in a child forked after the session was opened: the ring is the parent's
    ForkedChild,
    /// a text field has a NUL byte, which the C API's strings cannot carry; nothing was written
    Nul,
    /// another -errno from the library
    Other(i32),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Full => f.write_str("lane full: the event was dropped and counted"),
            EmitError::TooLarge => {
                f.write_str("event larger than a quarter of a lane: dropped and counted")
            }
            EmitError::ForkedChild => {
                f.write_str("session opened by the parent process: open a new session in the child")
            }
            EmitError::Nul => {
                f.write_str("a text field contains a NUL byte; send it as bytes or strip it")
            }
            EmitError::Other(e) => write!(f, "{}", std::io::Error::from_raw_os_error(*e)),
        }
    }
}

impl std::error::Error for EmitError {}

/// `Ok(Some(id))`: written, with the event's id (for another event's `ref`); `Ok(None)`: its kind
/// is above the session's level.
pub type Emitted = Result<Option<u64>, EmitError>;

fn emitted(rc: i64) -> Emitted {
    match rc {
        id if id > 0 => Ok(Some(id as u64)),
        0 => Ok(None),
        rc => Err(match -rc as i32 {
            ENOBUFS => EmitError::Full,
            EMSGSIZE => EmitError::TooLarge,
            ECHILD => EmitError::ForkedChild,
            e => EmitError::Other(e),
        }),
    }
}

/// Counters of one session, summed over its lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// calls that passed the level check
    pub emitted: u64,
    /// written into the ring
    pub admitted: u64,
    /// lost to a full lane or refused as too large
    pub dropped: u64,
    pub lanes: u32,
    pub lane_size: u64,
    /// the clock in force: Realtime or Tsc
    pub clock: Clock,
}

/// One open session: its ring lives until the `Session` is dropped, which marks it closed so the
/// drainer finishes the files. Share it between threads by reference or in an `Arc`.
pub struct Session {
    raw: NonNull<sys::fl_session>,
    /// the shared level word, read through `fl__session_head` once at open; valid until close
    word: NonNull<AtomicU64>,
    id: String,
}

// SAFETY: every C call may be made from any thread except fl_session_close, which only Drop
// makes, when no other reference to the session can exist.
unsafe impl Send for Session {}
unsafe impl Sync for Session {}

fn cstring(what: &str, s: &Option<String>) -> Result<Option<CString>, Error> {
    match s {
        None => Ok(None),
        Some(s) => CString::new(s.as_str()).map(Some).map_err(|_| Error {
            errno: EINVAL,
            why: format!("{} '{}' contains a NUL byte", what, s.escape_debug()),
        }),
    }
}

fn opt_ptr(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

impl Session {
    /// Opens a session: validates the id, resolves the level, creates the ring.
    pub fn open(opts: &Options) -> Result<Session, Error> {
        let id = cstring("session id", &opts.id)?;
        let prefix = cstring("shm prefix", &opts.shm_prefix)?;
        let config = cstring("config path", &opts.config_path)?;
        let o = sys::fl_session_opts {
            id: opt_ptr(&id),
            level: opts.level.map_or(sys::FL_LEVEL_DEFAULT, |l| l as c_int),
            lanes: opts.lanes,
            lane_size: opts.lane_size,
            full_policy: match opts.full_policy {
                FullPolicy::Drop => sys::FL_FULL_DROP,
                FullPolicy::Block => sys::FL_FULL_BLOCK,
            },
            block_timeout_ns: opts.block_timeout_ns,
            shm_prefix: opt_ptr(&prefix),
            config_path: opt_ptr(&config),
            clock: match opts.clock {
                Clock::Auto => sys::FL_CLOCK_AUTO,
                Clock::Realtime => sys::FL_CLOCK_REALTIME,
                Clock::Tsc => sys::FL_CLOCK_TSC,
            },
            ..Default::default()
        };
        let mut why = [0 as c_char; 512];
        let mut raw: *mut sys::fl_session = std::ptr::null_mut();
        // SAFETY: o and its strings outlive the call; why is writable for its length
        let rc = unsafe { sys::fl_session_open(&mut raw, &o, why.as_mut_ptr(), why.len()) };
        let raw = match NonNull::new(raw) {
            Some(raw) if rc == 0 => raw,
            _ => {
                // SAFETY: the library NUL-terminates why within whylen (it starts zeroed)
                let why = unsafe { CStr::from_ptr(why.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                return Err(Error {
                    errno: if rc < 0 { -rc } else { EINVAL },
                    why,
                });
            }
        };
        // SAFETY: fl__session_head is the first member of fl_session (an ABI promise of fuguelog.h);
        // the word it points at is an _Atomic uint64_t in the ring, mapped until close, and
        // AtomicU64 has the same size and alignment as u64
        let word = unsafe {
            (*(raw.as_ptr() as *const sys::fl__session_head)).level_word as *mut AtomicU64
        };
        let id = unsafe { CStr::from_ptr(sys::fl_session_id(raw.as_ptr())) }
            .to_string_lossy()
            .into_owned();
        Ok(Session {
            raw,
            word: NonNull::new(word).expect("the library sets the level word"),
            id,
        })
    }

    /// The session's id (the directory name under the log root).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The level byte of the shared word: one relaxed load, as the C inline check does.
    #[inline(always)]
    fn level_byte(&self) -> u8 {
        // SAFETY: the word is mapped for as long as self lives
        unsafe { self.word.as_ref() }.load(Ordering::Relaxed) as u8
    }

    /// Whether an event of this kind would be recorded now: one relaxed load and a compare.
    #[inline(always)]
    pub fn admits(&self, kind: Kind) -> bool {
        self.level_byte() >= kind.min_level() as u8
    }

    /// The current level, as set by the session or from outside (`fugue-log level`).
    pub fn level(&self) -> Level {
        // SAFETY: raw is open
        let l = unsafe { sys::fl_get_level(self.raw.as_ptr()) };
        Level::from_raw(l).expect("the library keeps the level in 1..4")
    }

    /// Sets the level with one atomic write to the shared word; returns the old level.
    pub fn set_level(&self, level: Level) -> Level {
        // SAFETY: raw is open; the C call is an atomic CAS loop, safe from any thread
        let old = unsafe { sys::fl_set_level(self.raw.as_ptr(), level as c_int) };
        Level::from_raw(old).expect("a valid level is always accepted")
    }

    pub fn stats(&self) -> Stats {
        let mut st = sys::fl_stats::default();
        // SAFETY: raw is open; st is a complete fl_stats
        unsafe { sys::fl_session_stats(self.raw.as_ptr(), &mut st) };
        Stats {
            emitted: st.emitted,
            admitted: st.admitted,
            dropped: st.dropped,
            lanes: st.lanes,
            lane_size: st.lane_size,
            clock: if st.clock == sys::FL_CLOCK_TSC {
                Clock::Tsc
            } else {
                Clock::Realtime
            },
        }
    }

    /// The raw session, for calls this crate does not wrap; valid while self lives.
    pub fn as_raw(&self) -> *mut sys::fl_session {
        self.raw.as_ptr()
    }

    pub fn emit_spawn(
        &self,
        ref_id: u64,
        pid: u32,
        ppid: u32,
        argv: &[&str],
        cwd: &str,
    ) -> Emitted {
        if !self.admits(Kind::Spawn) {
            return Ok(None);
        }
        // p[0] is cwd, p[1..] the argv array
        with_cstrs(
            std::iter::once(cwd).chain(argv.iter().copied()),
            |p| unsafe {
                sys::fl__emit_spawn(
                    self.raw.as_ptr(),
                    ref_id,
                    pid,
                    ppid,
                    p[1..].as_ptr(),
                    (p.len() - 1) as u32,
                    p[0],
                )
            },
        )
    }

    pub fn emit_exit(&self, ref_id: u64, status: i32, signal: i32, duration_ns: u64) -> Emitted {
        if !self.admits(Kind::Exit) {
            return Ok(None);
        }
        emitted(unsafe {
            sys::fl__emit_exit(self.raw.as_ptr(), ref_id, status, signal, duration_ns)
        })
    }

    pub fn emit_action(&self, ref_id: u64, action: &str, target: &str, detail: &str) -> Emitted {
        if !self.admits(Kind::Action) {
            return Ok(None);
        }
        with_cstrs([action, target, detail], |p| unsafe {
            sys::fl__emit_action(self.raw.as_ptr(), ref_id, p[0], p[1], p[2])
        })
    }

    pub fn emit_command(&self, ref_id: u64, name: &str, args: &[&str]) -> Emitted {
        if !self.admits(Kind::Command) {
            return Ok(None);
        }
        with_cstrs(
            std::iter::once(name).chain(args.iter().copied()),
            |p| unsafe {
                sys::fl__emit_command(
                    self.raw.as_ptr(),
                    ref_id,
                    p[0],
                    p[1..].as_ptr(),
                    (p.len() - 1) as u32,
                )
            },
        )
    }

    pub fn emit_completion(
        &self,
        ref_id: u64,
        task: &str,
        outcome: &str,
        duration_ns: u64,
    ) -> Emitted {
        if !self.admits(Kind::Completion) {
            return Ok(None);
        }
        with_cstrs([task, outcome], |p| unsafe {
            sys::fl__emit_completion(self.raw.as_ptr(), ref_id, p[0], p[1], duration_ns)
        })
    }

    /// `code` is negative errno style.
    pub fn emit_error(&self, ref_id: u64, code: i32, message: &str, origin: &str) -> Emitted {
        if !self.admits(Kind::Error) {
            return Ok(None);
        }
        with_cstrs([message, origin], |p| unsafe {
            sys::fl__emit_error(self.raw.as_ptr(), ref_id, code, p[0], p[1])
        })
    }

    pub fn emit_state(&self, ref_id: u64, from: &str, to: &str, reason: &str) -> Emitted {
        if !self.admits(Kind::State) {
            return Ok(None);
        }
        with_cstrs([from, to, reason], |p| unsafe {
            sys::fl__emit_state(self.raw.as_ptr(), ref_id, p[0], p[1], p[2])
        })
    }

    /// The initial prompt; bytes, so any content goes through unchanged.
    pub fn emit_prompt(&self, ref_id: u64, text: &[u8]) -> Emitted {
        if !self.admits(Kind::Prompt) {
            return Ok(None);
        }
        emitted(unsafe {
            sys::fl__emit_prompt(self.raw.as_ptr(), ref_id, text.as_ptr().cast(), text.len())
        })
    }

    /// Output bytes of stream `stream` (1 stdout, 2 stderr by convention).
    pub fn emit_transcript(&self, ref_id: u64, stream: u32, data: &[u8]) -> Emitted {
        if !self.admits(Kind::Transcript) {
            return Ok(None);
        }
        emitted(unsafe {
            sys::fl__emit_transcript(
                self.raw.as_ptr(),
                ref_id,
                stream,
                data.as_ptr().cast(),
                data.len(),
            )
        })
    }

    pub fn emit_input(&self, ref_id: u64, data: &[u8]) -> Emitted {
        if !self.admits(Kind::Input) {
            return Ok(None);
        }
        emitted(unsafe {
            sys::fl__emit_input(self.raw.as_ptr(), ref_id, data.as_ptr().cast(), data.len())
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: raw is open and nothing else can reach it any more
        unsafe { sys::fl_session_close(self.raw.as_ptr()) };
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("level", &self.level())
            .finish()
    }
}

/// Per-thread scratch for the NUL-terminated copies of an event's strings, so an admitted event
/// allocates only while the buffer grows to the largest event the thread has sent.
struct Scratch {
    bytes: Vec<u8>,
    ptrs: Vec<*const c_char>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch { bytes: Vec::new(), ptrs: Vec::new() });
}

/// Copies the strings NUL-terminated and calls f with their pointers, in order.
fn with_cstrs<'a, I, F>(items: I, f: F) -> Emitted
where
    I: IntoIterator<Item = &'a str>,
    F: FnOnce(&[*const c_char]) -> i64,
{
    let run = |sc: &mut Scratch| {
        sc.bytes.clear();
        sc.ptrs.clear();
        // ptrs holds each string's offset until the buffer stops growing, then its address
        for s in items {
            if s.as_bytes().contains(&0) {
                return Err(EmitError::Nul);
            }
            sc.ptrs.push(sc.bytes.len() as *const c_char);
            sc.bytes.extend_from_slice(s.as_bytes());
            sc.bytes.push(0);
        }
        let base = sc.bytes.as_ptr();
        for p in sc.ptrs.iter_mut() {
            *p = unsafe { base.add(*p as usize) }.cast();
        }
        emitted(f(&sc.ptrs))
    };
    let mut run = Some(run);
    let done = SCRATCH.try_with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .map(|mut sc| (run.take().unwrap())(&mut sc))
    });
    match done {
        Ok(Some(r)) => r,
        // re-entered (an emit from inside an emit) or thread-local storage gone: a private buffer
        _ => (run.take().unwrap())(&mut Scratch {
            bytes: Vec::new(),
            ptrs: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_is_the_header_one() {
        assert_eq!(version(), sys::FUGUELOG_VERSION_NUMBER);
    }

    #[test]
    fn layer_binds_spans_and_reads_the_live_word() {
        use tracing_subscriber::layer::SubscriberExt;
        let u = open("unit-layer", Level::Signals);
        let s: &Session = &u;
        // the test keeps its Undrained guard; the layer gets a second session handle through an Arc
        let shared = std::sync::Arc::new(
            Session::open(
                &Options::new()
                    .id("unit-layer2")
                    .level(Level::Signals)
                    .lanes(1)
                    .lane_size(4096)
                    .shm_prefix(prefix()),
            )
            .unwrap(),
        );
        let layer = layer::SessionLayer::new().open_with(None);
        layer.register(shared.clone());
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::error!("outside every session span: nowhere");
            let pane = tracing::info_span!("pane", session_id = "unit-layer2");
            let _e = pane.enter();
            let inner = tracing::info_span!("turn");
            let _i = inner.enter();
            tracing::error!(code = -5, "io");
            tracing::info!(kind = "transcript", data = "x");
            tracing::debug!("not mapped");
            assert_eq!(shared.stats().emitted, 1);
            shared.set_level(Level::Full);
            tracing::info!(kind = "transcript", data = "y");
            tracing::info!(from = "a", to = "b");
            shared.set_level(Level::Spawns);
            tracing::warn!("filtered now");
            tracing::info!(kind = "command", name = "ls", args = "-l /");
        });
        assert_eq!(shared.stats().emitted, 4);
        assert_eq!(s.stats().emitted, 0);
        drop(shared);
        let _ = std::fs::remove_file(format!("/dev/shm/{}unit-layer2", prefix()));
    }

    #[test]
    fn levels_and_kinds_match_the_library() {
        for k in Kind::ALL {
            let name = unsafe { CStr::from_ptr(sys::fl_kind_name(k as c_int)) }
                .to_str()
                .unwrap();
            assert_eq!(name, k.name());
            assert_eq!(
                unsafe { sys::fl_kind_min_level(k as c_int) },
                k.min_level() as c_int,
                "{}",
                k
            );
            let class = if k.class() == Class::User {
                sys::FL_CLASS_USER
            } else {
                sys::FL_CLASS_SYSTEM
            };
            assert_eq!(unsafe { sys::fl_kind_class(k as c_int) }, class, "{}", k);
            assert_eq!(name.parse::<Kind>(), Ok(k));
        }
        for l in Level::ALL {
            let name = unsafe { CStr::from_ptr(sys::fl_level_name(l as c_int)) }
                .to_str()
                .unwrap();
            assert_eq!(name, l.name());
            assert_eq!(name.parse::<Level>(), Ok(l));
            assert_eq!((l as i32).to_string().parse::<Level>(), Ok(l));
        }
        assert_eq!("FULL".parse::<Level>(), Ok(Level::Full));
        for bad in ["", "0", "5", "loud", "full "] {
            let c = CString::new(bad).unwrap();
            assert_eq!(
                unsafe { sys::fl_level_parse(c.as_ptr()) },
                -EINVAL,
                "{:?}",
                bad
            );
            assert!(bad.parse::<Level>().is_err(), "{:?}", bad);
        }
        assert!("dropped ".parse::<Kind>().is_err());
    }

    fn prefix() -> String {
        // under ctest each test has its own prefix; a unit test adds its own part
        format!(
            "{}unit-{}-",
            std::env::var("FUGUE_SHM_PREFIX").unwrap_or_else(|_| "flrs-".into()),
            std::process::id()
        )
    }

    /// A session nobody drains; its ring is unlinked when the test lets go of it.
    struct Undrained(Option<Session>, String);

    impl std::ops::Deref for Undrained {
        type Target = Session;
        fn deref(&self) -> &Session {
            self.0.as_ref().unwrap()
        }
    }

    impl Drop for Undrained {
        fn drop(&mut self) {
            drop(self.0.take());
            let _ = std::fs::remove_file(format!("/dev/shm/{}{}", prefix(), self.1));
        }
    }

    fn open(id: &str, level: Level) -> Undrained {
        let s = Session::open(
            &Options::new()
                .id(id)
                .level(level)
                .lanes(2)
                .lane_size(4096)
                .shm_prefix(prefix()),
        )
        .expect("open");
        Undrained(Some(s), id.to_string())
    }

    #[test]
    fn open_refuses_with_the_library_reason() {
        let e = Session::open(&Options::new().id("bad/id").shm_prefix(prefix())).unwrap_err();
        assert_eq!(e.errno(), EINVAL);
        assert!(e.why().contains("session id 'bad/id' refused"), "{}", e);
        let e = Session::open(&Options::new().lanes(3).shm_prefix(prefix())).unwrap_err();
        assert_eq!(e.errno(), EINVAL);
        assert!(e.why().contains("3 lanes of"), "{}", e);
        let e = Session::open(&Options::new().id("nul\0id")).unwrap_err();
        assert_eq!(e.errno(), EINVAL);
        assert!(e.why().contains("NUL"), "{}", e);
        let s = open("unit-exists", Level::Spawns);
        let e = Session::open(&Options::new().id("unit-exists").shm_prefix(prefix())).unwrap_err();
        assert_eq!(e.errno(), 17, "EEXIST");
        assert!(e.why().contains("exists"), "{}", e);
        drop(s);
    }

    #[test]
    fn level_check_is_the_shared_word() {
        let s = open("unit-level", Level::Signals);
        assert_eq!(s.level(), Level::Signals);
        // filtered: no call into C, so the library counts nothing
        assert_eq!(s.emit_prompt(0, b"p"), Ok(None));
        assert_eq!(s.emit_transcript(0, 1, b"t"), Ok(None));
        assert_eq!(s.emit_input(0, b"i"), Ok(None));
        assert_eq!(s.stats().emitted, 0);
        let spawn = s
            .emit_spawn(0, 7, 1, &["a", "b c"], "/")
            .unwrap()
            .expect("admitted");
        assert!(s.emit_command(spawn, "build", &[]).unwrap().unwrap() > spawn);
        s.emit_error(spawn, -5, "io", "unit").unwrap().unwrap();
        assert_eq!(s.set_level(Level::Full), Level::Signals);
        assert!(s.admits(Kind::Input));
        s.emit_transcript(0, 1, b"now").unwrap().unwrap();
        assert_eq!(s.set_level(Level::Spawns), Level::Full);
        assert!(!s.admits(Kind::Error) && s.admits(Kind::Action));
        assert_eq!(s.emit_state(0, "a", "b", "c"), Ok(None));
        let st = s.stats();
        assert_eq!(
            (st.emitted, st.admitted, st.dropped, st.lanes, st.lane_size),
            (4, 4, 0, 2, 4096)
        );
    }

    #[test]
    fn nul_in_text_refused_and_bytes_pass() {
        let s = open("unit-nul", Level::Full);
        assert_eq!(s.emit_action(0, "kill", "pane\0", ""), Err(EmitError::Nul));
        assert_eq!(s.emit_spawn(0, 1, 1, &["x\0"], "/"), Err(EmitError::Nul));
        s.emit_input(0, b"a\0b").unwrap().unwrap();
        assert_eq!(s.stats().emitted, 1);
    }

    #[test]
    fn full_lane_and_too_large() {
        // nobody drains: a 4 KiB lane fills, then every admitted event is dropped and counted
        let s = open("unit-full", Level::Full);
        assert_eq!(
            s.emit_transcript(0, 1, &[b'x'; 2048]),
            Err(EmitError::TooLarge)
        );
        let mut full = 0;
        for _ in 0..64 {
            match s.emit_transcript(0, 1, &[b'y'; 200]) {
                Ok(Some(_)) => {}
                Err(EmitError::Full) => full += 1,
                other => panic!("{:?}", other),
            }
        }
        let st = s.stats();
        assert!(full > 0);
        assert_eq!(st.emitted, 65);
        assert_eq!(st.dropped, full + 1);
    }

    #[test]
    fn shared_between_threads() {
        let u = open("unit-threads", Level::Full);
        let s: &Session = &u;
        // shared by reference across threads: Session is Sync
        std::thread::scope(|sc| {
            for t in 0..2 {
                sc.spawn(move || {
                    for i in 0..10 {
                        s.emit_state(0, "t", &t.to_string(), &i.to_string())
                            .unwrap()
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(s.stats().admitted, 20);
    }
}
