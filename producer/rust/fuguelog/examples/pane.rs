// SPDX-License-Identifier: MIT
// pane.rs: a fugue pane in miniature — a session per pane span, a spawned program, a prompt, its transcript.
//
//   pane [--session-id ID] [--level LEVEL] [--fugue-log PATH]
//
// The pane's span carries `session_id`, so SessionLayer opens that session and everything logged
// inside the span goes there. Two turns run a shell command each and log its output as
// `transcript` events. Between the turns the pane asks `fugue-log level ID full` — another
// process, writing the ring's level word — so at the default `prompts` the first turn's transcript
// is filtered and the second one's is recorded. Run it next to a `fugue-logd` and read the result
// with `fugue-log cat ID`.
use fuguelog::layer::SessionLayer;
use fuguelog::{Level, Options};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;
use tracing::{error, info, info_span, warn};
use tracing_subscriber::layer::SubscriberExt;

fn usage(msg: &str) -> ! {
    eprintln!(
        "pane: {}\nusage: pane [--session-id ID] [--level LEVEL] [--fugue-log PATH]",
        msg
    );
    std::process::exit(2);
}

fn main() {
    let mut id = format!("pane-{}", std::process::id());
    let mut level = Level::Prompts;
    let mut flog = std::env::var("FUGUE_LOG").unwrap_or_else(|_| "fugue-log".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{} needs a value", a)))
        };
        match a.as_str() {
            "--session-id" => id = val(),
            "--level" => {
                level = val()
                    .parse()
                    .unwrap_or_else(|e| usage(&format!("--level: {}", e)))
            }
            "--fugue-log" => flog = val(),
            _ => usage(&format!("unknown argument '{}'", a)),
        }
    }

    let layer = SessionLayer::new().open_with(Some(Options::new().level(level)));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");

    let pane = info_span!("pane", session_id = %id);
    let _in_pane = pane.enter();
    info!(kind = "action", action = "attach", target = %id, "pane opened");
    run_turn(1, "list the files", "printf 'one\\ntwo\\n'");

    // someone outside the pane turns the level up, as `fugue-log level` would from a shell
    let out = Command::new(&flog).args(["level", &id, "full"]).output();
    match out {
        Ok(o) if o.status.success() => {
            print!("fugue-log level: {}", String::from_utf8_lossy(&o.stdout))
        }
        Ok(o) => error!(
            code = -1,
            origin = "pane",
            "fugue-log level failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => error!(code = -2, origin = "pane", "cannot run {}: {}", flog, e),
    }

    run_turn(2, "count to three", "printf 'three\\nfour\\n'; exit 3");
    info!(kind = "action", action = "detach", target = %id, "pane closed");
    println!("session {}", id);
}

/// One turn: the prompt, the program, its output, its exit, and how the turn ended.
fn run_turn(n: u32, prompt: &str, script: &str) {
    let turn = info_span!("turn", n);
    let _in_turn = turn.enter();
    info!(kind = "prompt", "{}", prompt);
    let start = Instant::now();
    let mut child = match Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            error!(code = -2, "cannot start sh: {}", e);
            return;
        }
    };
    info!(kind = "spawn", pid = child.id(), argv = %format!("sh -c {}", script), cwd = "/");
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .flatten()
    {
        info!(kind = "transcript", stream = 1u32, data = %format!("{}\n", line));
    }
    let status = child.wait().expect("child started");
    let took = start.elapsed().as_nanos() as u64;
    let code = status.code().unwrap_or(-1);
    info!(kind = "exit", status = code, duration_ns = took);
    if code != 0 {
        warn!(status = code, "turn {} ended with a failing command", n);
    }
    info!(kind = "completion", task = %format!("turn {}", n), outcome = if code == 0 { "ok" } else { "failed" }, duration_ns = took);
}
