// SPDX-License-Identifier: MIT
//! A `tracing_subscriber::Layer` that logs each event into the session of the span it happens in.
//!
//! * A span with a `session_id` field binds itself and every span and event inside it to that
//!   session: a session registered with [`SessionLayer::register`] under that id, or else one the
//!   layer opens (from [`SessionLayer::open_with`]'s options, the full policy forced to
//!   [`FullPolicy::Drop`]) and closes when the last span bound to it closes. Events outside
//!   every session span go to the [`SessionLayer::default_session`], if any, else nowhere.
//! * An event's kind is its `kind` field (`kind = "prompt"`), or else comes from its tracing
//!   level through a table ([`SessionLayer::map_level`]): ERROR and WARN become `error`, INFO
//!   becomes `state`, DEBUG and TRACE are not recorded.
//! * Fields are recorded into the kind's fields by name (`pid`, `cwd`, `action`, `code`, `to`,
//!   `stream`, ...; see docs/rust.md); the message and every other field go, as `name=value`,
//!   into the kind's free-text field, so nothing is lost but on `exit`, which has none.
//! * Filtering: on every event the layer loads the session's level word (one relaxed atomic
//!   load) and stops there when the kind is above the level, before looking at any field but
//!   `kind`. `register_callsite` answers `Interest::sometimes()` and never caches an answer, so
//!   a level set from outside (`fugue-log level`) takes effect on the next event. The layer
//!   never filters for other layers: what it does not record, they still see.
//! * It never blocks: a full ring drops the event and counts it (a `dropped` line in the files).
use crate::{FullPolicy, Kind, Options, Session};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, Weak};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::subscriber::Interest;
use tracing_core::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The session a span is bound to, kept in the span's extensions.
struct Bound(Arc<Session>);

enum Entry {
    Registered(Arc<Session>),
    /// opened by the layer: alive while a span holds it
    Opened(Weak<Session>),
}

/// See the [module documentation](self).
pub struct SessionLayer {
    sessions: Mutex<HashMap<String, Entry>>,
    open: Option<Options>,
    default: Option<Arc<Session>>,
    /// kind per tracing level: TRACE, DEBUG, INFO, WARN, ERROR
    levels: [Option<Kind>; 5],
}

impl Default for SessionLayer {
    fn default() -> Self {
        SessionLayer::new()
    }
}

fn level_index(l: &Level) -> usize {
    match *l {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        _ => 4,
    }
}

impl SessionLayer {
    /// Opens a session with the library's defaults for each new `session_id`.
    pub fn new() -> SessionLayer {
        SessionLayer {
            sessions: Mutex::new(HashMap::new()),
            open: Some(Options::new()),
            default: None,
            levels: [
                None,
                None,
                Some(Kind::State),
                Some(Kind::Error),
                Some(Kind::Error),
            ],
        }
    }

    /// The options for the sessions the layer opens (the id is the span's `session_id`);
    /// `None`: bind only sessions given to [`register`](Self::register).
    pub fn open_with(mut self, template: Option<Options>) -> SessionLayer {
        self.open = template.map(|o| o.full_policy(FullPolicy::Drop));
        self
    }

    /// The session of events that happen outside every session span.
    pub fn default_session(mut self, session: Arc<Session>) -> SessionLayer {
        self.default = Some(session);
        self
    }

    /// The kind events of a tracing level become when they have no `kind` field; `None`: not recorded.
    pub fn map_level(mut self, level: Level, kind: Option<Kind>) -> SessionLayer {
        self.levels[level_index(&level)] = kind;
        self
    }

    /// Spans with `session_id = session.id()` opened from now on log into this session.
    pub fn register(&self, session: Arc<Session>) {
        let mut m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(session.id().to_string(), Entry::Registered(session));
    }

    fn bind(&self, id: &str, span: &str) -> Option<Arc<Session>> {
        let mut m = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(id) {
            Some(Entry::Registered(s)) => return Some(s.clone()),
            Some(Entry::Opened(w)) => {
                if let Some(s) = w.upgrade() {
                    return Some(s);
                }
            }
            None => {}
        }
        let template = self.open.as_ref()?;
        match Session::open(&template.clone().id(id)) {
            Ok(s) => {
                let s = Arc::new(s);
                m.insert(id.to_string(), Entry::Opened(Arc::downgrade(&s)));
                Some(s)
            }
            Err(e) => {
                // no tracing from inside the subscriber; the span's events go to an outer session
                eprintln!("fuguelog: span '{}' session_id={}: {}", span, id, e);
                None
            }
        }
    }
}

