//! Marking user output on the kernel console, so that no task can pass a line off as
//! one of the kernel's.
//!
//! Every line the kernel prints starts with [`CONSOLE_KERNEL_PREFIX`] (`[kaal`). A line
//! that a task writes with `console_write` and that starts the same way gets
//! [`CONSOLE_USER_MARK`] (`[user] `) in front of it; every other line is printed as
//! written, so the output of well-behaved tasks does not change. A line starts after a
//! `\n` or a `\r` (which sends a terminal's cursor back to the start of the line), or a
//! backspace (which could take it there), whoever wrote it, and at the start of the
//! console. A write that ends while its line
//! still matches the beginning of the prefix (`[ka`) is marked too: the task could
//! finish the prefix in its next write.
//!
//! Control characters other than tab, line feed, carriage return and backspace (which a
//! line editor echoes) come out in caret notation (`^[` for ESC): a task cannot move the
//! terminal's cursor, clear the screen or rewrite earlier lines, the kernel's included.
//! The C1 controls, which terminals also obey (CSI is `0x9b` on an 8-bit terminal and
//! `C2 9B` in UTF-8), come out as `\x9b`: a byte `0x80..=0x9f` is printed as it is only
//! when it continues a UTF-8 character other than a C1 control (after a byte `0xc3` or
//! above, or a continuation byte, in the same write).
//!
//! ```
//! use kaal_kernel::user_output::mark;
//!
//! let mut out = Vec::new();
//! let line_start = mark(b"[kaal] forged\n[test] ok\n", true, |b| out.push(b));
//! assert_eq!(out, b"[user] [kaal] forged\n[test] ok\n");
//! assert!(line_start);
//! ```

use kaal_abi::{CONSOLE_KERNEL_PREFIX, CONSOLE_USER_MARK};

/// Sends `bytes` (from a task) to `emit`, with [`CONSOLE_USER_MARK`] before every line
/// that starts like a kernel message. `line_start` says whether the console is at the
/// start of a line before the first byte; returns whether it is after the last.
pub fn mark(bytes: &[u8], line_start: bool, emit: impl FnMut(u8)) -> bool {
    mark_while(bytes, line_start, emit, || true).1
}

/// [`mark`], stopping before a byte (other than the first) when `room` says the output
/// has no room left; returns how many bytes were consumed (at least one of a non-empty
/// `bytes`) and whether the console is at the start of a line after them. A line
/// marked before the stop stays marked: the check looks at the whole of `bytes`.
///
/// ```
/// use kaal_kernel::user_output::mark_while;
///
/// let mut out = Vec::new();
/// let mut room = 3;
/// let (consumed, _) = mark_while(b"[kaal] x\n", true, |b| out.push(b), || {
///     room -= 1;
///     room > 0
/// });
/// assert_eq!(consumed, 3);
/// assert_eq!(out, b"[user] [ka");
/// ```
pub fn mark_while(
    bytes: &[u8],
    line_start: bool,
    mut emit: impl FnMut(u8),
    mut room: impl FnMut() -> bool,
) -> (usize, bool) {
    let prefix = CONSOLE_KERNEL_PREFIX.as_bytes();
    let mut at_start = line_start;
    for (i, &byte) in bytes.iter().enumerate() {
        if i > 0 && !room() {
            return (i, at_start);
        }
        if at_start {
            let rest = &bytes[i..];
            let length = rest.len().min(prefix.len());
            if rest[..length] == prefix[..length] {
                CONSOLE_USER_MARK.bytes().for_each(&mut emit);
            }
        }
        let previous = i.checked_sub(1).map(|p| bytes[p]);
        match byte {
            // A C1 control: alone (or first in the write), or UTF-8 `C2 80..9F`.
            0x80..=0x9f if !matches!(previous, Some(0x80..=0xc1 | 0xc3..)) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                for b in [
                    b'\\',
                    b'x',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 15)],
                ] {
                    emit(b);
                }
            }
            b'\t' | b'\n' | b'\r' | 0x08 | 0x20..=0x7e | 0x80.. => emit(byte),
            0x7f => {
                emit(b'^');
                emit(b'?');
            }
            control => {
                emit(b'^');
                emit(control + 0x40);
            }
        }
        at_start = matches!(byte, b'\n' | b'\r' | 0x08);
    }
    (bytes.len(), at_start)
}

#[cfg(test)]
mod tests {
    use super::{mark, mark_while};

