//! Run a command (usually QEMU) with a timeout, capturing its output.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use crate::{Error, Result, process};

/// How [`run_captured`] runs its command.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Kill the command (and its process group) after this long.
    pub timeout: Duration,
    /// Also copy the command's standard output to ours as it arrives.
    pub echo: bool,
    /// A QMP command to send once a line appears on the console (QEMU must have been
    /// started with `-qmp unix:SOCKET,server=on,wait=off`, see
    /// [`QemuConfig::qmp_socket`](crate::qemu::QemuConfig::qmp_socket)).
    pub qmp: Option<QmpAction>,
    /// Bytes to write to the command's standard input (for QEMU: the serial line) once
    /// a line appears on the console; without it standard input is closed.
    pub input: Option<SerialInput>,
}

/// Bytes typed on QEMU's serial line when its console shows a marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialInput {
    /// Text on the console after which the bytes are sent.
    pub after: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A QMP command sent to a running QEMU when its console shows a marker: for tests of
/// what a machine event (`system_powerdown`, ...) does to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QmpAction {
    /// QEMU's QMP socket.
    pub socket: PathBuf,
    /// Text on the console after which the command is sent.
    pub after: String,
    /// The QMP command name, e.g. `system_powerdown`.
    pub command: String,
}

impl Default for RunOptions {
    /// 60 seconds, no echo, no QMP command.
    fn default() -> Self {
        RunOptions {
            timeout: Duration::from_secs(60),
            echo: false,
            qmp: None,
            input: None,
        }
    }
}

/// Sends `command` over the QMP socket: greeting, capabilities negotiation, command.
#[cfg(unix)]
fn send_qmp(socket: &Path, command: &str) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?; // the greeting
    let mut writer = stream;
    writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")?;
    line.clear();
    reader.read_line(&mut line)?;
    writer.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())?;
    line.clear();
    reader.read_line(&mut line)?;
    Ok(())
}

#[cfg(not(unix))]
fn send_qmp(_socket: &Path, _command: &str) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "QMP over a Unix socket needs a Unix host",
    ))
}

/// How a captured run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// Exited with this code.
    Exited(i32),
    /// Killed by a signal it did not ask for.
    Signalled,
    /// Still running at the deadline, so it was killed.
    TimedOut,
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Termination::Exited(code) => write!(f, "exit code {code}"),
            Termination::Signalled => f.write_str("killed by a signal"),
            Termination::TimedOut => f.write_str("timed out"),
        }
    }
}

/// What a captured run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// How it ended.
    pub termination: Termination,
    /// Its standard output (for QEMU: the serial console), lossily decoded.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Wall-clock time it ran.
    pub elapsed: Duration,
}

impl RunOutput {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited(0)
    }

    /// The whole log: standard output, then standard error (if any) and how it ended.
    pub fn log(&self) -> String {
        let mut log = self.stdout.clone();
        if !log.is_empty() && !log.ends_with('\n') {
            log.push('\n');
        }
        if !self.stderr.trim().is_empty() {
            log.push_str("--- stderr ---\n");
            log.push_str(&self.stderr);
            if !self.stderr.ends_with('\n') {
                log.push('\n');
            }
        }
        log.push_str(&format!(
            "--- {} after {:.1} s ---\n",
            self.termination,
            self.elapsed.as_secs_f64()
        ));
        log
    }

    /// The last `n` lines of [`RunOutput::log`].
    pub fn tail(&self, n: usize) -> String {
        tail(&self.log(), n)
    }

    /// Writes [`RunOutput::log`] to `path`, creating its directory.
    pub fn save_log(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::write(path, self.log()).map_err(|e| Error::io(path, e))
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    out.push('\n');
    out
}

