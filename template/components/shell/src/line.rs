//! Line editing on a byte stream: printable ASCII is collected and echoed, backspace
//! erases, Ctrl-C drops the line, and CR, LF or CR LF ends it (a terminal sends CR, a
//! script piped in sends LF).

/// What a byte did.
pub enum Step<'a> {
    /// Nothing to show.
    Nothing,
    /// Show these bytes (the typed character, or the erasing sequence).
    Echo(&'a [u8]),
    /// A line is complete.
    Line(&'a str),
}

/// Longest line, in bytes.
const LINE_BYTES: usize = 256;

/// The line being typed.
pub struct Editor {
    buffer: [u8; LINE_BYTES],
    length: usize,
    /// The previous byte was CR: a LF right after it ends no second line.
    after_cr: bool,
}

impl Editor {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buffer: [0; LINE_BYTES],
            length: 0,
            after_cr: false,
        }
    }

    /// Starts a new line.
    pub fn clear(&mut self) {
        self.length = 0;
    }

    /// Takes one byte of input.
    pub fn feed(&mut self, byte: u8) -> Step<'_> {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Step::Nothing,
            b'\r' | b'\n' => {
                // Only ASCII is ever stored.
                Step::Line(core::str::from_utf8(&self.buffer[..self.length]).unwrap_or(""))
            }
            0x08 | 0x7f if self.length > 0 => {
                self.length -= 1;
                Step::Echo(b"\x08 \x08")
            }
            0x03 => {
                self.length = 0;
                Step::Line("")
            }
            0x20..=0x7e if self.length < LINE_BYTES => {
                self.buffer[self.length] = byte;
                self.length += 1;
                Step::Echo(&self.buffer[self.length - 1..self.length])
            }
            _ => Step::Nothing,
        }
    }
}
