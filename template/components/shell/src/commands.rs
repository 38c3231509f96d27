//! The shell's commands.

use alloc::string::String;
use core::fmt;

use kaal_abi::Error;
use kaal_user::broker::{BrokerClient, ComponentState};
use kaal_user::cap::{Cap, Endpoint};
use kaal_user::ipc::Message;
use kaal_user::println;
use kaal_user::startup::{ChannelConsumer, ChannelProducer, Startup};

use crate::grants::Grants;

/// `rtc` request: seconds since the epoch.
const RTC_TIME: u64 = 1;
/// `echo` request: the same words back.
const ECHO: u64 = 1;
/// `echo` request: echo this many values from `echo-ping` on `echo-pong`.
const ECHO_RING: u64 = 2;
/// Round trips `bench` measures of each kind.
const BENCH_ROUNDS: u64 = 1000;
/// Slots of the `echo-ping`/`echo-pong` channels (`capacity` in `system.toml`).
const ECHO_SLOTS: usize = 64;

/// One command: its name, arguments and what it does, for `help`.
struct Command {
    name: &'static str,
    arguments: &'static str,
    help: &'static str,
}

const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        arguments: "",
        help: "list the commands",
    },
    Command {
        name: "ps",
        arguments: "",
        help: "components: state, priority, memory, restarts",
    },
    Command {
        name: "mem",
        arguments: "",
        help: "memory: free, total, held by components",
    },
    Command {
        name: "devices",
        arguments: "",
        help: "devices of system.toml and who holds them",
    },
    Command {
        name: "channels",
        arguments: "",
        help: "ring channels and their ends",
    },
    Command {
        name: "uptime",
        arguments: "",
        help: "time since boot",
    },
    Command {
        name: "date",
        arguments: "",
        help: "date and time from the real-time clock",
    },
    Command {
        name: "ls",
        arguments: "",
        help: "files on the disk",
    },
    Command {
        name: "cat",
        arguments: "FILE",
        help: "print a file",
    },
    Command {
        name: "write",
        arguments: "FILE TEXT",
        help: "write TEXT (and a newline) to FILE",
    },
    Command {
        name: "rm",
        arguments: "FILE",
        help: "remove a file",
    },
    Command {
        name: "echo",
        arguments: "TEXT",
        help: "TEXT, round trip through the echo server",
    },
    Command {
        name: "crash",
        arguments: "COMPONENT",
        help: "make a component fault; the broker restarts it",
    },
    Command {
        name: "bench",
        arguments: "",
        help: "call and ring round trips to the echo server",
    },
    Command {
        name: "call",
        arguments: "ENDPOINT LABEL [WORD...]",
        help: "call an endpoint, print the reply",
    },
    Command {
        name: "poweroff",
        arguments: "",
        help: "stop every component and switch off",
    },
];

/// What the shell holds.
pub struct Shell {
    startup: Startup,
    broker: Option<BrokerClient>,
    rtc: Option<Cap<Endpoint>>,
    echo: Option<Cap<Endpoint>>,
    ping: Option<ChannelProducer<u64, ECHO_SLOTS>>,
    pong: Option<ChannelConsumer<u64, ECHO_SLOTS>>,
    #[cfg(feature = "storage")]
    files: Option<protocol::files::FilesClient>,
}

/// A command's failure, printed as `NAME: what`.
enum Failure {
    /// Wrong arguments: prints the usage.
    Usage,
    /// What went wrong.
    Text(String),
}

impl<E: fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::Text(alloc::format!("{error}"))
    }
}

type Outcome = Result<(), Failure>;

/// Fails with `text` (or a formatted message).
macro_rules! fail {
    ($($arg:tt)*) => { return Err(Failure::Text(alloc::format!($($arg)*))) };
}

impl Shell {
    /// Takes the grants the commands use; a missing one disables its commands.
    pub fn new(grants: &Grants, startup: Startup) -> Self {
        Self {
            startup,
            broker: grants.broker().ok(),
            rtc: grants.rtc().ok(),
            echo: grants.echo().ok(),
            ping: grants.echo_ping().ok(),
            pong: grants.echo_pong().ok(),
            #[cfg(feature = "storage")]
            files: match (grants.files_requests(), grants.files_replies()) {
                (Ok(requests), Ok(replies)) => {
                    Some(protocol::files::FilesClient::new(requests, replies))
                }
                _ => None,
            },
        }
    }

