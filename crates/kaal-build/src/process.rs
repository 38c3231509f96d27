//! Small helpers around [`std::process::Command`].

use std::process::{Command, ExitStatus, Output};

use crate::{Error, Result};

/// The command line of `cmd` as one printable string (program and arguments).
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        s.push(' ');
        if arg.is_empty() || arg.contains([' ', '"', '\'']) {
            s.push('"');
            s.push_str(&arg.replace('"', "\\\""));
            s.push('"');
        } else {
            s.push_str(&arg);
        }
    }
    s
}

/// Runs `cmd` with inherited standard streams and returns its exit status.
pub fn status(cmd: &mut Command) -> Result<ExitStatus> {
    cmd.status().map_err(|source| Error::Spawn {
        command: display(cmd),
        source,
    })
}

/// Runs `cmd` with inherited standard streams; fails unless it exits successfully.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = status(cmd)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command: display(cmd),
            status,
        })
    }
}

/// Runs `cmd` capturing its output; fails if it cannot start. The exit status is left
/// for the caller to judge.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output().map_err(|source| Error::Spawn {
        command: display(cmd),
        source,
    })
}

/// The `cargo` to run: the one that started us (`$CARGO`), else `cargo` from `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_arguments_with_spaces() {
        let mut cmd = Command::new("qemu");
        cmd.args(["-append", "a b", "-m", "256M", ""]);
        assert_eq!(display(&cmd), r#"qemu -append "a b" -m 256M """#);
    }
}
