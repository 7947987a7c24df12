//! A line editor for the serial shell: printable ASCII, backspace, Ctrl-U
//! (kill line), Ctrl-C (cancel). Pure: bytes in, echo bytes and lines out.

use alloc::string::String;

/// Longest line the editor keeps; further characters ring the bell.
pub const LINE_MAX: usize = 1024;

const BELL: &[u8] = b"\x07";
const ERASE: &[u8] = b"\x08 \x08";

/// What one input byte produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing to act on (echo, if any, went through the callback).
    None,
    /// Enter: the finished line.
    Line(String),
    /// Ctrl-C: the line was abandoned.
    Cancelled,
}

#[derive(Default)]
pub struct LineEditor {
    buf: String,
    /// The previous byte was CR, so an LF right after it is the same Enter.
    after_cr: bool,
}

impl LineEditor {
    pub const fn new() -> Self {
        LineEditor { buf: String::new(), after_cr: false }
    }

    /// Feed one byte; `echo` receives what should be written back to the terminal.
    pub fn feed(&mut self, byte: u8, mut echo: impl FnMut(&[u8])) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => {
                echo(b"\n");
                Event::Line(core::mem::take(&mut self.buf))
            }
            0x08 | 0x7f => {
                if self.buf.pop().is_some() {
                    echo(ERASE);
                }
                Event::None
            }
            0x15 => {
                for _ in 0..self.buf.len() {
                    echo(ERASE);
                }
                self.buf.clear();
                Event::None
            }
            0x03 => {
                echo(b"^C\n");
                self.buf.clear();
                Event::Cancelled
            }
            b' '..=b'~' if self.buf.len() < LINE_MAX => {
                self.buf.push(byte as char);
                echo(&[byte]);
                Event::None
            }
            _ => {
                echo(BELL);
                Event::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<Event>, Vec<u8>) {
        let mut ed = LineEditor::new();
        let mut echoed = Vec::new();
        let events =
            input.iter().map(|&b| ed.feed(b, |e| echoed.extend_from_slice(e))).filter(|e| *e != Event::None).collect();
        (events, echoed)
    }

    #[test]
    fn backspace_edits_the_line_and_the_screen() {
        let (events, echoed) = run(b"helo\x7flo\r");
        assert_eq!(events, vec![Event::Line("hello".into())]);
        assert_eq!(echoed, b"helo\x08 \x08lo\n");
    }

    #[test]
    fn crlf_is_one_enter_and_lf_alone_works() {
        let (events, _) = run(b"a\r\nb\n\r\n");
        assert_eq!(events, vec![Event::Line("a".into()), Event::Line("b".into()), Event::Line("".into())]);
    }

    #[test]
    fn kill_cancel_and_junk() {
        let (events, echoed) = run(b"abc\x15x\x03y\x1b\r");
        assert_eq!(events, vec![Event::Cancelled, Event::Line("y".into())]);
        assert!(echoed.contains(&0x07), "escape rings the bell");
    }

    #[test]
    fn backspace_on_empty_line_echoes_nothing() {
        assert_eq!(run(b"\x7f\x08").1, b"");
    }

    #[test]
    fn overlong_lines_are_capped() {
        let mut input = vec![b'x'; LINE_MAX + 10];
        input.push(b'\r');
        let (events, _) = run(&input);
        assert_eq!(events, vec![Event::Line("x".repeat(LINE_MAX))]);
    }
}