    /// Runs one command line.
    pub fn run(&mut self, line: &str) {
        let mut words = line.split_ascii_whitespace();
        let Some(name) = words.next() else {
            return;
        };
        let rest = line[name.len()..].trim_start();
        let outcome = match name {
            "help" => {
                self.help();
                Ok(())
            }
            "ps" => self.ps(),
            "mem" => self.mem(),
            "devices" => self.devices(),
            "channels" => self.channels(),
            "uptime" => {
                uptime();
                Ok(())
            }
            "date" => self.date(),
            "ls" => self.ls(),
            "cat" => self.cat(words.next()),
            "write" => self.write(rest),
            "rm" => self.rm(words.next()),
            "echo" => self.echo(rest),
            "crash" => self.crash(words.next()),
            "bench" => self.bench(),
            "call" => self.call(words),
            "poweroff" => self.poweroff(),
            _ => {
                println!("{name}: unknown command; `help` lists them");
                return;
            }
        };
        match outcome {
            Ok(()) => {}
            Err(Failure::Usage) => {
                let command = COMMANDS.iter().find(|c| c.name == name);
                let arguments = command.map_or("", |c| c.arguments);
                println!("usage: {name} {arguments}");
            }
            Err(Failure::Text(text)) => println!("{name}: {text}"),
        }
    }

    fn help(&self) {
        println!("Commands:");
        for command in COMMANDS {
            let usage = alloc::format!("{} {}", command.name, command.arguments);
            println!("  {usage:<30} {}", command.help);
        }
    }

    fn broker(&self) -> Result<BrokerClient, Failure> {
        self.broker.ok_or_else(|| Failure::Text("no broker".into()))
    }

    fn ps(&self) -> Outcome {
        let broker = self.broker()?;
        println!(
            "{:<3} {:<12} {:<10} {:>4} {:>10} {:>10} {:>8}",
            "ID", "NAME", "STATE", "PRIO", "MEMORY", "QUOTA", "RESTARTS"
        );
        let mut count = 0;
        for component in broker.components() {
            println!(
                "{:<3} {:<12} {:<10} {:>4} {:>10} {:>10} {:>8}",
                component.id,
                component.name(),
                state_name(component.state),
                component.priority,
                Size(component.memory_bytes),
                Size(component.quota_bytes),
                component.restarts
            );
            count += 1;
        }
        if count == 0 {
            fail!("the broker lists no components (is `processes` among the shell's services?)");
        }
        Ok(())
    }

    fn mem(&self) -> Outcome {
        let memory = self.broker()?.memory()?;
        println!(
            "memory: {} free of {}; components hold {}",
            Size(memory.free_bytes),
            Size(memory.total_bytes),
            Size(memory.components_bytes)
        );
        Ok(())
    }

    /// The name of component `index`, for the tables.
    fn component_name(&self, index: Option<u32>) -> String {
        let name = index.and_then(|i| self.broker.and_then(|b| b.component(i).ok()));
        name.map_or_else(|| "-".into(), |c| c.name().into())
    }

    fn devices(&self) -> Outcome {
        let broker = self.broker()?;
        println!(
            "{:<10} {:<18} {:>12} {:>8} {:>4} {:<12}",
            "NAME", "COMPATIBLE", "BASE", "SIZE", "IRQ", "HOLDER"
        );
        for device in broker.devices() {
            let irq = device
                .irq
                .map_or_else(|| "-".into(), |line| alloc::format!("{line}"));
            println!(
                "{:<10} {:<18} {:>#12x} {:>8} {:>4} {:<12}",
                device.name(),
                device.compatible(),
                device.base,
                Size(device.size_bytes),
                irq,
                self.component_name(device.holder)
            );
        }
        Ok(())
    }

    fn channels(&self) -> Outcome {
        let broker = self.broker()?;
        println!(
            "{:<16} {:<12} {:>6} {:>9} {:<12} {:<12}",
            "NAME", "ELEMENT", "SLOTS", "MEMORY", "FROM", "TO"
        );
        for channel in broker.channels() {
            println!(
                "{:<16} {:<12} {:>6} {:>9} {:<12} {:<12}",
                channel.name(),
                channel.element(),
                channel.capacity,
                Size(channel.region_bytes),
                self.component_name(channel.producer),
                self.component_name(channel.consumer)
            );
        }
        Ok(())
    }

