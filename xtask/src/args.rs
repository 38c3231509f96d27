//! Command-line options shared by the subcommands.

use std::time::Duration;

use kaal_build::qemu::QemuConfig;

use crate::Result;

/// Parsed options.
#[derive(Clone, Debug)]
pub struct Args {
    /// Positional arguments.
    pub positional: Vec<String>,
    /// QEMU configuration from `--mem`, `--cpu`, `--gic`, `--el2`, `--smp`.
    pub qemu: QemuConfig,
    /// `--quick`: one QEMU configuration only.
    pub quick: bool,
    /// `--skip a,b`: steps of `test` to leave out.
    pub skip: Vec<String>,
    /// `--suite NAME` (repeatable): only these QEMU suites.
    pub suites: Vec<String>,
    /// `--jobs N`: QEMU runs at a time.
    pub jobs: usize,
    /// `--timeout SECS`: per QEMU run.
    pub timeout: Duration,
    /// `--check`: judge an interactive `qemu` run like a test.
    pub check: bool,
}

impl Args {
    /// Parses `argv`.
    pub fn parse(argv: &[String]) -> Result<Args> {
        let mut args = Args {
            positional: Vec::new(),
            qemu: QemuConfig::default(),
            quick: false,
            skip: Vec::new(),
            suites: Vec::new(),
            jobs: 2,
            timeout: Duration::from_secs(60),
            check: false,
        };
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--mem" => args.qemu.memory_mib = value()?.trim_end_matches(['M', 'm']).parse()?,
                "--cpu" => args.qemu.cpu = value()?.parse()?,
                "--gic" => args.qemu.gic = value()?.parse()?,
                "--smp" => args.qemu.smp = value()?.parse()?,
                "--el2" => args.qemu.el2 = true,
                "--bootarg" => args.qemu = args.qemu.clone().bootarg(value()?),
                "--quick" => args.quick = true,
                "--check" => args.check = true,
                "--skip" => args.skip.extend(value()?.split(',').map(str::to_owned)),
                "--suite" => args
                    .suites
                    .push(value()?.trim_start_matches("suite-").to_owned()),
                "--jobs" => args.jobs = value()?.parse::<usize>()?.max(1),
                "--timeout" => args.timeout = Duration::from_secs(value()?.parse()?),
                s if s.starts_with("--") => return Err(format!("unknown option `{s}`").into()),
                s => args.positional.push(s.to_owned()),
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaal_build::qemu::{Cpu, Gic};

    fn parse(s: &str) -> Args {
        Args::parse(&s.split_whitespace().map(str::to_owned).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_qemu_options() {
        let a = parse("ipc --cpu max --gic 2 --el2 --mem 1024M --smp 2");
        assert_eq!(a.positional, ["ipc"]);
        assert_eq!(
            (
                a.qemu.cpu,
                a.qemu.gic,
                a.qemu.el2,
                a.qemu.memory_mib,
                a.qemu.smp
            ),
            (Cpu::Max, Gic::V2, true, 1024, 2)
        );
    }

    #[test]
    fn parses_test_options() {
        let a = parse("--quick --skip publish,template --suite suite-ipc --jobs 0 --timeout 5");
        assert!(a.quick);
        assert_eq!(a.skip, ["publish", "template"]);
        assert_eq!(a.suites, ["ipc"]);
        assert_eq!(a.jobs, 1);
        assert_eq!(a.timeout, Duration::from_secs(5));
    }

    #[test]
    fn rejects_unknown_options() {
        assert!(Args::parse(&["--frobnicate".to_owned()]).is_err());
        assert!(Args::parse(&["--cpu".to_owned()]).is_err());
    }
}
