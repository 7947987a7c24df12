//! Does an entry path give the interrupted code its registers back? Every
//! general register but RSP and RBP (the frame chain) is loaded with a
//! value of its own, `int N` runs the vector's whole entry and exit, and
//! each register is compared afterwards. The entry sweep's kernel-mode
//! trigger: events land inside the path while this waits in `int N`.

use core::arch::asm;

/// The 14 registers, in the order the check stores them.
pub const REG_NAMES: [&str; 14] =
    ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

/// The value register `i` of `REG_NAMES` is loaded with.
const fn pattern(i: u64) -> u64 {
    0x5eed_0000_0000_0000 | (i << 40) | (i << 8) | i
}

/// The check around one instruction: every register loaded with its
/// pattern, `$insn` (which may use RBP, loaded with `$rbp`), each register
/// stored and compared; a bit per register (`REG_NAMES` order) that came
/// back changed, 0 = intact.
macro_rules! keeps_registers {
    ($insn:literal, $rbp:expr, $($consts:tt)*) => {{
        let mut got = [0u64; 14];
        // SAFETY:
        // - RBX (reserved by the compiler) and RBP are saved and restored
        //   around the block; every other register it writes is declared
        //   clobbered; RSP comes back as it was;
        // - the scratch area is this block's own 128 bytes below RSP, and
        //   the kernel has no red zone, so an entry pushes its frame below;
        // - the instruction's event returns (the callers say which).
        unsafe {
            asm!(
                "push rbx",
                "push rbp",
                "mov rbp, rsi",
                "sub rsp, 128",
                "mov [rsp + 120], rdi",
                "mov rax, {p0}", "mov rbx, {p1}", "mov rcx, {p2}", "mov rdx, {p3}",
                "mov rsi, {p4}", "mov rdi, {p5}", "mov r8, {p6}", "mov r9, {p7}",
                "mov r10, {p8}", "mov r11, {p9}", "mov r12, {p10}", "mov r13, {p11}",
                "mov r14, {p12}", "mov r15, {p13}",
                $insn,
                "mov [rsp], rax", "mov [rsp + 8], rbx", "mov [rsp + 16], rcx", "mov [rsp + 24], rdx",
                "mov [rsp + 32], rsi", "mov [rsp + 40], rdi", "mov [rsp + 48], r8", "mov [rsp + 56], r9",
                "mov [rsp + 64], r10", "mov [rsp + 72], r11", "mov [rsp + 80], r12", "mov [rsp + 88], r13",
                "mov [rsp + 96], r14", "mov [rsp + 104], r15",
                "mov rdi, [rsp + 120]",
                "mov rsi, rsp",
                "mov ecx, 14",
                "cld",
                "rep movsq",
                "add rsp, 128",
                "pop rbp",
                "pop rbx",
                $($consts)*
                p0 = const pattern(0), p1 = const pattern(1), p2 = const pattern(2), p3 = const pattern(3),
                p4 = const pattern(4), p5 = const pattern(5), p6 = const pattern(6), p7 = const pattern(7),
                p8 = const pattern(8), p9 = const pattern(9), p10 = const pattern(10), p11 = const pattern(11),
                p12 = const pattern(12), p13 = const pattern(13),
                inout("rdi") got.as_mut_ptr() => _,
                inout("rsi") $rbp => _,
                out("rax") _, out("rcx") _, out("rdx") _,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
                out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            );
        }
        (0..14).filter(|&i| got[i] != pattern(i as u64)).fold(0, |m, i| m | 1 << i)
    }};
}

/// Run `int V` (vector V's whole entry and exit: the callers use vectors
/// whose handlers return: NMI, a software #MC, an IRQ with a handler).
pub fn int_keeps_registers<const V: u8>() -> u32 {
    keeps_registers!("int {v}", 0u64, v = const V,)
}

/// Store a zero at `addr` (a store that faults, e.g. onto a page of a
/// thread stack not backed yet: the #PF's whole entry and exit run).
/// `addr` is writable once the fault is handled (the caller's own stack, a
/// growable page below everything live).
pub fn store_keeps_registers(addr: u64) -> u32 {
    keeps_registers!("mov qword ptr [rbp], 0", addr,)
}
