//! Waking the application processors (Linux `arch/x86/kernel/smpboot.c`
//! and `realmode/rm/trampoline_64.S`).
//!
//! An AP starts in real mode at the page a STARTUP IPI names, so the first
//! instructions must sit below 1 MiB. The BSP copies the trampoline below to
//! `TRAMPOLINE_PHYS` and patches in the physical address of a small page
//! table: the kernel's upper half plus an identity map of the low 2 MiB, so
//! the instruction after "paging on" is still mapped. The trampoline goes
//! from 16-bit real mode straight to long mode (PAE, EFER.LME and NXE, then
//! PE and PG together) and jumps to `tristack_ap_start64` in the kernel
//! image, which loads the kernel's own CR3, CR0 and CR4 and the stack the
//! BSP prepared (the idle task's), then calls `ap_main`.
//!
//! APs are started one at a time, so a few statics carry the hand-over.

use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ::x86_64::registers::control::{Cr0, Cr3, Cr4};
use ::x86_64::structures::paging::PageTable;

use super::{apic, percpu};
use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE, TRAMPOLINE_PHYS};

/// Hand-over from the BSP to the AP being started (read by the 64-bit stub).
#[unsafe(no_mangle)]
static AP_KERNEL_CR3: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static AP_CR0: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static AP_CR4: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static AP_STACK_TOP: AtomicU64 = AtomicU64::new(0);
#[unsafe(no_mangle)]
static AP_CPU: AtomicU64 = AtomicU64::new(0);
/// The AP's per-CPU area: its GS base before any Rust code runs, since
/// every instrumented function's `mcount` may read GS (stack erasing's
/// tracking); `percpu::init` sets the same value again.
#[unsafe(no_mangle)]
static AP_GS_BASE: AtomicU64 = AtomicU64::new(0);

global_asm!(
    r#"
// The real-mode trampoline. It is data in the kernel image and runs only
// as the copy at {phys}: addresses inside it are {phys} + (label - start).
// (LLVM's Intel-syntax parser takes one symbol per operand, hence the .set.)
.set TRAMPOLINE_PML4_OFF, tristack_trampoline_pml4 - tristack_trampoline_start
.set TRAMPOLINE_GDTR_OFF, tristack_trampoline_gdtr - tristack_trampoline_start
.set TRAMPOLINE_ENTRY_PHYS, {phys} + (tristack_trampoline_entry - tristack_trampoline_start)
.section .rodata.trampoline, "a"
.balign 16
.global tristack_trampoline_start
tristack_trampoline_start:
.code16
    // CS = {phys} >> 4, IP = 0, no stack: RSP is not used until 64-bit code.
    cli
    cld
    mov ax, cs
    mov ds, ax
    mov eax, cr4
    or eax, 0x20                    // CR4.PAE
    mov cr4, eax
    mov eax, dword ptr [TRAMPOLINE_PML4_OFF]
    mov cr3, eax
    mov ecx, 0xc0000080             // IA32_EFER
    rdmsr
    or eax, 0x900                   // LME | NXE (kernel PTEs carry NX)
    wrmsr
    lgdt [TRAMPOLINE_GDTR_OFF]
    mov eax, cr0
    or eax, 0x80000001              // PG | PE: straight into long mode
    mov cr0, eax
    // ljmpl 0x08:{phys} + (1f - start): 64-bit code segment.
    .byte 0x66, 0xea
    .long {phys} + (1f - tristack_trampoline_start)
    .word 0x08
.code64
1:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    jmp qword ptr [TRAMPOLINE_ENTRY_PHYS]   // absolute: to tristack_ap_start64

.balign 8
tristack_trampoline_gdt:
    .quad 0
    .quad 0x00209a0000000000        // 0x08: 64-bit code, DPL 0
    .quad 0x0000920000000000        // 0x10: data
tristack_trampoline_gdtr:
    .word tristack_trampoline_gdtr - tristack_trampoline_gdt - 1
    .long {phys} + (tristack_trampoline_gdt - tristack_trampoline_start)
.balign 8
.global tristack_trampoline_pml4
tristack_trampoline_pml4:
    .quad 0                         // patched: trampoline page table (< 4 GiB)
.global tristack_trampoline_entry
tristack_trampoline_entry:
    .quad 0                         // patched: tristack_ap_start64
.global tristack_trampoline_end
tristack_trampoline_end:

.text
.global tristack_ap_start64
// Entered from the trampoline on its page table, RSP undefined.
// CR3 := the kernel's; GS base := its per-CPU area; RSP := the idle task's stack top - 16 (two zero
// words: a null return address and RBP = 0 end every unwind), then
// ap_main(cpu) with RSP = 8 mod 16 as the ABI expects at a call target.
tristack_ap_start64:
    mov rax, qword ptr [rip + {cr3}]
    mov cr3, rax
    mov rax, qword ptr [rip + {cr0}]
    mov cr0, rax
    mov rax, qword ptr [rip + {cr4}]
    mov cr4, rax
    mov rsp, qword ptr [rip + {stack}]
    mov ecx, {msr_gs_base}
    mov eax, dword ptr [rip + {gs_base}]
    mov edx, dword ptr [rip + {gs_base} + 4]
    wrmsr
    xor ebp, ebp
    push 0
    push 0
    mov rdi, qword ptr [rip + {cpu}]
    call {ap_main}
    ud2
.type tristack_ap_start64, @function
.size tristack_ap_start64, . - tristack_ap_start64
"#,
    phys = const TRAMPOLINE_PHYS,
    cr3 = sym AP_KERNEL_CR3,
    cr0 = sym AP_CR0,
    cr4 = sym AP_CR4,
    stack = sym AP_STACK_TOP,
    cpu = sym AP_CPU,
    gs_base = sym AP_GS_BASE,
    msr_gs_base = const super::percpu::MSR_GS_BASE,
    ap_main = sym ap_entry,
);

