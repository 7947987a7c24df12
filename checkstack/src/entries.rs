//! The kernel's entry points as checkstack models them: where each kind of
//! entry starts, the stack it runs on and what is on it before the stub's
//! first instruction (`ENTRIES`); the worst case per entry (`--entries`);
//! and the check of those models and of the static bound against a run
//! (`--depth-bounds`).

use checkstack::graph::Graph;
use checkstack::Kernel;
use tristack::layout::{EXCEPTION_STKSZ, IRQ_STACK_SIZE, KSTACK_OFFSET_MASK, THREAD_SIZE};

/// Where each kind of kernel entry starts, the stack it runs on, what is on
/// that stack before the stub's first instruction (see `ENTRY_*`), and the
/// chain of functions that leads from the assembly stub to its handler (the
/// stub's `exception_dispatch` reaches every handler; the chain keeps only
/// this entry's).
type Entry = (&'static str, &'static str, u64, i64, &'static [&'static str]);
const ENTRIES: &[Entry] = &[
    ("thread start", "TASK", THREAD_SIZE, ENTRY_THREAD, &["tristack_thread_start", "tristack::sched::thread_main"]),
    (
        "syscall",
        "TASK",
        THREAD_SIZE,
        ENTRY_SYSCALL,
        &["tristack_entry_SYSCALL_64", "tristack::arch::x86_64::entry::syscall::do_syscall_64"],
    ),
    ("IRQ", "IRQ", IRQ_STACK_SIZE, ENTRY_IRQ, &["tristack_irq_common"]),
    (
        "softirq",
        "IRQ",
        IRQ_STACK_SIZE,
        ENTRY_IRQ,
        &[
            "tristack_irq_common",
            "tristack::arch::x86_64::entry::irq::irq_dispatch",
            "tristack::softirq::run_on_irq_exit",
        ],
    ),
    (
        "#DF",
        "#DF",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_df_common",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::traps::double_fault",
        ],
    ),
    (
        "NMI",
        "NMI",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_paranoid_common",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::nmi::handle",
        ],
    ),
    (
        "#DB",
        "#DB",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_debug_common",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::debug::handle_db",
        ],
    ),
    (
        "#BP",
        "#DB",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_debug_common",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::debug::handle_bp",
        ],
    ),
    (
        "#MC",
        "#MC",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_paranoid_common",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::mce::do_machine_check::<tristack::arch::x86_64::entry::mce::Hardware>",
        ],
    ), // Only once dynamic thread stacks are armed (docs/dynamic-stacks.md):
    // the growth decision, and a guard-page hit reported right there.
    (
        "#PF",
        "#PF",
        EXCEPTION_STKSZ,
        ENTRY_IST,
        &[
            "tristack_pf_common",
            "tristack::arch::x86_64::entry::page_fault::pf_entry",
            "tristack::arch::x86_64::entry::traps::exception_dispatch",
            "tristack::arch::x86_64::entry::traps::page_fault",
        ],
    ),
];

// The worst-case search counts 8 bytes above every function for the return
// address its call pushed, and follows a stub's pushes in a straight line.
// An entry stub is jumped or interrupted into, not called, so each entry
// corrects that by what really is on its stack (`--check-trace` compares
// these with the depths the stack tracer records at the stubs).
/// The CPU's interrupt frame: SS, RSP, RFLAGS, CS, RIP.
const HW_FRAME: i64 = 5 * 8;
/// The vector and error-code words every per-vector stub pushes (`STUB`).
const STUB_WORDS: i64 = 2 * 8;
/// `SAVE_REGS`: the 15 general registers.
const SAVE_REGS: i64 = 15 * 8;
/// A new thread: `switch::initial_frame` leaves RSP at the top - 16 (a
/// zero return address that ends unwinds, and 16-byte alignment).
const ENTRY_THREAD: i64 = 16 - 8;
/// An exception on an IST stack: the CPU's frame and the stub's words are
/// there first.
const ENTRY_IST: i64 = HW_FRAME + STUB_WORDS - 8;
/// An interrupt: the CPU's frame, the stub's words and `SAVE_REGS` stay on
/// the interrupted stack; only what `tristack_irq_common` pushes after the
/// switch lands on the IRQ stack (the first level; a nested interrupt stays
/// on the IRQ stack, which the figure does not cover).
const ENTRY_IRQ: i64 = -8 - SAVE_REGS;
/// `syscall`: no return address, and the random offset
/// (`KSTACK_OFFSET_MASK`, then 16-alignment) below the frame.
const ENTRY_SYSCALL: i64 = -8 + KSTACK_OFFSET_MASK as i64 + 15;

