//! `run attack KIND [ARG]`: one hostile act against the kernel from ring 3
//! (the `attacks` command runs them all with real kernel addresses and
//! checks each fails safely). Every one of these must end this process —
//! with Linux's `segfault at` or `traps:` line — or be ignored; never
//! reach kernel memory or change kernel state.
//!
//! - `read ADDR`, `write ADDR`, `jump ADDR`: touch or execute an address;
//! - `priv INSN`: `cli`, `hlt`, `wrmsr`, `rdmsr`, `swapgs`, `movcr3`,
//!   `lgdt`, `lidt`, `in`, `out`, `invlpg`: privileged instructions;
//! - `int N`: `int $N` for N in 2 (NMI), 8 (#DF), 18 (#MC), 48 (an IRQ):
//!   their gates have DPL 0;
//! - `syscall-rsp ADDR`: `syscall` with RSP = ADDR (a kernel or
//!   non-canonical address): the entry must not use the user's RSP;
//! - `syscall-rsp-loop ADDR`: the same, in a loop until killed, with
//!   known values in every register `syscall` preserves, checked after
//!   each call (the entry sweep's target: an NMI landing while RSP is
//!   still the user's must neither trust nor damage it);
//! - `clone-race`: one thread calls `exit_group` while another creates
//!   threads as fast as it can: no thread may outlive the process (a new
//!   thread is refused once the kill is pending);
//! - `smap`, `smep`: make the kernel read this program's data, or call
//!   its code, through a user address (planted bugs, Linux lkdtm
//!   `ACCESS_USERSPACE` / `EXEC_USERSPACE`): SMAP and SMEP must stop it;
//! - `iret-kernel`: `iretq` with a frame asking for CS = 0x10 (ring 0);
//! - `return-to ADDR`: a syscall that sets its return RIP to ADDR (the
//!   IRET goes back to *user* mode at ADDR);
//! - `munmap-all`: unmap all of user space, this program included, in one
//!   call (the kernel must walk only the tables that exist, and the
//!   program then dies on its next instruction fetch).
#![no_std]
#![no_main]

use core::arch::asm;
use ulib::{println, Args};

fn hex(args: &Args, n: usize) -> u64 {
    let word = args.word(n).unwrap_or("");
    u64::from_str_radix(word.trim_start_matches("0x"), 16).unwrap_or_else(|_| {
        println!("attack: expected a hex address, got '{word}'");
        ulib::exit(2)
    })
}

fn privileged(insn: &str) {
    // SAFETY (every block): each instruction is privileged; at CPL 3 it
    // raises #GP before doing anything, and the kernel ends this process.
    unsafe {
        match insn {
            "cli" => asm!("cli"),
            "hlt" => asm!("hlt"),
            "wrmsr" => asm!("wrmsr", in("ecx") 0xc000_0101u32, in("eax") 0, in("edx") 0),
            "rdmsr" => asm!("rdmsr", in("ecx") 0xc000_0101u32, out("eax") _, out("edx") _),
            "swapgs" => asm!("swapgs"),
            "movcr3" => asm!("mov cr3, {}", in(reg) 0u64),
            "lgdt" => asm!("lgdt [{}]", in(reg) 0x40_0000u64),
            "lidt" => asm!("lidt [{}]", in(reg) 0x40_0000u64),
            "in" => asm!("in al, dx", in("dx") 0x3f8u16, out("al") _),
            "out" => asm!("out dx, al", in("dx") 0xf4u16, in("al") 0x10u8),
            "invlpg" => asm!("invlpg [{}]", in(reg) 0x40_0000u64),
            // Not privileged, but UMIP makes them so (they would show
            // where the kernel keeps its GDT and IDT).
            "sgdt" => asm!("sgdt [{}]", in(reg) [0u8; 16].as_mut_ptr()),
            "sidt" => asm!("sidt [{}]", in(reg) [0u8; 16].as_mut_ptr()),
            other => {
                println!("attack: unknown instruction '{other}'");
                ulib::exit(2)
            }
        }
    }
}

fn int(n: u64) {
    // SAFETY: `int $N` through a DPL-0 gate raises #GP at CPL 3.
    unsafe {
        match n {
            2 => asm!("int 2"),
            8 => asm!("int 8"),
            18 => asm!("int 18"),
            48 => asm!("int 0x30"),
            _ => {
                println!("attack: int N: N is one of 2, 8, 18, 48");
                ulib::exit(2)
            }
        }
    }
}

/// `syscall` (getpid) with RSP = `rsp`, forever; every register the
/// kernel must preserve (all but RAX, RCX, R11) holds a value derived
/// from the round, checked after the call. Ends only by a kill, or by
/// exit status 3 on the first register that came back changed.
fn syscall_rsp_loop(rsp: u64) -> ! {
    let mut round = 0u64;
    loop {
        let want = [round, !round, round ^ 0x5555, round << 3, round.rotate_left(17), !round << 1, round + 7];
        let mut got = want;
        let pid: i64;
        // SAFETY: RSP is only changed around the `syscall` (which must not
        // use it) and restored from R12 before any stack access.
        unsafe {
            asm!("mov r12, rsp", "mov rsp, {bad}", "syscall", "mov rsp, r12",
                 bad = in(reg) rsp,
                 inlateout("rax") ulib::abi::SYS_GETPID as i64 => pid,
                 inout("rdi") got[0], inout("rsi") got[1], inout("rdx") got[2], inout("r8") got[3],
                 inout("r9") got[4], inout("r10") got[5], inout("r13") got[6],
                 out("rcx") _, out("r11") _, out("r12") _);
        }
        if got != want || pid < 0 {
            println!("attack: round {round}: registers {got:x?} came back, {want:x?} went in (getpid {pid})");
            ulib::exit(3)
        }
        round += 1;
    }
}

