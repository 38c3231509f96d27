//! QEMU `virt` machine configurations and their command lines.

use std::{
    ffi::OsString,
    fmt,
    path::Path,
    process::{Command, ExitStatus},
    str::FromStr,
};

use crate::{Error, Result, process, tools::QEMU};

/// CPU model passed to `-cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cpu {
    /// `cortex-a53` (ARMv8.0).
    CortexA53,
    /// `cortex-a72` (ARMv8.0).
    CortexA72,
    /// `max`: every feature QEMU emulates.
    Max,
}

impl Cpu {
    /// Every CPU the test matrix covers.
    pub const ALL: [Cpu; 3] = [Cpu::CortexA53, Cpu::CortexA72, Cpu::Max];

    /// QEMU's name for this CPU.
    pub fn as_str(self) -> &'static str {
        match self {
            Cpu::CortexA53 => "cortex-a53",
            Cpu::CortexA72 => "cortex-a72",
            Cpu::Max => "max",
        }
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cpu {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Cpu::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown CPU `{s}` (expected cortex-a53, cortex-a72 or max)"
                ))
            })
    }
}

/// Version of the GIC interrupt controller (`-machine gic-version=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gic {
    /// GICv2.
    V2,
    /// GICv3.
    V3,
}

impl Gic {
    /// Both versions.
    pub const ALL: [Gic; 2] = [Gic::V2, Gic::V3];

    /// The number QEMU expects.
    pub fn number(self) -> u8 {
        match self {
            Gic::V2 => 2,
            Gic::V3 => 3,
        }
    }
}

impl FromStr for Gic {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim_start_matches(['v', 'V']) {
            "2" => Ok(Gic::V2),
            "3" => Ok(Gic::V3),
            _ => Err(Error::Invalid(format!(
                "unknown GIC version `{s}` (expected 2 or 3)"
            ))),
        }
    }
}

/// How the serial console is connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// `-nographic`: serial and QEMU monitor on the terminal (`Ctrl-A X` quits).
    Interactive,
    /// `-display none -serial stdio -monitor none`: serial only, for capturing.
    Captured,
}

/// One QEMU `virt` machine configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// CPU model.
    pub cpu: Cpu,
    /// GIC version.
    pub gic: Gic,
    /// Boot at EL2 (`virtualization=on`) instead of EL1.
    pub el2: bool,
    /// Boot at EL3 (`secure=on`: the secure world and EL3, with no firmware), which
    /// the kernel refuses with a message (a test of that refusal).
    pub secure: bool,
    /// RAM size in MiB.
    pub memory_mib: u32,
    /// Number of CPUs.
    pub smp: u32,
    /// Kernel command line (`-append`); empty for none.
    pub bootargs: String,
    /// A Unix socket for QEMU's QMP monitor (`-qmp unix:PATH,server=on,wait=off`).
    pub qmp_socket: Option<std::path::PathBuf>,
    /// A raw disk image attached as the machine's first virtio block device
    /// (`-drive file=PATH,if=none,format=raw,id=d0 -device virtio-blk-device,drive=d0`):
    /// on QEMU `virt` it sits on the virtio-mmio transport with the highest address
    /// (`0x0a003e00`, IRQ 79), the last of the 32 in device-tree order.
    pub disk: Option<std::path::PathBuf>,
    /// Further QEMU arguments, appended as they are (e.g. `-rtc clock=vm`).
    pub extra_args: Vec<String>,
    /// A device tree blob to boot with (`-dtb PATH`) instead of the one QEMU generates,
    /// e.g. one from [`QemuConfig::dump_dtb`] with a property changed. QEMU still
    /// rewrites its `/memory`, `/psci` and `/chosen` nodes when it loads it.
    pub dtb: Option<std::path::PathBuf>,
}

