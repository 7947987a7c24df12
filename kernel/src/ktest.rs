//! In-kernel tests: things only real hardware state can show (page tables,
//! the direct map, the running kernel's addresses). Run by the `ktest`
//! command; each prints `ktest <name> ... ok|FAILED` and the run ends with
//! `N passed, M failed`.

use alloc::string::String;

pub type KResult = Result<(), String>;

/// Fail the current ktest with a message unless `cond` holds.
#[macro_export]
macro_rules! kcheck {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(alloc::format!("{} ({}:{})", format_args!($($fmt)+), file!(), line!()));
        }
    };
}

pub struct KTest {
    pub name: &'static str,
    pub run: fn() -> KResult,
}

/// Every ktest, in the order they run. Bodies live next to the code they test.
pub static TESTS: &[KTest] = &[
    KTest { name: "kernel_runs_at_link_address", run: crate::boot::ktests::runs_at_link_address },
    KTest { name: "direct_map_covers_ram", run: crate::mm::ktests::direct_map_covers_ram },
    KTest { name: "frames_alloc_free", run: crate::mm::ktests::frames_alloc_free },
    KTest { name: "heap_alloc_free", run: crate::mm::ktests::heap_alloc_free },
    KTest { name: "vmap_map_touch_free", run: crate::mm::ktests::vmap_map_touch_free },
    KTest { name: "vmap_thread_size_aligned", run: crate::mm::ktests::vmap_thread_size_aligned },
    KTest {
        name: "ist_slots_point_at_stack_tops",
        run: crate::stacks::exception::ktests::ist_slots_point_at_stack_tops,
    },
    KTest { name: "gates_name_their_ist", run: crate::stacks::exception::ktests::gates_name_their_ist },
    KTest {
        name: "estack_pages_nx_guards_unmapped",
        run: crate::stacks::exception::ktests::stack_pages_nx_and_guards_unmapped,
    },
    KTest { name: "int3_runs_on_db_stack", run: crate::stacks::exception::ktests::int3_runs_on_db_stack },
    KTest { name: "nested_db_uses_db_then_db1", run: crate::stacks::exception::ktests::nested_db_uses_db_then_db1 },
    KTest { name: "nmi_runs_on_nmi_stack", run: crate::stacks::exception::ktests::nmi_runs_on_nmi_stack },
    KTest { name: "mce_runs_on_mce_stack", run: crate::stacks::exception::ktests::mce_runs_on_mce_stack },
    KTest {
        name: "thread_stack_layout_magic_guards",
        run: crate::stacks::thread::ktests::layout_magic_alignment_and_guards,
    },
    KTest { name: "thread_stack_cache_reuse", run: crate::stacks::thread::ktests::cache_reuses_two_then_frees_to_vmap },
    KTest {
        name: "thread_stack_zeroed_on_reuse",
        run: crate::stacks::thread::ktests::reused_stack_is_zeroed_with_magic,
    },
    KTest {
        name: "guard_below_every_thread_stack",
        run: crate::stacks::thread::ktests::guard_below_every_thread_stack,
    },
    KTest { name: "current_is_per_cpu", run: crate::stacks::thread::ktests::current_is_per_cpu_and_owns_rsp },
    KTest {
        name: "irq_first_level_switches_and_links_back",
        run: crate::stacks::irq::ktests::first_level_switches_and_links_back,
    },
    KTest { name: "irq_nested_level_stays", run: crate::stacks::irq::ktests::nested_level_counts_one_and_stays },
    KTest { name: "irq_stack_guards_unmapped", run: crate::stacks::irq::ktests::irq_stack_guards_unmapped },
    KTest { name: "softirq_not_reentered", run: crate::softirq::ktests::not_reentered_while_running },
    KTest {
        name: "call_runs_on_each_cpus_own_irq_stack",
        run: crate::smp::ktests::call_runs_on_each_cpus_own_irq_stack,
    },
    KTest {
        name: "handlers_print_while_console_held",
        run: crate::stacks::exception::ktests::handlers_print_while_console_held,
    },
];

/// Run the tests whose name contains `filter`; returns (passed, failed).
pub fn run(filter: Option<&str>) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for t in TESTS.iter().filter(|t| filter.is_none_or(|f| t.name.contains(f))) {
        // The verdict comes after the run, so whatever the test printed
        // (demos do) never splits the verdict line.
        match (t.run)() {
            Ok(()) => {
                crate::println!("ktest {} ... ok", t.name);
                passed += 1;
            }
            Err(why) => {
                crate::println!("ktest {} ... FAILED: {why}", t.name);
                failed += 1;
            }
        }
    }
    crate::println!("{passed} passed, {failed} failed");
    (passed, failed)
}
