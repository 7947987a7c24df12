//! A line editor for the serial shell, in the spirit of readline's defaults:
//! ←/→ (or Ctrl-B/F), Home/End (or Ctrl-A/E), Backspace, Delete, ↑/↓ (or
//! Ctrl-P/N) through the history, Ctrl-K/U/W to kill, Ctrl-L to clear the
//! screen, Ctrl-C to cancel. Escape sequences it does not know are swallowed
//! whole (a terminal sends `ESC [ params final` or `ESC O x`), so a stray key
//! never types garbage. Pure: bytes in, echo bytes and lines out.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Longest line the editor keeps; further characters ring the bell.
pub const LINE_MAX: usize = 1024;
/// Lines the history keeps (oldest forgotten first).
pub const HISTORY_MAX: usize = 64;

const BELL: &[u8] = b"\x07";
const ERASE: &[u8] = b"\x08 \x08";
/// VT100: erase from the cursor to the end of the line.
const CLEAR_TO_END: &[u8] = b"\x1b[K";
/// VT100: cursor home, erase the screen.
const CLEAR_SCREEN: &[u8] = b"\x1b[H\x1b[2J";

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

/// Where an escape sequence has got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Escape {
    No,
    /// ESC seen.
    Started,
    /// `ESC [`: parameter bytes (0x30..=0x3f) so far, kept as one number.
    Csi(u16),
    /// `ESC O`: one more byte.
    Ss3,
}

/// An editing action, whichever key sequence asked for it.
#[derive(Clone, Copy)]
enum Key {
    Left,
    Right,
    Home,
    End,
    Delete,
    Up,
    Down,
}

pub struct LineEditor {
    prompt: &'static str,
    buf: Vec<u8>,
    cursor: usize,
    /// The previous byte was CR, so an LF right after it is the same Enter.
    after_cr: bool,
    escape: Escape,
    history: VecDeque<String>,
    /// While browsing the history: the entry shown (0 = newest) and the
    /// line that was being typed before ↑.
    browsing: Option<(usize, Vec<u8>)>,
}

impl LineEditor {
    /// An editor whose redraws start with `prompt`.
    pub const fn new(prompt: &'static str) -> Self {
        LineEditor {
            prompt,
            buf: Vec::new(),
            cursor: 0,
            after_cr: false,
            escape: Escape::No,
            history: VecDeque::new(),
            browsing: None,
        }
    }

    /// Feed one byte; `echo` receives what should be written back to the terminal.
    pub fn feed(&mut self, byte: u8, mut echo: impl FnMut(&[u8])) -> Event {
        let after_cr = core::mem::replace(&mut self.after_cr, byte == b'\r');
        if let Some(key) = self.escape_step(byte) {
            if let Some(key) = key {
                self.key(key, &mut echo);
            }
            return Event::None;
        }
        match byte {
            b'\n' if after_cr => {}
            b'\r' | b'\n' => return Event::Line(self.enter(&mut echo)),
            0x1b => self.escape = Escape::Started,
            0x08 | 0x7f => self.backspace(&mut echo),
            0x01 => self.key(Key::Home, &mut echo),
            0x02 => self.key(Key::Left, &mut echo),
            0x05 => self.key(Key::End, &mut echo),
            0x06 => self.key(Key::Right, &mut echo),
            0x0e => self.key(Key::Down, &mut echo),
            0x10 => self.key(Key::Up, &mut echo),
            0x0b => {
                // Ctrl-K: kill to the end of the line.
                self.buf.truncate(self.cursor);
                echo(CLEAR_TO_END);
            }
            0x15 => {
                // Ctrl-U: kill to the start of the line.
                self.buf.drain(..self.cursor);
                self.cursor = 0;
                self.redraw(&mut echo);
            }
            0x17 => {
                // Ctrl-W: kill the word before the cursor (and the spaces after it).
                let head = &self.buf[..self.cursor];
                let word_end = head.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
                let start = head[..word_end].iter().rposition(|&b| b == b' ').map_or(0, |i| i + 1);
                self.buf.drain(start..self.cursor);
                self.cursor = start;
                self.redraw(&mut echo);
            }
            0x0c => {
                // Ctrl-L: clear the screen, keep the line.
                echo(CLEAR_SCREEN);
                self.redraw(&mut echo);
            }
            0x03 => {
                echo(b"^C\n");
                self.buf.clear();
                self.cursor = 0;
                self.browsing = None;
                return Event::Cancelled;
            }
            b' '..=b'~' if self.buf.len() < LINE_MAX => self.insert(byte, &mut echo),
            _ => echo(BELL),
        }
        Event::None
    }