const RACE_STACKS: usize = 8;
const RACE_STACK: usize = 1024;
#[repr(C, align(16))]
struct RaceStacks([[u8; RACE_STACK]; RACE_STACKS]);
static mut RACE: RaceStacks = RaceStacks([[0; RACE_STACK]; RACE_STACKS]);

/// A thread that never sleeps and never returns: only a kill ends it.
/// (They share stacks: none returns or keeps anything on its stack.)
extern "C" fn spinner(_: u64) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// After a few milliseconds, end the process while `clone_race` spawns.
extern "C" fn exit_soon(_: u64) -> ! {
    let start = ulib::uptime_ms();
    while ulib::uptime_ms() < start + 10 {
        core::hint::spin_loop();
    }
    ulib::exit(0)
}

/// Create spinning threads until the process is ended by `exit_soon`'s
/// `exit_group`.
fn clone_race() -> ! {
    let base = &raw const RACE as u64;
    let top = |n: usize| base + ((n % RACE_STACKS + 1) * RACE_STACK) as u64;
    ulib::clone_thread(exit_soon, top(0), 0);
    let mut n = 1;
    loop {
        ulib::clone_thread(spinner, top(n), 0);
        n = n.wrapping_add(1);
    }
}

fn main(args: Args) -> i64 {
    let kind = args.word(0).unwrap_or("");
    println!("attack: {}", args.as_str());
    match kind {
        // SAFETY (read/write/jump): deliberately faulting accesses.
        "read" => {
            let v = unsafe { core::ptr::read_volatile(hex(&args, 1) as *const u64) };
            println!("attack: read {v:#x}: the kernel let user mode read it!");
        }
        "write" => {
            unsafe { core::ptr::write_volatile(hex(&args, 1) as *mut u64, 0xbad) };
            println!("attack: the write went through!");
        }
        "jump" => {
            let f: extern "C" fn() = unsafe { core::mem::transmute(hex(&args, 1) as usize) };
            f();
            println!("attack: came back from kernel code!");
        }
        "priv" => {
            privileged(args.word(1).unwrap_or(""));
            println!("attack: a privileged instruction ran in ring 3!");
        }
        "int" => {
            int(args.number(1, 0));
            println!("attack: int through a DPL-0 gate was allowed!");
        }
        "syscall-rsp" => {
            let rsp = hex(&args, 1);
            let pid: i64;
            // SAFETY: RSP is only changed around the `syscall` (which must
            // not use it) and restored from R12 before any stack access.
            unsafe {
                asm!("mov r12, rsp", "mov rsp, {bad}", "syscall", "mov rsp, r12",
                     bad = in(reg) rsp, inlateout("rax") ulib::abi::SYS_GETPID as i64 => pid,
                     out("rcx") _, out("r11") _, out("r12") _);
            }
            println!("attack: syscall with RSP {rsp:#x} returned {pid}: the kernel used its own stack");
            return 0;
        }
        "syscall-rsp-loop" => syscall_rsp_loop(hex(&args, 1)),
        "clone-race" => clone_race(),
        "smap" => {
            static SECRET: i64 = 0x5ec7e7;
            let v = ulib::lkdtm_access_userspace(&raw const SECRET as u64);
            println!("attack: the kernel read {v:#x} through a user address!");
        }
        "smep" => {
            extern "C" fn in_ring_0() -> i64 {
                0x5ec7e7
            }
            let v = ulib::lkdtm_exec_userspace(in_ring_0 as *const () as u64);
            println!("attack: the kernel ran user code in ring 0 and got {v:#x}!");
        }
        "iret-kernel" => {
            // SAFETY: IRET at CPL 3 to a CPL-0 code selector: #GP.
            unsafe {
                asm!("push 0x18", "push rsp", "pushfq", "push 0x10", "push {rip}", "iretq",
                     rip = in(reg) 0xffff_ffff_8000_0000u64);
            }
            println!("attack: iretq into ring 0 worked!");
        }
        "munmap-all" => {
            let r = ulib::munmap(0, (1 << 47) - 4096);
            println!("attack: munmap of all user space returned {r}, and this still runs!");
        }
        "return-to" => {
            ulib::set_return(hex(&args, 1), 0);
            println!("attack: set_return came back to the caller!");
        }
        _ => {
            println!("attack: usage: attack read|write|jump ADDR | priv INSN | int N | syscall-rsp ADDR | syscall-rsp-loop ADDR | clone-race | smap | smep | iret-kernel | return-to ADDR | munmap-all");
            return 2;
        }
    }
    1
}

ulib::entry!(main);