unsafe extern "C" {
    static tristack_trampoline_start: u8;
    static tristack_trampoline_end: u8;
    static tristack_trampoline_pml4: u8;
    static tristack_trampoline_entry: u8;
    fn tristack_ap_start64();
}

/// Why an AP could not be started.
#[derive(Debug)]
pub enum StartError {
    TrampolinePageNotRam,
    NoMemory,
    PageTableAbove4G,
    NoResponse,
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            StartError::TrampolinePageNotRam => "the trampoline page is not usable RAM in the memory map",
            StartError::NoMemory => "no frames for the trampoline page table",
            StartError::PageTableAbove4G => "the trampoline page table is above 4 GiB (real mode loads 32 bits of CR3)",
            StartError::NoResponse => "no response within 1 s of INIT-SIPI-SIPI",
        })
    }
}

/// Physical address of the trampoline page table, built once.
static TRAMPOLINE_PML4: AtomicU64 = AtomicU64::new(0);

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Whether the trampoline is in place (`install_trampoline` ran).
pub fn trampoline_installed() -> bool {
    TRAMPOLINE_PML4.load(Ordering::Relaxed) != 0
}

/// Copy the trampoline below 1 MiB (to `TRAMPOLINE_PHYS`, which the caller
/// found to be usable RAM) and build its page table in `frames`: three
/// free frames the caller allocated, for the PML4, PDPT and PD.
pub fn install_trampoline(frames: [u64; 3]) -> Result<(), StartError> {
    let mut frames = frames.into_iter();
    let mut frame = || -> Result<(u64, &'static mut PageTable), StartError> {
        let pa = frames.next().expect("three frames");
        if pa >= 1 << 32 {
            return Err(StartError::PageTableAbove4G);
        }
        let table = (DIRECT_MAP_BASE + pa) as *mut PageTable;
        // SAFETY: a fresh frame, ours alone, mapped writable by the direct map.
        unsafe {
            table.write(PageTable::new());
            Ok((pa, &mut *table))
        }
    };
    let (pml4_pa, pml4) = frame()?;
    let (pdpt_pa, pdpt) = frame()?;
    let (pd_pa, pd) = frame()?;
    // Identity-map the low 2 MiB with one large page (P | RW | PS).
    const P_RW: u64 = 0b11;
    const PS: u64 = 1 << 7;
    // SAFETY (all three): plain page-table entry values built above.
    unsafe {
        core::ptr::write(&mut pd[0] as *mut _ as *mut u64, P_RW | PS);
        core::ptr::write(&mut pdpt[0] as *mut _ as *mut u64, pd_pa | P_RW);
        core::ptr::write(&mut pml4[0] as *mut _ as *mut u64, pdpt_pa | P_RW);
    }
    // The kernel's upper half, shared: the 64-bit stub and its data are there.
    let (root, _) = Cr3::read();
    // SAFETY: CR3 holds the live top-level table, reached through the direct map.
    let kernel = unsafe { &*((DIRECT_MAP_BASE + root.start_address().as_u64()) as *const PageTable) };
    for i in 256..512 {
        pml4[i] = kernel[i].clone();
    }

    // SAFETY: the linker symbols delimit the trampoline's bytes in .rodata;
    // the destination page is usable low RAM the frame allocator never hands
    // out, mapped by the direct map.
    unsafe {
        let start = symbol(&tristack_trampoline_start);
        let len = symbol(&tristack_trampoline_end) - start;
        assert!(len <= PAGE_SIZE, "trampoline larger than a page");
        let dst = (DIRECT_MAP_BASE + TRAMPOLINE_PHYS) as *mut u8;
        core::ptr::copy_nonoverlapping(start as *const u8, dst, len as usize);
        let patch =
            |label: &u8, value: u64| (dst.add((symbol(label) - start) as usize) as *mut u64).write_unaligned(value);
        patch(&tristack_trampoline_pml4, pml4_pa);
        patch(&tristack_trampoline_entry, tristack_ap_start64 as *const () as u64);
    }
    TRAMPOLINE_PML4.store(pml4_pa, Ordering::Relaxed);
    Ok(())
}