pub fn entries(kernel: &Kernel, tables: &[checkstack::svg::Table]) {
    let mut frames = kernel.frames();
    let mut learned = checkstack::bound::Learned::default();
    for t in tables {
        checkstack::bound::learn(&kernel.resolve(t), &frames, &mut learned);
    }
    checkstack::bound::add_edges(&mut frames, &learned);
    let panics = kernel.panic_entries();
    let mut graph = Graph::cutting(&frames, panics.clone());
    if tables.is_empty() {
        out!("checkstack: worst case per entry point (direct calls; bytes from the stack top; without a panic)");
    } else {
        out!(
            "checkstack: worst case per entry point (direct calls, and {} calls through pointers the traces took; \
             bytes from the stack top; without a panic)",
            learned.edges.len() + learned.tail_edges.len()
        );
    }
    // The panic path, once: from panic_fmt into the handler, a nested
    // panic counted as its first frame only (the handler's guard stops a
    // second one after one line).
    if let (Some(&fmt), Some(&handler)) = (panics.first(), panics.last()) {
        let inner: Vec<u64> = panics.iter().copied().filter(|&p| p != handler).collect();
        let w = Graph::cutting(&frames, inner).worst(handler);
        let bytes = 8 + frames.get(&fmt).map_or(0, |f| f.peak) + w.bytes;
        out!(
            "  (a panic adds up to {bytes} bytes below the point where it happens: {} > {})",
            kernel.name_of(fmt),
            w.path.iter().map(|&a| kernel.name_of(a)).collect::<Vec<_>>().join(" > ")
        );
    }
    // mcount runs at every function entry; its hook only while the stack
    // tracer is on, and never nested (a per-CPU flag): once per path.
    if let Some(m) = kernel.mcount {
        let hook = graph.worst(m);
        out!(
            "  (the stack tracer, while on, adds up to {} bytes below the deepest function: {})",
            hook.bytes,
            hook.path.iter().map(|&a| kernel.name_of(a)).collect::<Vec<_>>().join(" > ")
        );
    }
    for &(label, stack, size, adjust, chain) in ENTRIES {
        // A function of the chain the compiler inlined into its caller is
        // skipped: the caller's worst case then covers it (and possibly
        // more: an over-estimate, said so).
        let fns: Vec<_> = chain.iter().filter_map(|n| kernel.by_name(n)).collect();
        let inlined: Vec<_> = chain.iter().filter(|n| kernel.by_name(n).is_none()).collect();
        if fns.is_empty() {
            out!("  {label:<13} {stack:<5} not found in the ELF: {chain:?}");
            continue;
        }
        // The chain's own frames down to the last function's call site,
        // then the worst case below that function.
        let mut bytes = adjust;
        let mut path = Vec::new();
        for pair in fns.windows(2) {
            let depth = pair[0]
                .frame
                .calls
                .iter()
                .filter(|(_, c)| *c == checkstack::frame::Callee::Direct(pair[1].addr))
                .map(|&(d, _)| d)
                .max()
                .unwrap_or(pair[0].frame.peak);
            bytes += 8 + depth as i64;
            path.push(format!("{} ({})", pair[0].name, pair[0].frame.peak));
        }
        let last = fns[fns.len() - 1];
        let w = graph.worst(last.addr);
        bytes += w.bytes as i64;
        for &a in &w.path {
            let f = frames.get(&a).map_or(0, |f| f.peak);
            path.push(format!("{} ({f})", kernel.name_of(a)));
        }
        let left = size as i64 - bytes;
        out!("  {label:<13} {stack:<5} {bytes:>6} of {size:>6} bytes, {left:>6} left");
        out!("      deepest: {}", path.join(" > "));
        if !inlined.is_empty() {
            out!("      inlined into their callers (the figure covers every path from there): {inlined:?}");
        }
        let names = |v: &[u64]| v.iter().map(|&a| kernel.name_of(a)).collect::<Vec<_>>().join(", ");
        if !w.recursion.is_empty() {
            out!("      recursion (not bounded by this figure) at: {}", names(&w.recursion));
        }
        if !w.indirect.is_empty() {
            out!(
                "      indirect calls (not followed) in {} function(s): {}",
                w.indirect.len(),
                names(&w.indirect[..w.indirect.len().min(8)])
            );
        }
        if !w.unknown.is_empty() {
            out!("      calls to addresses with no symbol: {}", w.unknown.len());
        }
    }
}