/// Reads one string-ish field by name.
struct FindField<'a> {
    name: &'a str,
    value: Option<String>,
}

impl Visit for FindField<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.name {
            self.value = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == self.name {
            self.value = Some(format!("{:?}", value));
        }
    }
}

enum Val {
    Int(i128),
    Text(String),
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Int(i) => write!(f, "{}", i),
            Val::Text(t) => f.write_str(t),
        }
    }
}

/// An event's fields: the message apart, the rest in order; taken by name as the kind needs them.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(&'static str, Val)>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.push((field.name(), Val::Int(value as i128)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.push((field.name(), Val::Int(value as i128)));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{:?}", value));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, v: String) {
        match field.name() {
            "message" => self.message = Some(v),
            "kind" => {}
            name => self.rest.push((name, Val::Text(v))),
        }
    }

    fn take(&mut self, name: &str) -> Option<Val> {
        let i = self.rest.iter().position(|(n, _)| *n == name)?;
        Some(self.rest.remove(i).1)
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.take(name).map(|v| v.to_string())
    }

    fn int(&mut self, name: &str) -> Option<i128> {
        match self.take(name)? {
            Val::Int(i) => Some(i),
            Val::Text(t) => t.trim().parse().ok(),
        }
    }

    /// The named field, else the message.
    fn title(&mut self, name: &str) -> String {
        self.text(name)
            .or_else(|| self.message.take())
            .unwrap_or_default()
    }

    /// The named field, then the unused message, then every other field as name=value.
    fn all_text(&mut self, name: &str) -> String {
        let out = self.text(name).unwrap_or_default();
        self.rest_after(out)
    }

    /// `out`, then the unused message, then every other field as name=value.
    fn rest_after(&mut self, mut out: String) -> String {
        for part in self
            .message
            .take()
            .into_iter()
            .chain(self.rest.drain(..).map(|(n, v)| format!("{}={}", n, v)))
        {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&part);
        }
        out
    }

    /// As all_text, as a list: the named field split on whitespace, then the message, then name=value.
    fn words(&mut self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self.text(name).map_or_else(Vec::new, |t| {
            t.split_whitespace().map(String::from).collect()
        });
        out.extend(self.message.take());
        out.extend(self.rest.drain(..).map(|(n, v)| format!("{}={}", n, v)));
        out
    }
}

