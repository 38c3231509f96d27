//! `cargo xtask test`: boots the system with a scripted shell session on its serial line
//! and checks what every command printed, then that the system switched itself off
//! (QEMU exits with 0). Each check is one test; the last line is `N passed, M failed`.

use std::{process::ExitCode, time::Duration};

use kaal_build::{
    image::Image,
    qemu::{Console, QemuConfig},
    runner::{QmpAction, RunOptions, SerialInput, run_captured},
};

use crate::{EXAMPLES, NAME, Result, STORAGE};

/// One scripted command and what its output must contain.
struct Step {
    input: &'static str,
    expect: &'static [&'static str],
}

/// The session every system runs.
const SESSION: &[Step] = &[
    Step {
        input: "help",
        expect: &["Commands:", "poweroff"],
    },
    Step {
        input: "ps",
        expect: &["NAME", "console", "shell", "running"],
    },
    Step {
        input: "mem",
        expect: &["memory: ", " free of "],
    },
    Step {
        input: "devices",
        expect: &["uart", "arm,pl011", "rtc", "arm,pl031"],
    },
    Step {
        input: "channels",
        expect: &["console-input", "echo-ping"],
    },
    Step {
        input: "uptime",
        expect: &["up 0:"],
    },
    Step {
        input: "date",
        expect: &[" UTC"],
    },
    Step {
        input: "echo hello from the echo server",
        expect: &["hello from the echo server"],
    },
    Step {
        input: "call echo 1 7 8",
        expect: &["reply: [7, 8, 0, 0]"],
    },
    Step {
        input: "call nowhere 1",
        expect: &["not a client of endpoint `nowhere`"],
    },
    Step {
        input: "frobnicate",
        expect: &["frobnicate: unknown command"],
    },
    Step {
        input: "crash rtc",
        expect: &["crash: rtc faulted", "[broker] rtc: "],
    },
    Step {
        input: "date",
        expect: &[" UTC"],
    },
    Step {
        input: "bench",
        expect: &["bench: call round trip", "bench: ring round trip"],
    },
];

/// The file commands, for a system with storage (on a fresh disk image).
const FILES: &[Step] = &[
    Step {
        input: "write test.txt scripted hello",
        expect: &["wrote 15 bytes to test.txt"],
    },
    Step {
        input: "ls",
        expect: &["TEST.TXT", "1 files"],
    },
    Step {
        input: "cat test.txt",
        expect: &["scripted hello"],
    },
    Step {
        input: "crash files",
        expect: &["crash: files faulted", "[broker] files: "],
    },
    Step {
        input: "cat test.txt",
        expect: &["scripted hello"],
    },
    Step {
        input: "crash blk",
        expect: &["crash: blk faulted", "[broker] blk: "],
    },
    Step {
        input: "cat test.txt",
        expect: &["scripted hello"],
    },
    Step {
        input: "rm test.txt",
        expect: &["removed test.txt"],
    },
    Step {
        input: "cat test.txt",
        expect: &["cat: "],
    },
];

/// Last: the echo server is left waiting on its ring for pings that never come, which
/// the power off must still get past (the broker closes the rings of stopped peers).
const LAST: Step = Step {
    input: "call echo 2 5",
    expect: &["reply: [5, 0, 0, 0]"],
};

/// Runs the session; prints one line per check and the tally.
pub fn test(config: &QemuConfig, image: &Image) -> Result<ExitCode> {
    let mut config = config.clone();
    let mut steps: Vec<&Step> = SESSION.iter().collect();
    if STORAGE {
        let disk = crate::root().join("target").join("test-disk.img");
        std::fs::create_dir_all(crate::root().join("target"))?;
        kaal_build::disk::create_fat_image(&disk, crate::DISK_BYTES)?;
        config = config.disk(disk);
        steps.extend(FILES);
    }
    steps.push(&LAST);
    let mut input = String::new();
    for step in &steps {
        input.push_str(step.input);
        input.push('\n');
    }
    input.push_str("ps\npoweroff\n");
    let options = RunOptions {
        timeout: Duration::from_secs(120),
        echo: false,
        qmp: None,
        input: Some(SerialInput {
            after: crate::shell_prompt().into(),
            bytes: input.into_bytes(),
        }),
    };
    println!(
        "test: booting {NAME} ({}) with a scripted shell session",
        config.label()
    );
    let output = run_captured(config.command(&image.kernel, Console::Captured), &options)?;
    let transcript = output.stdout.replace('\r', "");
    let mut passed = 0;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool| {
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    };
    check("boot", transcript.contains(&format!("{NAME} is ready.")));
    // Each command's output is what follows its echoed line up to the next prompt.
    let mut rest = transcript.as_str();
    for step in &steps {
        let echoed = format!("{}{}\n", crate::shell_prompt(), step.input);
        let Some(at) = rest.find(&echoed) else {
            check(&format!("`{}`", step.input), false);
            continue;
        };
        rest = &rest[at + echoed.len()..];
        let end = rest.find(crate::shell_prompt()).unwrap_or(rest.len());
        let answer = &rest[..end];
        let missing: Vec<_> = step
            .expect
            .iter()
            .filter(|e| !answer.contains(*e))
            .collect();
        if !missing.is_empty() {
            println!("    `{}` printed:\n{}", step.input, indent(answer));
            println!("    expected {missing:?}");
        }
        check(&format!("`{}`", step.input), missing.is_empty());
    }
    if EXAMPLES {
        check(
            "example: monitor agrees with sensor",
            transcript.contains("samples, sum") && transcript.contains("sensor agrees"),
        );
    }
    check(
        "`poweroff` stops the system and QEMU exits with 0",
        output.success() && transcript.contains("[broker] system stopped"),
    );
    let power_key = power_key(&config, image);
    check(
        "the power key (QEMU's system_powerdown) stops the system and QEMU exits with 0",
        power_key.is_ok(),
    );
    if let Err(problem) = power_key {
        println!("    {problem}");
    }
    if failed > 0 {
        let log = crate::root().join("target").join("test.log");
        if output.save_log(&log).is_ok() {
            println!("log: {}", log.display());
        }
        println!("{}", indent(&output.tail(40)));
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    | {l}\n")).collect()
}

/// Boots again and presses the power key through QEMU's monitor once the shell is up:
/// the `power` driver asks the broker for the power off, which stops every component in
/// order.
fn power_key(config: &QemuConfig, image: &Image) -> std::result::Result<(), String> {
    let mut config = config.clone();
    // In the temporary directory: a Unix socket's path must stay short.
    let socket = std::env::temp_dir().join(format!("kaal-qmp-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    config.qmp_socket = Some(socket.clone());
    let options = RunOptions {
        timeout: Duration::from_secs(60),
        echo: false,
        qmp: Some(QmpAction {
            socket,
            after: crate::shell_prompt().into(),
            command: "system_powerdown".into(),
        }),
        input: None,
    };
    let output = run_captured(config.command(&image.kernel, Console::Captured), &options)
        .map_err(|e| e.to_string());
    if let Some(socket) = &config.qmp_socket {
        let _ = std::fs::remove_file(socket);
    }
    let output = output?;
    for expected in ["[pl061] power button pressed", "[broker] system stopped"] {
        if !output.stdout.contains(expected) {
            return Err(format!(
                "expected `{expected}`; last lines:\n{}",
                indent(&output.tail(15))
            ));
        }
    }
    if !output.success() {
        return Err(format!("QEMU ended with {}", output.termination));
    }
    Ok(())
}