    fn date(&self) -> Outcome {
        let rtc = self
            .rtc
            .ok_or_else(|| Failure::Text("no endpoint `rtc`".into()))?;
        let [seconds, ..] = call(rtc, RTC_TIME, [0; 4])?;
        println!("{}", Date(seconds));
        Ok(())
    }

    #[cfg(feature = "storage")]
    fn files(&mut self) -> Result<&mut protocol::files::FilesClient, Failure> {
        self.files
            .as_mut()
            .ok_or_else(|| Failure::Text("no file server channels".into()))
    }

    #[cfg(not(feature = "storage"))]
    fn files(&mut self) -> Result<&mut NoFiles, Failure> {
        fail!("this system has no file server (generated without `storage`)")
    }

    fn ls(&mut self) -> Outcome {
        let mut count = 0u32;
        self.files()?.list(|name, size| {
            println!("{size:>10}  {name}");
            count += 1;
        })?;
        println!("{count} files");
        Ok(())
    }

    fn cat(&mut self, name: Option<&str>) -> Outcome {
        let name = name.ok_or(Failure::Usage)?;
        let mut text = alloc::vec::Vec::new();
        self.files()?
            .read(name, |chunk| text.extend_from_slice(chunk))?;
        let text = String::from_utf8_lossy(&text);
        kaal_user::print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
        Ok(())
    }

    fn write(&mut self, rest: &str) -> Outcome {
        let (name, text) = rest.split_once(' ').ok_or(Failure::Usage)?;
        let mut data = String::from(text.trim_start());
        data.push('\n');
        self.files()?.write(name, data.as_bytes())?;
        println!("wrote {} bytes to {name}", data.len());
        Ok(())
    }

    fn rm(&mut self, name: Option<&str>) -> Outcome {
        let name = name.ok_or(Failure::Usage)?;
        self.files()?.remove(name)?;
        println!("removed {name}");
        Ok(())
    }

    fn echo(&self, text: &str) -> Outcome {
        let Some(echo) = self.echo else {
            println!("{text}");
            return Ok(());
        };
        let mut back = alloc::vec::Vec::new();
        for chunk in text.as_bytes().chunks(32) {
            let mut words = [0u64; 4];
            for (word, bytes) in words.iter_mut().zip(chunk.chunks(8)) {
                let mut raw = [0u8; 8];
                raw[..bytes.len()].copy_from_slice(bytes);
                *word = u64::from_le_bytes(raw);
            }
            let reply = call(echo, ECHO, words)?;
            let bytes = reply.iter().flat_map(|w| w.to_le_bytes());
            back.extend(bytes.take(chunk.len()));
        }
        println!("{}", String::from_utf8_lossy(&back));
        Ok(())
    }

    fn crash(&self, name: Option<&str>) -> Outcome {
        let name = name.ok_or(Failure::Usage)?;
        let broker = self.broker()?;
        let Some(component) = broker.components().find(|c| c.name() == name) else {
            fail!("no component `{name}` (`ps` lists them)");
        };
        if component.state != ComponentState::Running {
            fail!("`{name}` is not running ({})", state_name(component.state));
        }
        broker.inject_fault(component.id)?;
        println!("crash: {name} faulted; its restart policy decides what follows (see `ps`)");
        Ok(())
    }

    fn bench(&mut self) -> Outcome {
        let echo = self
            .echo
            .ok_or_else(|| Failure::Text("no endpoint `echo`".into()))?;
        let frequency = kaal_user::time::ticks_per_second().max(1);
        let nanos = |ticks: u64| ticks * 1_000_000_000 / frequency / BENCH_ROUNDS;
        let start = kaal_user::time::now_ticks();
        for round in 0..BENCH_ROUNDS {
            call(echo, ECHO, [round, 0, 0, 0])?;
        }
        let calls = kaal_user::time::now_ticks() - start;
        println!(
            "bench: call round trip to `echo`: {} ns ({BENCH_ROUNDS} calls)",
            nanos(calls)
        );
        let (Some(ping), Some(pong)) = (&mut self.ping, &mut self.pong) else {
            fail!("no channels `echo-ping` and `echo-pong`");
        };
        call(echo, ECHO_RING, [BENCH_ROUNDS, 0, 0, 0])?;
        let start = kaal_user::time::now_ticks();
        for round in 0..BENCH_ROUNDS {
            ping.push(round)
                .map_err(|_| Failure::Text("`echo-ping` is closed".into()))?;
            let back = pong
                .pop()
                .map_err(|_| Failure::Text("`echo-pong` is closed".into()))?;
            if back != round {
                fail!("sent {round}, got {back} back");
            }
        }
        let rings = kaal_user::time::now_ticks() - start;
        println!(
            "bench: ring round trip to `echo`: {} ns ({BENCH_ROUNDS} messages)",
            nanos(rings)
        );
        Ok(())
    }