/// Start `cpu` (APIC ID `apic_id`) on the stack `stack_top` and wait until it
/// reports online: INIT, 10 ms, STARTUP, 200 µs, STARTUP, 200 µs (the Intel
/// SDM's universal start-up algorithm, as Linux `wakeup_secondary_cpu_via_init`).
///
/// The AP runs `ap_main(cpu)` on that stack once it is in 64-bit mode on
/// the kernel's page tables (the caller's bring-up: this layer knows the
/// CPU, not what the kernel runs on it).
pub fn start_ap(cpu: usize, apic_id: u32, stack_top: u64, ap_main: fn(usize) -> !) -> Result<(), StartError> {
    assert!(trampoline_installed(), "install_trampoline first");
    AP_MAIN.store(ap_main as usize, Ordering::SeqCst);
    AP_KERNEL_CR3.store(Cr3::read().0.start_address().as_u64(), Ordering::SeqCst);
    AP_CR0.store(Cr0::read_raw(), Ordering::SeqCst);
    AP_CR4.store(Cr4::read_raw(), Ordering::SeqCst);
    AP_STACK_TOP.store(stack_top, Ordering::SeqCst);
    AP_CPU.store(cpu as u64, Ordering::SeqCst);
    AP_GS_BASE.store(super::percpu::of(cpu) as *const _ as u64, Ordering::SeqCst);
    percpu::of(cpu).apic_id.store(apic_id, Ordering::SeqCst);

    let page = (TRAMPOLINE_PHYS / PAGE_SIZE) as u8;
    apic::send_init(apic_id);
    super::tsc::udelay(10_000);
    for _ in 0..2 {
        if percpu::of(cpu).online.load(Ordering::Acquire) {
            break;
        }
        apic::send_startup(apic_id, page);
        super::tsc::udelay(200);
    }
    // Up to 1 s for the AP to finish its bring-up.
    for _ in 0..10_000 {
        if percpu::is_online(cpu) {
            return Ok(());
        }
        super::tsc::udelay(100);
    }
    Err(StartError::NoResponse)
}

/// What each AP runs, handed down by `start_ap`'s caller.
static AP_MAIN: AtomicUsize = AtomicUsize::new(0);

/// First Rust code on an AP: on the idle task's stack, on the kernel's page
/// tables, interrupts off, GS base set by the trampoline (its area).
extern "C" fn ap_entry(cpu: u64) -> ! {
    // SAFETY: `start_ap` stored a `fn(usize) -> !` before starting the AP.
    let ap_main = unsafe { core::mem::transmute::<usize, fn(usize) -> !>(AP_MAIN.load(Ordering::SeqCst)) };
    ap_main(cpu as usize)
}