/// Runs `cmd` with standard input closed and its output captured, killing it when
/// `options.timeout` expires.
///
/// On Unix the command gets its own process group, and the whole group is killed on
/// timeout, so a `cargo run` that started QEMU takes QEMU with it.
pub fn run_captured(mut cmd: Command, options: &RunOptions) -> Result<RunOutput> {
    cmd.stdin(if options.input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        command: process::display(&cmd),
        source,
    })?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stdout = child
        .stdout
        .take()
        .map(|s| reader(s, options.echo, Some(Arc::clone(&seen))));
    let stderr = child.stderr.take().map(|s| reader(s, false, None));
    let mut pending = options.qmp.clone();
    let mut stdin = child.stdin.take();
    let mut input = options.input.clone();
    let mut writer: Option<thread::JoinHandle<std::process::ChildStdin>> = None;

    let termination = loop {
        match child
            .try_wait()
            .map_err(|e| Error::io(cmd.get_program(), e))?
        {
            Some(status) => {
                break status
                    .code()
                    .map_or(Termination::Signalled, Termination::Exited);
            }
            None if start.elapsed() >= options.timeout => {
                kill(&mut child);
                break Termination::TimedOut;
            }
            None => {
                if let Some(send) = &input {
                    let shown = seen.lock().is_ok_and(|bytes| {
                        String::from_utf8_lossy(&bytes).contains(send.after.as_str())
                    });
                    if shown && let Some(mut pipe) = stdin.take() {
                        // Written from a thread: the guest takes the bytes at its own pace.
                        let bytes = send.bytes.clone();
                        writer = Some(thread::spawn(move || {
                            let _ = pipe.write_all(&bytes);
                            let _ = pipe.flush();
                            // Handed back, so that the line stays open (no end of file)
                            // until the run ends.
                            pipe
                        }));
                        input = None;
                    }
                }
                if let Some(action) = &pending {
                    let shown = seen.lock().is_ok_and(|bytes| {
                        String::from_utf8_lossy(&bytes).contains(action.after.as_str())
                    });
                    if shown {
                        if let Err(e) = send_qmp(&action.socket, &action.command) {
                            eprintln!("kaal-build: QMP `{}` failed: {e}", action.command);
                        }
                        pending = None;
                    }
                }
                thread::sleep(Duration::from_millis(20))
            }
        }
    };
    let elapsed = start.elapsed();
    drop(stdin);
    // The command is gone, so a write still blocked on the pipe fails and returns.
    drop(writer.map(thread::JoinHandle::join));
    // Children of the command may still hold the pipes open; take the group down with it.
    #[cfg(unix)]
    kill_group(child.id());
    let join = |h: Option<thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(RunOutput {
        termination,
        stdout: join(stdout),
        stderr: join(stderr),
        elapsed,
    })
}

fn reader(
    mut source: impl Read + Send + 'static,
    echo: bool,
    seen: Option<Arc<Mutex<Vec<u8>>>>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if let Some(seen) = &seen
                        && let Ok(mut seen) = seen.lock()
                    {
                        seen.extend_from_slice(&buf[..n]);
                    }
                    if echo {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]);
                        let _ = out.flush();
                    }
                }
            }
        }
        all
    })
}

fn kill(child: &mut Child) {
    #[cfg(unix)]
    kill_group(child.id());
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(unix)]
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn captures_output_and_exit_code() {
        let out = run_captured(
            sh("echo hello; echo oops >&2; exit 3"),
            &RunOptions::default(),
        )
        .unwrap();
        assert_eq!(out.termination, Termination::Exited(3));
        assert_eq!(out.stdout, "hello\n");
        assert!(out.log().contains("--- stderr ---\noops\n--- exit code 3"));
        assert!(!out.success());
    }

    #[test]
    fn kills_the_whole_group_on_timeout() {
        let opts = RunOptions {
            qmp: None,
            input: None,
            timeout: Duration::from_millis(300),
            echo: false,
        };
        // The grandchild keeps stdout open; the run must still end promptly.
        let out = run_captured(sh("echo started; sleep 30 & sleep 30"), &opts).unwrap();
        assert_eq!(out.termination, Termination::TimedOut);
        assert_eq!(out.stdout, "started\n");
        assert!(out.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a", 5), "a\n");
    }
}