    fn call<'a>(&self, mut words: impl Iterator<Item = &'a str>) -> Outcome {
        let name = words.next().ok_or(Failure::Usage)?;
        let label = words.next().ok_or(Failure::Usage)?;
        let label = parse_number(label).ok_or(Failure::Usage)?;
        let mut message = [0u64; 4];
        for (slot, word) in message.iter_mut().zip(words.by_ref()) {
            *slot = parse_number(word).ok_or(Failure::Usage)?;
        }
        if words.next().is_some() {
            fail!("at most four words");
        }
        let endpoint = self.startup.endpoint(name).map_err(|_| {
            Failure::Text(alloc::format!(
                "the shell is not a client of endpoint `{name}` (add \"shell\" to its `clients` in system.toml)"
            ))
        })?;
        match call(endpoint, label, message) {
            Ok(reply) => println!(
                "reply: [{}, {}, {}, {}]",
                reply[0], reply[1], reply[2], reply[3]
            ),
            Err(error) => println!("error: {error:?}"),
        }
        Ok(())
    }

    fn poweroff(&self) -> Outcome {
        println!("poweroff: stopping the system");
        self.broker()?.power_off()?;
        Ok(())
    }
}

/// Stands in for the file client in a system without storage.
#[cfg(not(feature = "storage"))]
pub struct NoFiles;

#[cfg(not(feature = "storage"))]
impl NoFiles {
    fn list(&mut self, _: impl FnMut(&str, u64)) -> Result<(), Error> {
        Err(Error::NotSupported)
    }
    fn read(&mut self, _: &str, _: impl FnMut(&[u8])) -> Result<u64, Error> {
        Err(Error::NotSupported)
    }
    fn write(&mut self, _: &str, _: &[u8]) -> Result<(), Error> {
        Err(Error::NotSupported)
    }
    fn remove(&mut self, _: &str) -> Result<(), Error> {
        Err(Error::NotSupported)
    }
}

/// Calls `endpoint` with `label` and `words`; the reply's words, or the error its label
/// names.
fn call(endpoint: Cap<Endpoint>, label: u64, words: [u64; 4]) -> Result<[u64; 4], Error> {
    let reply = endpoint.call(&Message::new(label, words))?;
    match reply.info.label {
        0 => Ok(reply.words),
        code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

/// A decimal or `0x` hexadecimal number.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn uptime() {
    let ticks = kaal_user::time::now_ticks();
    let frequency = kaal_user::time::ticks_per_second().max(1);
    let millis = ticks / (frequency / 1000).max(1);
    let seconds = millis / 1000;
    println!(
        "up {}:{:02}:{:02}.{:03}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        millis % 1000
    );
}

fn state_name(state: ComponentState) -> &'static str {
    match state {
        ComponentState::Created => "created",
        ComponentState::Running => "running",
        ComponentState::Exited => "exited",
        ComponentState::Restarting => "restarting",
        ComponentState::Failed => "failed",
    }
}

/// A byte count in the largest binary unit that keeps it whole, or KiB.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.0 >= 1 << 20 && self.0 % (1 << 20) == 0 {
            alloc::format!("{} MiB", self.0 >> 20)
        } else if self.0 >= 1 << 10 {
            alloc::format!("{} KiB", self.0 >> 10)
        } else {
            alloc::format!("{} B", self.0)
        };
        f.pad(&text)
    }
}

/// Seconds since 1970-01-01 00:00 UTC, shown as a date.
struct Date(u64);

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = (self.0 / 86_400) as i64;
        let second_of_day = self.0 % 86_400;
        // Civil date from days since the epoch (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}