    /// Advance an escape sequence: `None` if `byte` is not part of one,
    /// `Some(key)` if it was (the key, once a sequence ends in a known one).
    fn escape_step(&mut self, byte: u8) -> Option<Option<Key>> {
        let (next, key) = match (self.escape, byte) {
            (Escape::No, _) => return None,
            (Escape::Started, b'[') => (Escape::Csi(0), None),
            (Escape::Started, b'O') => (Escape::Ss3, None),
            // ESC then anything else (Alt-x): both bytes swallowed.
            (Escape::Started, _) => (Escape::No, None),
            (Escape::Csi(n), b'0'..=b'9') => {
                (Escape::Csi(n.saturating_mul(10).saturating_add((byte - b'0') as u16)), None)
            }
            // Other parameter and intermediate bytes (`;`, `?`, ...): kept out of the number.
            (Escape::Csi(n), 0x20..=0x3f) => (Escape::Csi(n), None),
            (Escape::Csi(n), final_byte) => (Escape::No, csi_key(n, final_byte)),
            (Escape::Ss3, final_byte) => (Escape::No, csi_key(0, final_byte)),
        };
        self.escape = next;
        Some(key)
    }

    fn key(&mut self, key: Key, echo: &mut impl FnMut(&[u8])) {
        match key {
            Key::Left if self.cursor > 0 => {
                self.cursor -= 1;
                echo(b"\x08");
            }
            Key::Right if self.cursor < self.buf.len() => {
                echo(&self.buf[self.cursor..=self.cursor]);
                self.cursor += 1;
            }
            Key::Home => {
                self.cursor = 0;
                self.redraw(echo);
            }
            Key::End => {
                echo(&self.buf[self.cursor..]);
                self.cursor = self.buf.len();
            }
            Key::Delete if self.cursor < self.buf.len() => {
                self.buf.remove(self.cursor);
                self.redraw(echo);
            }
            Key::Up => self.browse(true, echo),
            Key::Down => self.browse(false, echo),
            _ => echo(BELL),
        }
    }

    fn insert(&mut self, byte: u8, echo: &mut impl FnMut(&[u8])) {
        self.buf.insert(self.cursor, byte);
        self.cursor += 1;
        if self.cursor == self.buf.len() {
            echo(&[byte]);
        } else {
            self.redraw(echo);
        }
    }

    fn backspace(&mut self, echo: &mut impl FnMut(&[u8])) {
        if self.cursor == 0 {
            return;
        }
        self.cursor -= 1;
        self.buf.remove(self.cursor);
        if self.cursor == self.buf.len() {
            echo(ERASE);
        } else {
            self.redraw(echo);
        }
    }

    /// ↑ (`older`) or ↓ through the history; the line being typed comes back after the newest.
    fn browse(&mut self, older: bool, echo: &mut impl FnMut(&[u8])) {
        let at = self.browsing.as_ref().map(|(i, _)| *i);
        let target = match (older, at) {
            (true, None) if !self.history.is_empty() => Some(0),
            (true, Some(i)) if i + 1 < self.history.len() => Some(i + 1),
            (false, Some(0)) => None,
            (false, Some(i)) => Some(i - 1),
            _ => return echo(BELL),
        };
        match target {
            Some(i) => {
                let typed = self.browsing.take().map_or_else(|| core::mem::take(&mut self.buf), |(_, typed)| typed);
                self.buf = self.history[self.history.len() - 1 - i].as_bytes().to_vec();
                self.browsing = Some((i, typed));
            }
            None => self.buf = self.browsing.take().map(|(_, typed)| typed).unwrap_or_default(),
        }
        self.cursor = self.buf.len();
        self.redraw(echo);
    }

    fn enter(&mut self, echo: &mut impl FnMut(&[u8])) -> String {
        echo(b"\n");
        self.cursor = 0;
        self.browsing = None;
        // Only printable ASCII is ever inserted.
        let line: String = core::mem::take(&mut self.buf).into_iter().map(char::from).collect();
        if !line.trim().is_empty() && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY_MAX {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        line
    }

    /// Rewrite the whole line: CR, prompt, text, clear the rest, cursor back in place.
    fn redraw(&self, echo: &mut impl FnMut(&[u8])) {
        echo(b"\r");
        echo(self.prompt.as_bytes());
        echo(&self.buf);
        echo(CLEAR_TO_END);
        for _ in self.cursor..self.buf.len() {
            echo(b"\x08");
        }
    }
}

/// The key a finished CSI (`ESC [ n final`) or SS3 (`ESC O final`, n = 0) sequence names.
fn csi_key(n: u16, final_byte: u8) -> Option<Key> {
    match (final_byte, n) {
        (b'A', _) => Some(Key::Up),
        (b'B', _) => Some(Key::Down),
        (b'C', _) => Some(Key::Right),
        (b'D', _) => Some(Key::Left),
        (b'H', _) | (b'~', 1 | 7) => Some(Key::Home),
        (b'F', _) | (b'~', 4 | 8) => Some(Key::End),
        (b'~', 3) => Some(Key::Delete),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