impl Default for QemuConfig {
    /// `cortex-a53`, GICv3, EL1, 256 MiB, one CPU, no boot arguments.
    fn default() -> Self {
        QemuConfig {
            cpu: Cpu::CortexA53,
            gic: Gic::V3,
            el2: false,
            secure: false,
            memory_mib: 256,
            smp: 1,
            bootargs: String::new(),
            qmp_socket: None,
            disk: None,
            extra_args: Vec::new(),
            dtb: None,
        }
    }
}

impl QemuConfig {
    /// Sets the CPU model.
    pub fn cpu(mut self, cpu: Cpu) -> Self {
        self.cpu = cpu;
        self
    }

    /// Sets the GIC version.
    pub fn gic(mut self, gic: Gic) -> Self {
        self.gic = gic;
        self
    }

    /// Boots at EL2 when `el2` is true.
    pub fn el2(mut self, el2: bool) -> Self {
        self.el2 = el2;
        self
    }

    /// Sets the RAM size in MiB.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Sets the number of CPUs.
    pub fn smp(mut self, smp: u32) -> Self {
        self.smp = smp;
        self
    }

    /// Attaches the raw disk image `path` as a virtio block device.
    pub fn disk(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.disk = Some(path.into());
        self
    }

    /// Appends `arg` to the boot arguments (space-separated).
    pub fn bootarg(mut self, arg: &str) -> Self {
        if !self.bootargs.is_empty() {
            self.bootargs.push(' ');
        }
        self.bootargs.push_str(arg);
        self
    }

    /// A short name usable in file names, e.g. `cortex-a53-gic3-el2-256m`.
    pub fn label(&self) -> String {
        let smp = if self.smp == 1 {
            String::new()
        } else {
            format!("-smp{}", self.smp)
        };
        format!(
            "{}-gic{}-el{}-{}m{smp}",
            self.cpu,
            self.gic.number(),
            match (self.secure, self.el2) {
                (true, _) => 3,
                (false, true) => 2,
                (false, false) => 1,
            },
            self.memory_mib
        )
    }

    /// The `-machine` value.
    pub fn machine(&self) -> String {
        let virt = if self.el2 { ",virtualization=on" } else { "" };
        let secure = if self.secure { ",secure=on" } else { "" };
        format!("virt,gic-version={}{virt}{secure}", self.gic.number())
    }

    /// QEMU's arguments for booting the kernel ELF `kernel` with console `console`.
    pub fn args(&self, kernel: &Path, console: Console) -> Vec<OsString> {
        self.args_with_machine(kernel, console, &self.machine())
    }

    fn args_with_machine(&self, kernel: &Path, console: Console, machine: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-machine");
        push(machine);
        push("-cpu");
        push(self.cpu.as_str());
        push("-smp");
        push(&self.smp.to_string());
        push("-m");
        push(&format!("{}M", self.memory_mib));
        match console {
            Console::Interactive => push("-nographic"),
            Console::Captured => {
                for a in ["-display", "none", "-serial", "stdio", "-monitor", "none"] {
                    push(a);
                }
            }
        }
        // No network: the image has no driver for it, and it needs no option ROM.
        push("-nic");
        push("none");
        push("-semihosting-config");
        push("enable=on,target=native");
        if !self.bootargs.is_empty() {
            push("-append");
            push(&self.bootargs);
        }
        if let Some(socket) = &self.qmp_socket {
            push("-qmp");
            push(&format!("unix:{},server=on,wait=off", socket.display()));
        }
        for extra in &self.extra_args {
            push(extra);
        }
        if let Some(disk) = &self.disk {
            // QEMU's option syntax doubles a comma inside a value.
            let file = disk.display().to_string().replace(',', ",,");
            push("-drive");
            push(&format!("file={file},if=none,format=raw,id=d0"));
            push("-device");
            push("virtio-blk-device,drive=d0");
        }
        if let Some(dtb) = &self.dtb {
            args.push("-dtb".into());
            args.push(dtb.as_os_str().to_owned());
        }
        args.push("-kernel".into());
        args.push(kernel.as_os_str().to_owned());
        args
    }

