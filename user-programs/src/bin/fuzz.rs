//! `run fuzz SEED N`: N random syscalls in the spirit of trinity — random
//! numbers near and far from the real ones, arguments biased toward
//! boundary values and kernel, guard-page, non-canonical, unaligned and
//! straddling addresses — then a tally of the results. The kernel must
//! answer every one with a result or an error, never an oops.
//!
//! Left out, because they would end or wreck the fuzzer itself rather than
//! test the kernel: `exit`/`exit_group`, `set_return`, `clone_thread` with
//! a valid entry, `munmap` of its own pages, `kstack_use` past the stack,
//! long sleeps, and `write` of its own memory to the console.
#![no_std]
#![no_main]

use ulib::abi::*;
use ulib::rng::Rng;
use ulib::{println, syscall3, Args};

const USER_TOP: u64 = (1 << 47) - 4096;

/// Addresses a careless or hostile caller would pass: none of them is
/// memory this program relies on.
const BAD_ADDRS: [u64; 16] = [
    0,
    8,
    0xfff,
    0x7000_0000,                 // unmapped user
    USER_TOP - 4,                // straddles the top of user space (its first 4 bytes are its stack)
    USER_TOP,                    // the unmapped last canonical page
    USER_TOP - 0x10000 - 0x1000, // the user stack's guard page
    0x7fff_ffff_ffff,            // last canonical byte
    0x8000_0000_0000_0000,       // non-canonical (from here on: never user space)
    0xdead_beef_dead_beef,
    0xffff_8880_0000_0000, // direct map
    0xffff_c900_0000_4000, // vmap area: a thread stack
    0xffff_fe00_0000_1000, // cpu entry area: #DF stack
    0xffff_ffff_8000_0000, // kernel text
    0xffff_ffff_ffff_fff8,
    u64::MAX,
];

/// Integers: boundaries and small values.
const INTS: [u64; 12] = [0, 1, 2, 7, 8, 4095, 4096, 1 << 31, 1 << 32, 1 << 63, u64::MAX - 1, u64::MAX];

/// Scratch memory this program may let the kernel write (results of
/// `clock_gettime`), and read (never printed).
static mut SCRATCH: [u64; 64] = [0; 64];

fn arg(rng: &mut Rng) -> u64 {
    match rng.below(3) {
        0 => rng.pick(&BAD_ADDRS).wrapping_add(rng.pick(&[0, 0, 1, 3, 7, 8])),
        1 => rng.pick(&INTS),
        _ => rng.next_u64(),
    }
}

/// Result buckets.
#[derive(Default)]
struct Tally {
    ok: u64,
    efault: u64,
    einval: u64,
    enosys: u64,
    ebadf: u64,
    other: u64,
}

fn call(rng: &mut Rng) -> i64 {
    let scratch = &raw mut SCRATCH as u64;
    let (a, b, c) = (arg(rng), arg(rng), arg(rng));
    let nr = match rng.below(8) {
        0 => rng.next_u64(),          // anything
        1 => rng.below(2048),         // near the real numbers
        2 => u64::MAX - rng.below(4), // negative
        _ => rng.pick(&[
            SYS_WRITE,
            SYS_MUNMAP,
            SYS_SCHED_YIELD,
            SYS_NANOSLEEP,
            SYS_GETPID,
            SYS_GETTID,
            SYS_CLOCK_GETTIME,
            SYS_KSTACK_USE,
            SYS_STACK_INFO,
            SYS_WATCH,
            SYS_STACKLEAK_PLANT,
            SYS_STACKLEAK_FIND,
            SYS_CLONE_THREAD,
        ]),
    };
    match nr {
        // Planted kernel bugs (they oops on purpose, `attacks` shows SMAP
        // and SMEP stopping them) are not what a fuzzer looks for.
        SYS_EXIT | SYS_EXIT_GROUP | SYS_SET_RETURN_IP | SYS_LKDTM_ACCESS_USERSPACE | SYS_LKDTM_EXEC_USERSPACE => 0,
        // Never one of its own buffers with a real fd: no garbage printed
        // (`USER_TOP - 4` is the top of its own stack: left out here).
        SYS_WRITE => {
            let buf = rng.pick(&BAD_ADDRS);
            let buf = if buf == USER_TOP - 4 { USER_TOP } else { buf };
            syscall3(nr, rng.pick(&[1, 2, 7, u64::MAX]), buf, b)
        }
        // Never a range over its own mappings (text from 4 MiB, the stack at
        // the top): addresses outside user space, or one unmapped MiB.
        SYS_MUNMAP => match rng.below(2) {
            0 => syscall3(nr, rng.pick(&BAD_ADDRS[8..]), b, c),
            _ => syscall3(nr, 0x7000_0000 + rng.below(256) * 4096, rng.below(1 << 20), c),
        },
        // A bad pointer, or a short valid sleep.
        SYS_NANOSLEEP => match rng.below(4) {
            0 => {
                // SAFETY: this program's own scratch words.
                unsafe {
                    let words = &raw mut SCRATCH as *mut u64;
                    words.write_volatile(0);
                    words.add(1).write_volatile(rng.below(2_000_000));
                }
                syscall3(nr, scratch, 0, 0)
            }
            _ => syscall3(nr, rng.pick(&BAD_ADDRS), b, c),
        },
        SYS_CLOCK_GETTIME => syscall3(nr, rng.pick(&[CLOCK_MONOTONIC, a]), rng.pick(&[scratch, b]), c),
        SYS_KSTACK_USE => syscall3(nr, a % 8192, 0, 0),
        // Entries the kernel must refuse (non-canonical or kernel): a new
        // thread at a random *user* address would crash the whole process.
        SYS_CLONE_THREAD => syscall3(nr, rng.pick(&BAD_ADDRS[8..]), rng.pick(&BAD_ADDRS), c),
        // Data breakpoints only on its scratch words (they are written only by the kernel).
        SYS_WATCH => syscall3(nr, rng.pick(&[scratch + 256, a]), 0, 0),
        _ => syscall3(nr, a, b, c),
    }
}

fn main(args: Args) -> i64 {
    let seed = args.number(0, 1);
    let n = args.number(1, 1000);
    let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut t = Tally::default();
    for _ in 0..n {
        match call(&mut rng) {
            r if r >= 0 => t.ok += 1,
            r if r == -EFAULT => t.efault += 1,
            r if r == -EINVAL => t.einval += 1,
            r if r == -ENOSYS => t.enosys += 1,
            r if r == -EBADF => t.ebadf += 1,
            _ => t.other += 1,
        }
    }
    println!(
        "fuzz: seed {seed}, {n} calls: ok {}, EFAULT {}, EINVAL {}, ENOSYS {}, EBADF {}, other {}",
        t.ok, t.efault, t.einval, t.enosys, t.ebadf, t.other
    );
    0
}

ulib::entry!(main);