/// The C strings cannot carry NUL: it becomes U+FFFD.
fn clean(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

fn clamp_i32(v: i128) -> i32 {
    v.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

fn clamp_u(v: i128, max: u64) -> u64 {
    v.clamp(0, max as i128) as u64
}

impl SessionLayer {
    /// The event's kind, and the text of a `kind` field that names no kind (recorded by the
    /// level's kind, with `kind=...` in its text).
    fn kind_of(&self, event: &Event<'_>) -> (Option<Kind>, Option<String>) {
        let meta = event.metadata();
        let mut unknown = None;
        if meta.fields().field("kind").is_some() {
            let mut f = FindField {
                name: "kind",
                value: None,
            };
            event.record(&mut f);
            match f.value.as_deref().map(str::parse) {
                Some(Ok(k)) => return (Some(k), None),
                _ => unknown = f.value,
            }
        }
        (self.levels[level_index(meta.level())], unknown)
    }

    fn emit(s: &Session, kind: Kind, unknown: Option<String>, event: &Event<'_>) {
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        if let Some(k) = unknown {
            f.rest.insert(0, ("kind", Val::Text(k)));
        }
        let r = f.int("ref").map_or(0, |r| clamp_u(r, u64::MAX));
        // a lost event is counted by the ring and becomes a `dropped` line; nothing else to do here
        let _ = match kind {
            Kind::Spawn => {
                let pid = f
                    .int("pid")
                    .map_or(std::process::id(), |p| clamp_u(p, u32::MAX as u64) as u32);
                let ppid = f
                    .int("ppid")
                    .map_or_else(std::os::unix::process::parent_id, |p| {
                        clamp_u(p, u32::MAX as u64) as u32
                    });
                let cwd = f.text("cwd").unwrap_or_else(|| {
                    std::env::current_dir()
                        .map(|d| d.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                let argv: Vec<String> = f.words("argv").into_iter().map(clean).collect();
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                s.emit_spawn(r, pid, ppid, &argv, &clean(cwd))
            }
            Kind::Exit => {
                let status = f.int("status").map_or(0, clamp_i32);
                let signal = f.int("signal").map_or(0, clamp_i32);
                let d = f.int("duration_ns").map_or(0, |d| clamp_u(d, u64::MAX));
                s.emit_exit(r, status, signal, d)
            }
            Kind::Action => {
                let action = clean(f.title("action"));
                let target = clean(f.text("target").unwrap_or_default());
                s.emit_action(r, &action, &target, &clean(f.all_text("detail")))
            }
            Kind::Command => {
                let name = clean(f.title("name"));
                let args: Vec<String> = f.words("args").into_iter().map(clean).collect();
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                s.emit_command(r, &name, &args)
            }
            Kind::Completion => {
                let task = clean(f.title("task"));
                let d = f.int("duration_ns").map_or(0, |d| clamp_u(d, u64::MAX));
                s.emit_completion(r, &task, &clean(f.all_text("outcome")), d)
            }
            Kind::Error => {
                let code = f.int("code").map_or(0, clamp_i32);
                let origin = f
                    .text("origin")
                    .unwrap_or_else(|| meta.target().to_string());
                let mut message = f.rest_after(String::new());
                if *meta.level() == Level::WARN {
                    message.insert_str(0, "warning: ");
                }
                s.emit_error(r, code, &clean(message), &clean(origin))
            }
            Kind::State => {
                let from = clean(f.text("from").unwrap_or_default());
                let to = clean(f.text("to").unwrap_or_default());
                s.emit_state(r, &from, &to, &clean(f.all_text("reason")))
            }
            Kind::Prompt => s.emit_prompt(r, f.all_text("text").as_bytes()),
            Kind::Transcript => {
                let stream = f
                    .int("stream")
                    .map_or(1, |v| clamp_u(v, u32::MAX as u64) as u32);
                s.emit_transcript(r, stream, f.all_text("data").as_bytes())
            }
            Kind::Input => s.emit_input(r, f.all_text("data").as_bytes()),
            // the drainer's own kinds: a producer cannot write them, so they are kept as state text
            Kind::Level | Kind::Dropped => s.emit_state(
                r,
                "",
                "",
                &clean(format!("kind={} {}", kind, f.all_text("reason"))),
            ),
        };
    }
}

impl<S> Layer<S> for SessionLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _meta: &'static Metadata<'static>) -> Interest {
        // never always/never: the answer depends on a level word that changes at run time
        Interest::sometimes()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = match ctx.span(id) {
            Some(span) => span,
            None => return,
        };
        let mut session = None;
        if attrs.metadata().fields().field("session_id").is_some() {
            let mut f = FindField {
                name: "session_id",
                value: None,
            };
            attrs.record(&mut f);
            if let Some(sid) = f.value {
                session = self.bind(&sid, attrs.metadata().name());
            }
        }
        if session.is_none() {
            session = span
                .parent()
                .and_then(|p| p.extensions().get::<Bound>().map(|b| b.0.clone()));
        }
        if let Some(s) = session {
            span.extensions_mut().insert(Bound(s));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span_session = ctx
            .event_span(event)
            .and_then(|sp| sp.extensions().get::<Bound>().map(|b| b.0.clone()));
        let session = match span_session.as_ref().or(self.default.as_ref()) {
            Some(s) => s,
            None => return,
        };
        let (kind, unknown) = match self.kind_of(event) {
            (Some(k), unknown) => (k, unknown),
            (None, _) => return,
        };
        // the live level word, on every event
        if !session.admits(kind) {
            return;
        }
        Self::emit(session, kind, unknown, event);
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids = String::new();
        for id in self
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
        {
            let _ = write!(ids, "{} ", id);
        }
        f.debug_struct("SessionLayer")
            .field("sessions", &ids.trim_end())
            .finish()
    }
}