/// Each table's deepest depth against the static worst case (see
/// `checkstack::bound`), with the calls through pointers the tables show
/// added to the graph. Returns the number of disagreements.
pub fn depth_bounds(kernel: &Kernel, tables: &[checkstack::svg::Table]) -> usize {
    use checkstack::bound::{self, Bound, Learned};
    let mut frames = kernel.frames();
    let resolved: Vec<_> = tables.iter().map(|t| kernel.resolve(t)).collect();
    let mut learned = Learned::default();
    for rows in &resolved {
        bound::learn(rows, &frames, &mut learned);
    }
    let mut bad = learned.missing.len();
    for &(caller, callee) in &learned.missing {
        out!(
            "checkstack: trace: {} called {} at run time, but the call there goes elsewhere",
            kernel.name_of(caller),
            kernel.name_of(callee)
        );
    }
    out!(
        "checkstack: depth bound: {} call(s) through pointers taken in these tables, added to the graph:",
        learned.edges.len() + learned.tail_edges.len()
    );
    for &(caller, _, callee) in &learned.edges {
        out!("checkstack:     {} -> {}", kernel.name_of(caller), kernel.name_of(callee));
    }
    for &(via, callee) in &learned.tail_edges {
        out!("checkstack:     {} -> {} (tail call)", kernel.name_of(via), kernel.name_of(callee));
    }
    bound::add_edges(&mut frames, &learned);
    // Checked without the panic path, unless the chain went through it.
    let panics = kernel.panic_entries();
    let mut graph = Graph::new(&frames);
    let mut no_panic = Graph::cutting(&frames, panics.clone());
    let (mut within, mut recursive) = (0, 0);
    for (t, rows) in tables.iter().zip(&resolved) {
        let depth = rows.first().map_or(0, |r| r.depth);
        let caller = |c: &bound::Check| rows[c.row].func.map_or("?".into(), |a| kernel.name_of(a));
        let panicked = rows.iter().any(|r| r.func.is_some_and(|f| panics.contains(&f)));
        let graph = if panicked { &mut graph } else { &mut no_panic };
        let say = |verdict: &str, c: &bound::Check, after: &str| {
            out!(
                "checkstack: depth bound: {:<5} {depth:>6} at run time, {verdict} {:>6} = {} where {} calls {} + {} static worst case below it{after}",
                t.kind,
                c.limit(),
                c.at,
                caller(c),
                kernel.name_of(c.callee),
                c.below
            )
        };
        match bound::bound(rows, graph) {
            Bound::Within { check: c, recursion } => {
                within += 1;
                recursive += usize::from(recursion);
                say("within", &c, if recursion { " (above it the chain recurses: not bounded)" } else { "" });
            }
            Bound::Over(c) => {
                bad += 1;
                say("OVER", &c, "");
            }
            Bound::Unchecked => {
                out!("checkstack: depth bound: {:<5} {depth:>6} at run time, no call on its chain to check", t.kind)
            }
        }
    }
    out!(
        "checkstack: depth bound: {} tables, {within} within the static worst case ({recursive} of them only below a recursion), {bad} disagree",
        tables.len()
    );
    bad + entry_models(kernel, tables, &resolved)
}

/// The entries table's model of each stub (`ENTRY_*`) against the run: where
/// a table's first entry onto its stack is a stub, the depth of the stub's
/// call into Rust must be what `--entries` counts for it.
fn entry_models(
    kernel: &Kernel,
    tables: &[checkstack::svg::Table],
    resolved: &[Vec<checkstack::bound::Resolved>],
) -> usize {
    let mut bad = 0;
    for (t, rows) in tables.iter().zip(resolved) {
        // The outermost call row: the first entry onto this stack.
        let Some(j) = rows.iter().rposition(|r| matches!(r.call, Some((_, Some(_))))) else { continue };
        let (Some(func), Some((at, _))) = (rows[j].func, rows[j].call) else { continue };
        let name = kernel.name_of(func);
        // Only a stub whose entry runs on this kind of stack (#DB1 is the
        // second #DB stack): an interrupt on a thread stack stays there
        // only until the switch to the IRQ stack.
        let kind = t.kind.trim_end_matches(|c: char| c.is_ascii_digit());
        // Found by its stub, or by the kind where every entry onto that
        // stack is modelled alike (#DF's stub jumps into the NMI/#MC one).
        let same_kind: Vec<&Entry> = ENTRIES.iter().filter(|e| e.1 == kind).collect();
        let alike = same_kind.iter().all(|e| e.3 == same_kind[0].3);
        let Some(&&(_, _, _, adjust, _)) =
            same_kind.iter().find(|e| e.4[0] == name).or_else(|| same_kind.first().filter(|_| alike))
        else {
            continue;
        };
        let model = 8 + at as i64 + 8 + adjust;
        let depth = rows[j].depth as i64;
        if model != depth {
            bad += 1;
        }
        out!(
            "checkstack: entry model: {:<5} {name} calls into Rust at {depth} bytes from the stack top at run time; --entries counts {model}{}",
            t.kind,
            if model == depth { "" } else { ": DISAGREE" }
        );
    }
    bad
}
