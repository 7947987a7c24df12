//! The editor against a tiny VT100: what the screen shows after the echo,
//! not just which bytes were sent.

use super::*;

const PROMPT: &str = "t> ";

/// One screen line and a cursor: CR, BS, `ESC [ K`, `ESC [ H ESC [ 2 J`, printable bytes.
#[derive(Default)]
struct Screen {
    lines: Vec<Vec<u8>>,
    line: Vec<u8>,
    col: usize,
}

impl Screen {
    fn show(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            bytes = rest;
            match b {
                b'\r' => self.col = 0,
                b'\n' => {
                    self.lines.push(core::mem::take(&mut self.line));
                    self.col = 0;
                }
                0x08 => self.col = self.col.saturating_sub(1),
                0x07 => {}
                0x1b if bytes.starts_with(b"[K") => {
                    self.line.truncate(self.col);
                    bytes = &bytes[2..];
                }
                0x1b if bytes.starts_with(b"[H\x1b[2J") => {
                    self.lines.clear();
                    self.line.clear();
                    self.col = 0;
                    bytes = &bytes[6..];
                }
                b' '..=b'~' => {
                    if self.col < self.line.len() {
                        self.line[self.col] = b;
                    } else {
                        self.line.push(b);
                    }
                    self.col += 1;
                }
                _ => panic!("the editor sent a byte a terminal would misread: {b:#x}"),
            }
        }
    }
    fn current(&self) -> String {
        String::from_utf8(self.line.clone()).unwrap()
    }
}

/// Feed `input` after a prompt; the events, and the screen.
fn run(input: &[u8]) -> (Vec<Event>, Screen) {
    let mut ed = LineEditor::new(PROMPT);
    let mut screen = Screen::default();
    screen.show(PROMPT.as_bytes());
    let mut events = Vec::new();
    for &b in input {
        let mut echoed = Vec::new();
        let e = ed.feed(b, |e| echoed.extend_from_slice(e));
        screen.show(&echoed);
        match e {
            Event::None => {}
            e => {
                events.push(e);
                screen.show(PROMPT.as_bytes());
            }
        }
    }
    (events, screen)
}

fn line(s: &str) -> Event {
    Event::Line(s.into())
}

#[test]
fn backspace_edits_the_line_and_the_screen() {
    let (events, screen) = run(b"helo\x7flo\r");
    assert_eq!(events, vec![line("hello")]);
    assert_eq!(screen.lines, vec![b"t> hello".to_vec()]);
}

#[test]
fn arrows_move_the_cursor_and_typing_inserts_there() {
    // The newcomer's case: `echo abc`, left twice, `X`.
    let (events, screen) = run(b"echo abc\x1b[D\x1b[DX");
    assert!(events.is_empty());
    assert_eq!(screen.current(), "t> echo aXbc");
    assert_eq!(screen.col, "t> echo aX".len(), "the cursor stays after the X");
    let (events, _) = run(b"echo abc\x1b[D\x1b[DX\x1b[C\x1b[CY\r");
    assert_eq!(events, vec![line("echo aXbcY")]);
}

#[test]
fn home_end_delete_in_every_spelling() {
    for (home, end) in
        [(&b"\x1b[H"[..], &b"\x1b[F"[..]), (b"\x1bOH", b"\x1bOF"), (b"\x1b[1~", b"\x1b[4~"), (b"\x01", b"\x05")]
    {
        let input = [&b"bc"[..], home, b"a", end, b"d", home, b"\x1b[3~", b"\r"].concat();
        assert_eq!(run(&input).0, vec![line("bcd")], "home {home:?} end {end:?}");
    }
}

#[test]
fn backspace_in_the_middle_redraws_the_rest() {
    let (events, screen) = run(b"abcd\x1b[D\x1b[D\x7f");
    assert!(events.is_empty());
    assert_eq!(screen.current(), "t> acd");
    assert_eq!(screen.col, "t> a".len());
}

#[test]
fn history_up_and_down() {
    let (events, screen) = run(b"one\rtwo\rthr\x1b[A\x1b[A\x1b[A\x1b[B\x1b[B");
    assert_eq!(events, vec![line("one"), line("two")]);
    assert_eq!(screen.current(), "t> thr", "down past the newest brings back the typed line");
    let (events, _) = run(b"one\rtwo\r\x1b[A\x1b[A\r\x10\r");
    assert_eq!(events, vec![line("one"), line("two"), line("one"), line("one")]);
}

#[test]
fn history_skips_blanks_and_repeats_and_is_bounded() {
    let mut input = Vec::new();
    for i in 0..HISTORY_MAX + 5 {
        input.extend_from_slice(alloc::format!("c{i}\rc{i}\r \r").as_bytes());
    }
    let mut ed = LineEditor::new(PROMPT);
    for &b in &input {
        ed.feed(b, |_| {});
    }
    assert_eq!(ed.history.len(), HISTORY_MAX);
    assert_eq!(ed.history.back().map(String::as_str), Some(&*alloc::format!("c{}", HISTORY_MAX + 4)));
}

#[test]
fn kills_ctrl_k_u_w() {
    assert_eq!(run(b"echo abc\x1b[D\x1b[D\x0b\r").0, vec![line("echo a")]);
    assert_eq!(run(b"echo abc\x1b[D\x15\r").0, vec![line("c")]);
    assert_eq!(run(b"echo one two  \x17\r").0, vec![line("echo one ")]);
    let (_, screen) = run(b"echo one two\x17");
    assert_eq!(screen.current(), "t> echo one ");
}

#[test]
fn ctrl_l_clears_the_screen_and_keeps_the_line() {
    let (_, screen) = run(b"a\rxy\x0c");
    assert!(screen.lines.is_empty());
    assert_eq!(screen.current(), "t> xy");
}

#[test]
fn unknown_sequences_are_swallowed_whole() {
    // F5, a bracketed-paste marker, Alt-x, a cursor report: none of it types.
    let (events, screen) = run(b"a\x1b[15~\x1b[200~\x1bx\x1b[12;40Rb\r");
    assert_eq!(events, vec![line("ab")]);
    assert_eq!(screen.lines, vec![b"t> ab".to_vec()]);
}

#[test]
fn crlf_is_one_enter_and_lf_alone_works() {
    let (events, _) = run(b"a\r\nb\n\r\n");
    assert_eq!(events, vec![line("a"), line("b"), line("")]);
}

#[test]
fn cancel_and_junk() {
    let (events, screen) = run(b"abc\x03y\x00\r");
    assert_eq!(events, vec![Event::Cancelled, line("y")]);
    assert_eq!(screen.lines, vec![b"t> abc^C".to_vec(), b"t> y".to_vec()]);
}

#[test]
fn edits_at_the_ends_ring_the_bell_and_change_nothing() {
    let mut echoed = Vec::new();
    let mut ed = LineEditor::new(PROMPT);
    for &b in b"\x7f\x1b[D\x1b[C\x1b[3~\x1b[B" {
        ed.feed(b, |e| echoed.extend_from_slice(e));
    }
    assert!(echoed.iter().all(|&b| b == 0x07), "{echoed:?}");
}

#[test]
fn overlong_lines_are_capped() {
    let mut input = vec![b'x'; LINE_MAX + 10];
    input.push(b'\r');
    let (events, _) = run(&input);
    assert_eq!(events, vec![line(&"x".repeat(LINE_MAX))]);
}