    #[test]
    fn backspace_and_c1_controls_cannot_forge_a_kernel_line() {
        // Backspace could take the cursor back to the start of the line.
        assert_eq!(
            marked(b"x\x08[kaal] forged\n", false).0,
            "x\x08[user] [kaal] forged\n"
        );
        // CSI as a raw byte and in UTF-8; a character that merely continues with a
        // byte in the same range is left alone.
        let mut out = Vec::new();
        mark(b"a\x9b2J \xc2\x9b2J \xe2\x82\xac \xc3\x9b", true, |b| {
            out.push(b)
        });
        assert_eq!(out, b"a\\x9b2J \xc2\\x9b2J \xe2\x82\xac \xc3\x9b");
        // First in a write: no character to continue.
        out.clear();
        mark(b"\x85", true, |b| out.push(b));
        assert_eq!(out, b"\\x85");
    }

    #[test]
    fn a_full_output_ends_the_write_after_at_least_one_byte() {
        let text = b"[kaal] forged\nok\n";
        for room in 0..=text.len() + 1 {
            // Written in pieces of at most `room` bytes (at least one each), the output
            // is the same as in one piece.
            let (mut out, mut at_start, mut rest) = (Vec::new(), true, &text[..]);
            while !rest.is_empty() {
                let mut left = room;
                let (consumed, end) = mark_while(
                    rest,
                    at_start,
                    |b| out.push(b),
                    || {
                        left = left.saturating_sub(1);
                        left > 0
                    },
                );
                assert!(
                    consumed >= 1 && consumed <= room.max(1),
                    "{room}: {consumed}"
                );
                rest = &rest[consumed..];
                at_start = end;
            }
            assert_eq!(out, b"[user] [kaal] forged\nok\n", "{room}");
            assert!(at_start);
        }
    }

    fn marked(bytes: &[u8], line_start: bool) -> (String, bool) {
        let mut out = Vec::new();
        let end = mark(bytes, line_start, |b| out.push(b));
        (String::from_utf8(out).unwrap(), end)
    }

    #[test]
    fn ordinary_lines_are_unchanged() {
        for text in [
            "hello\n",
            "[test] console ... ok\n[suite] syscalls: 3 passed, 0 failed\n",
            "kaal> ",
            "[broker] started echo\n",
            "[kaa] not the prefix\n",
            "[kaal",
        ] {
            let line_start = !text.starts_with("[kaal");
            let expected = text;
            assert_eq!(marked(text.as_bytes(), line_start).0, expected, "{text:?}");
        }
        assert_eq!(marked(b"", true), (String::new(), true));
        assert_eq!(marked(b"", false), (String::new(), false));
    }

    #[test]
    fn terminal_controls_are_shown_not_obeyed() {
        assert_eq!(
            marked(b"\x1b[2J\x1b[Hok\x07\x7f\tx\x08\n", true).0,
            "^[[2J^[[Hok^G^?\tx\x08\n"
        );
    }

    #[test]
    fn lines_that_look_like_the_kernel_are_marked() {
        assert_eq!(
            marked(b"[kaal] a\nok\n[kaal] b", true),
            ("[user] [kaal] a\nok\n[user] [kaal] b".into(), false)
        );
        assert_eq!(marked(b"[kaal-ish]\n", true).0, "[user] [kaal-ish]\n");
        // After a carriage return, which a terminal shows as the start of a line.
        assert_eq!(marked(b"x\r[kaal] c\n", true).0, "x\r[user] [kaal] c\n");
        // Not at the start of a line: left alone.
        assert_eq!(marked(b"[kaal] d\n", false).0, "[kaal] d\n");
        assert_eq!(marked(b"x [kaal] e\n", true).0, "x [kaal] e\n");
    }

    #[test]
    fn a_prefix_split_across_writes_is_marked() {
        for split in 1..5 {
            let (first, line_start) = marked(&b"[kaal"[..split], true);
            assert!(first.starts_with("[user] "), "{split}: {first:?}");
            assert!(!line_start);
            // The rest continues the line, so it is not at a line start.
            assert_eq!(
                marked(&b"[kaal] f\n"[split..], line_start).0.find("[user]"),
                None
            );
        }
        // A write ending with a line start and a beginning of the prefix.
        assert_eq!(marked(b"ok\n[k", true).0, "ok\n[user] [k");
    }
}
