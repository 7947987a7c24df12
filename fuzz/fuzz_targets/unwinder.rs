//! The cross-stack unwinder (`debug::unwind`) on random stack images: it
//! reads only aligned words inside known stacks, ends, and brackets every
//! stack it enters.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use tristack::debug::unwind::{unwind, Line, Link, Stack, Walker};

const TEXT: std::ops::Range<u64> = 0xffff_ffff_8000_0000..0xffff_ffff_8000_1000;
const STACKS: [Stack; 3] = [
    Stack { name: "TASK", bottom: 0x10000, top: 0x10400, link: Link::None },
    Stack { name: "IRQ", bottom: 0x20000, top: 0x20400, link: Link::TopWord },
    Stack { name: "NMI", bottom: 0x30000, top: 0x30200, link: Link::HardwareFrame },
];
const WORDS: usize = (0x400 + 0x400 + 0x200) / 8;

struct Image {
    words: Vec<u64>,
    reads: Cell<usize>,
}

impl Image {
    fn index(addr: u64) -> Option<usize> {
        let mut base = 0;
        for s in STACKS {
            if (s.bottom..s.top).contains(&addr) {
                return Some(base + ((addr - s.bottom) / 8) as usize);
            }
            base += ((s.top - s.bottom) / 8) as usize;
        }
        None
    }
}

impl Walker for Image {
    fn stack_of(&self, addr: u64) -> Option<Stack> {
        STACKS.iter().copied().find(|s| (s.bottom..s.top).contains(&addr))
    }
    fn read(&self, addr: u64) -> u64 {
        self.reads.set(self.reads.get() + 1);
        assert!(addr % 8 == 0, "unaligned read at {addr:#x}");
        assert!(Image::index(addr + 7).is_some(), "read past a stack at {addr:#x}");
        self.words[Image::index(addr).expect("read outside every stack")]
    }
    fn is_text(&self, addr: u64) -> bool {
        TEXT.contains(&addr)
    }
    fn is_interrupted_ip(&self, slot: u64) -> bool {
        slot % 24 == 0
    }
}

/// Two input bytes per word, so the fuzzer reaches interesting values: a
/// kind (text address, pointer into a stack, zero, junk) and a value.
fn word(kind: u8, v: u8) -> u64 {
    let v = u64::from(v);
    match kind % 4 {
        0 => TEXT.start + v * 8,
        1 => {
            let s = STACKS[(v % 3) as usize];
            s.bottom + (v * 8) % (s.top - s.bottom + 8)
        }
        2 => 0,
        _ => v.wrapping_mul(0x0101_0101_0101_0101) ^ u64::from(kind),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (rsp, rbp) = (word(1, data[0]) ^ u64::from(data[2] & 7), word(1, data[1]));
    let mut words: Vec<u64> = data[4..].chunks_exact(2).map(|p| word(p[0], p[1])).collect();
    words.resize(WORDS, 0);
    let image = Image { words, reads: Cell::new(0) };
    let mut open: Vec<&str> = Vec::new();
    let mut lines = 0;
    unwind(&image, rsp, rbp, |line| {
        lines += 1;
        match line {
            Line::Enter(name) => open.push(name),
            Line::Leave(name) => assert_eq!(open.pop(), Some(name), "unbalanced markers"),
            Line::Addr { addr, .. } | Line::Ip { addr, .. } => assert!(TEXT.contains(&addr)),
        }
    });
    assert!(open.is_empty(), "markers left open: {open:?}");
    // Each stack is walked once: one line per word at most, plus markers.
    assert!(lines <= WORDS + 2 * STACKS.len());
    assert!(image.reads.get() <= 3 * WORDS + STACKS.len());
});
