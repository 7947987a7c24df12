//! ulib: the tiny library tristack's user programs link against — the
//! syscall wrappers, `print!`, the entry point and the panic handler.
//! Everything here runs in ring 3; the only way into the kernel is
//! `syscall`.

#![no_std]

#[path = "../../kernel/src/user/abi.rs"]
pub mod abi;
#[path = "../../kernel/src/user/rng.rs"]
pub mod rng;

use core::arch::asm;
use core::fmt::{self, Write};

pub use abi::Timespec;

/// Raw `syscall` with up to three arguments (RDI, RSI, RDX); RCX and R11
/// are clobbered by the instruction itself.
#[inline(always)]
pub fn syscall3(nr: u64, a: u64, b: u64, c: u64) -> i64 {
    let ret: i64;
    // SAFETY: `syscall` enters the kernel, which reads only the registers
    // named here and checks every pointer it is given.
    unsafe {
        asm!("syscall", inlateout("rax") nr as i64 => ret, in("rdi") a, in("rsi") b, in("rdx") c,
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

pub fn write(fd: u64, buf: &[u8]) -> i64 {
    syscall3(abi::SYS_WRITE, fd, buf.as_ptr() as u64, buf.len() as u64)
}

/// End the process: every thread (`exit_group`, as libc's `exit`).
pub fn exit(code: i64) -> ! {
    syscall3(abi::SYS_EXIT_GROUP, code as u64, 0, 0);
    unreachable!("exit_group returned")
}

/// End only the calling thread.
pub fn exit_thread(code: i64) -> ! {
    syscall3(abi::SYS_EXIT, code as u64, 0, 0);
    unreachable!("exit returned")
}

pub fn gettid() -> i64 {
    syscall3(abi::SYS_GETTID, 0, 0, 0)
}

/// A new thread of this process running `entry(arg)` on the stack ending at
/// `stack_top` (16-byte aligned); returns its thread id.
pub fn clone_thread(entry: extern "C" fn(u64) -> !, stack_top: u64, arg: u64) -> i64 {
    syscall3(abi::SYS_CLONE_THREAD, entry as *const () as u64, stack_top, arg)
}

pub fn munmap(addr: u64, len: u64) -> i64 {
    syscall3(abi::SYS_MUNMAP, addr, len, 0)
}

pub fn getpid() -> i64 {
    syscall3(abi::SYS_GETPID, 0, 0, 0)
}

pub fn sched_yield() -> i64 {
    syscall3(abi::SYS_SCHED_YIELD, 0, 0, 0)
}

pub fn nanosleep(req: &Timespec) -> i64 {
    syscall3(abi::SYS_NANOSLEEP, req as *const Timespec as u64, 0, 0)
}

/// Milliseconds of `CLOCK_MONOTONIC`.
pub fn uptime_ms() -> u64 {
    let mut ts = Timespec::default();
    syscall3(abi::SYS_CLOCK_GETTIME, abi::CLOCK_MONOTONIC, &mut ts as *mut Timespec as u64, 0);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn kstack_use(bytes: u64) -> i64 {
    syscall3(abi::SYS_KSTACK_USE, bytes, 0, 0)
}

pub fn stack_info() -> i64 {
    syscall3(abi::SYS_STACK_INFO, 0, 0, 0)
}

/// Return from this syscall to `addr`, with stack selector `ss` (0: unchanged).
pub fn set_return(addr: u64, ss: u64) -> i64 {
    syscall3(abi::SYS_SET_RETURN_IP, addr, ss, 0)
}

/// The kernel reads `addr` directly (a planted bug: SMAP stops it).
pub fn lkdtm_access_userspace(addr: u64) -> i64 {
    syscall3(abi::SYS_LKDTM_ACCESS_USERSPACE, addr, 0, 0)
}

/// The kernel calls `addr` in ring 0 (a planted bug: SMEP stops it).
pub fn lkdtm_exec_userspace(addr: u64) -> i64 {
    syscall3(abi::SYS_LKDTM_EXEC_USERSPACE, addr, 0, 0)
}

pub fn watch(addr: u64) -> i64 {
    syscall3(abi::SYS_WATCH, addr, 0, 0)
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if write(1, s.as_bytes()) < 0 {
            return Err(fmt::Error);
        }
        Ok(())
    }
}

/// Formats into a line buffer first, so one `println!` is one `write`
/// (one line on the console even when other CPUs print).
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                let _ = Console.write_str(core::str::from_utf8(&self.buf).unwrap_or(""));
                self.len = 0;
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut line = LineBuf { buf: [0; 256], len: 0 };
    let _ = line.write_fmt(args);
    write(1, &line.buf[..line.len]);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::_print(format_args!("{}\n", format_args!($($arg)*))));
}

/// The TSC (RDTSC is allowed in user mode: CR4.TSD is clear).
pub fn rdtsc() -> u64 {
    // SAFETY: reading the TSC has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Time `op` `samples.len()` times and print the result as a row of the
/// kernel's `bench` table (kernel/src/demos/performance.rs: the same
/// columns and the same rule): min and median less an empty measurement,
/// the operation's physical `minimum`, median / minimum. `note` (the
/// program's second word, if any) is added to the label.
pub fn bench_row(what: &str, note: Option<&str>, minimum: u64, samples: &mut [u64], mut op: impl FnMut()) {
    for s in samples.iter_mut() {
        let t0 = rdtsc();
        op();
        *s = rdtsc() - t0;
    }
    let empty = (0..64)
        .map(|_| {
            let t0 = rdtsc();
            rdtsc() - t0
        })
        .min()
        .unwrap_or(0);
    samples.iter_mut().for_each(|s| *s = s.saturating_sub(empty));
    samples.sort_unstable();
    let (min, median) = (samples[0], samples[samples.len() / 2]);
    let ratio = median * 10 / minimum.max(1);
    let (sep, note) = note.map_or(("", ""), |n| (", ", n));
    let pad = 58usize.saturating_sub(what.len() + sep.len() + note.len());
    println!("bench: {what}{sep}{note}{:pad$} {min:>8} {median:>8} {minimum:>8} {:>5}.{}", "", ratio / 10, ratio % 10);
}

/// The program's arguments, as the kernel left them on the user stack.
pub struct Args(&'static str);

impl Args {
    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The `n`th word (0 = the first argument after the program name).
    pub fn word(&self, n: usize) -> Option<&'static str> {
        self.0.split_ascii_whitespace().nth(n)
    }

    /// The `n`th word as a number, `default` if absent; exits with a
    /// message if it is not one.
    pub fn number(&self, n: usize, default: u64) -> u64 {
        match self.word(n) {
            None => default,
            Some(w) => w.parse().unwrap_or_else(|_| {
                println!("expected a number, got '{w}'");
                exit(2)
            }),
        }
    }
}

/// Build `Args` from what `_start` received in RDI and RSI.
///
/// # Safety
/// `ptr`/`len` are what the kernel passed: a UTF-8 string on the stack.
pub unsafe fn args_from(ptr: u64, len: u64) -> Args {
    let len = (len as usize).min(abi::ARGS_MAX);
    // SAFETY: per the contract; the kernel wrote valid UTF-8 there.
    let s = unsafe { core::slice::from_raw_parts(ptr as *const u8, len) };
    Args(core::str::from_utf8(s).unwrap_or(""))
}

/// Define `_start` calling `$main(args) -> i64`, then `exit` with its result.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text._start")]
        extern "C" fn _start(args: u64, len: u64) -> ! {
            // SAFETY: the kernel starts every program with its arguments here.
            let args = unsafe { $crate::args_from(args, len) };
            let f: fn($crate::Args) -> i64 = $main;
            $crate::exit(f(args))
        }
    };
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("user panic: {info}");
    exit(101)
}

// The kernel's target is built with `-Z instrument-mcount` (the stack
// tracer, docs/stack-tools.md), so these programs call `mcount` at every
// function entry too. In user space it does nothing.
#[cfg(target_os = "none")]
core::arch::global_asm!(".globl mcount", ".type mcount, @function", "mcount:", "    ret", ".size mcount, . - mcount");

#[cfg(test)]
mod tests {
    #[test]
    fn linux_numbers_where_linux_has_the_call() {
        assert_eq!(super::abi::SYS_WRITE, 1);
        assert_eq!(super::abi::SYS_EXIT, 60);
        assert_eq!(super::abi::SYS_GETPID, 39);
        assert_eq!(super::abi::SYS_SCHED_YIELD, 24);
        assert_eq!(super::abi::SYS_NANOSLEEP, 35);
    }
}