    /// The QEMU command (not started yet).
    pub fn command(&self, kernel: &Path, console: Console) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(self.args(kernel, console));
        cmd
    }

    /// Writes the device tree QEMU generates for this configuration (booting `kernel`)
    /// to `out` (`-machine ...,dumpdtb=OUT`; QEMU exits once it is written), for a test
    /// that boots with a changed copy of it ([`QemuConfig::dtb`]). The blob is not
    /// packed: its header's total size is QEMU's whole buffer (1 MiB).
    pub fn dump_dtb(&self, kernel: &Path, out: &Path) -> Result<()> {
        let plain = QemuConfig {
            qmp_socket: None,
            disk: None,
            dtb: None,
            ..self.clone()
        };
        // QEMU's option syntax doubles a comma inside a value.
        let file = out.display().to_string().replace(',', ",,");
        let machine = format!("{},dumpdtb={file}", self.machine());
        let mut cmd = Command::new(QEMU);
        cmd.args(plain.args_with_machine(kernel, Console::Captured, &machine));
        let output = process::output(&mut cmd)?;
        if !output.status.success() || !out.is_file() {
            return Err(Error::Invalid(format!(
                "`{}` wrote no device tree ({}): {}",
                process::display(&cmd),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(())
    }

    /// A covering matrix for long suites: every CPU, GIC version, exception level, both
    /// RAM sizes and 1, 2 and 4 cores appear at least once, in three runs.
    pub fn covering_matrix() -> Vec<QemuConfig> {
        vec![
            QemuConfig::default()
                .cpu(Cpu::CortexA53)
                .gic(Gic::V2)
                .memory_mib(256)
                .smp(2),
            QemuConfig::default()
                .cpu(Cpu::CortexA72)
                .gic(Gic::V3)
                .el2(true)
                .memory_mib(256),
            QemuConfig::default()
                .cpu(Cpu::Max)
                .gic(Gic::V3)
                .memory_mib(1024)
                .smp(4),
        ]
    }

    /// The configurations a test suite runs on: every CPU × GIC version × EL1/EL2 at
    /// 256 MiB on one core (but `cortex-a72`, GICv2, EL2 on two), plus 1 GiB runs on
    /// `cortex-a53` (GICv3, EL1, two cores) and `max` (GICv3, EL2, four cores).
    pub fn test_matrix() -> Vec<QemuConfig> {
        let mut all = Vec::new();
        for cpu in Cpu::ALL {
            for gic in Gic::ALL {
                for el2 in [false, true] {
                    // One GICv2 run with two cores (SGIs through the distributor).
                    let cores = if (cpu, gic, el2) == (Cpu::CortexA72, Gic::V2, true) {
                        2
                    } else {
                        1
                    };
                    all.push(
                        QemuConfig::default()
                            .cpu(cpu)
                            .gic(gic)
                            .el2(el2)
                            .memory_mib(256)
                            .smp(cores),
                    );
                }
            }
        }
        all.push(
            QemuConfig::default()
                .cpu(Cpu::CortexA53)
                .gic(Gic::V3)
                .memory_mib(1024)
                .smp(2),
        );
        all.push(
            QemuConfig::default()
                .cpu(Cpu::Max)
                .gic(Gic::V3)
                .el2(true)
                .memory_mib(1024)
                .smp(4),
        );
        all
    }
}

/// Boots `kernel` with the serial console on this terminal (`-nographic`) and waits for
/// QEMU to exit. Prints the command line first.
pub fn run_interactive(config: &QemuConfig, kernel: &Path) -> Result<ExitStatus> {
    let mut cmd = config.command(kernel, Console::Interactive);
    eprintln!("kaal-build: {}", process::display(&cmd));
    eprintln!("kaal-build: (press Ctrl-A X to quit QEMU)");
    process::status(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(cfg: &QemuConfig, console: Console) -> String {
        process::display(&cfg.command(Path::new("/img/kernel.elf"), console))
    }

    #[test]
    fn default_command_line() {
        assert_eq!(
            shown(&QemuConfig::default(), Console::Interactive),
            "qemu-system-aarch64 -machine virt,gic-version=3 -cpu cortex-a53 -smp 1 -m 256M \
             -nographic -nic none -semihosting-config enable=on,target=native -kernel /img/kernel.elf"
        );
    }

    #[test]
    fn el2_gic2_captured_with_bootargs() {
        let cfg = QemuConfig::default()
            .cpu(Cpu::Max)
            .gic(Gic::V2)
            .el2(true)
            .memory_mib(1024)
            .bootarg("kaal.test.ram_mib=1024")
            .bootarg("quiet");
        assert_eq!(
            shown(&cfg, Console::Captured),
            "qemu-system-aarch64 -machine virt,gic-version=2,virtualization=on -cpu max -smp 1 -m 1024M \
             -display none -serial stdio -monitor none -nic none \
             -semihosting-config enable=on,target=native -append \"kaal.test.ram_mib=1024 quiet\" \
             -kernel /img/kernel.elf"
        );
        assert_eq!(cfg.label(), "max-gic2-el2-1024m");
    }

    #[test]
    fn disk_is_a_virtio_blk_device() {
        let cfg = QemuConfig::default().disk("/tmp/a,b.img");
        let shown = shown(&cfg, Console::Captured);
        assert!(
            shown.ends_with(
                "-drive file=/tmp/a,,b.img,if=none,format=raw,id=d0 \
                 -device virtio-blk-device,drive=d0 -kernel /img/kernel.elf"
            ),
            "{shown}"
        );
        assert_eq!(cfg.label(), QemuConfig::default().label());
    }

    #[test]
    fn secure_boots_at_el3() {
        let cfg = QemuConfig {
            secure: true,
            el2: true,
            ..QemuConfig::default()
        };
        assert_eq!(
            cfg.machine(),
            "virt,gic-version=3,virtualization=on,secure=on"
        );
        assert_eq!(cfg.label(), "cortex-a53-gic3-el3-256m");
    }

    #[test]
    fn dtb_comes_before_the_kernel() {
        let cfg = QemuConfig {
            dtb: Some("/tmp/virt.dtb".into()),
            ..QemuConfig::default()
        };
        assert!(
            shown(&cfg, Console::Captured).ends_with("-dtb /tmp/virt.dtb -kernel /img/kernel.elf")
        );
    }

    #[test]
    fn parses_cpu_and_gic() {
        assert_eq!("cortex-a72".parse::<Cpu>().unwrap(), Cpu::CortexA72);
        assert!("cortex-a9".parse::<Cpu>().is_err());
        assert_eq!("v2".parse::<Gic>().unwrap(), Gic::V2);
        assert_eq!("3".parse::<Gic>().unwrap(), Gic::V3);
        assert!("4".parse::<Gic>().is_err());
    }

    #[test]
    fn matrix_covers_every_combination_and_large_memory() {
        let m = QemuConfig::test_matrix();
        for cpu in Cpu::ALL {
            for gic in Gic::ALL {
                for el2 in [false, true] {
                    assert!(m.iter().any(|c| c.cpu == cpu
                        && c.gic == gic
                        && c.el2 == el2
                        && c.memory_mib == 256));
                }
            }
        }
        assert!(
            m.iter()
                .any(|c| c.cpu == Cpu::CortexA53 && c.memory_mib == 1024)
        );
        assert!(m.iter().any(|c| c.cpu == Cpu::Max && c.memory_mib == 1024));
        let mut labels: Vec<_> = m.iter().map(QemuConfig::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), m.len(), "labels are unique");
    }
}
